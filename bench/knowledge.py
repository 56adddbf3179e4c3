"""Knowledge index: retrieval recall on the 71 PTB-XL statements and on clinician-style queries,
build/load/query times.

    python bench/knowledge.py                  # everything (a few minutes on 2 shared CPU cores)
    python bench/knowledge.py --skip-batch     # without the batch-size comparison
    python bench/knowledge.py --recall-only --home /tmp/h   # recall and latencies, index kept in /tmp/h

Clinician-style queries (bench/clinician_queries.jsonl, written by hand before any result was
seen, never edited to pass): free text as a clinician types it (numbers with units, abbreviations,
synonyms, typos, mm vs mV, German habits), each with the statement it should find. A hit: a passage
of a document covering the statement among the top 5. Compared in one run: dense only, lexical
(BM25) only, hybrid (reciprocal rank fusion of both) on the text as typed, and hybrid + query
understanding (`ragecg/retrieve/understand.py`: values -> criteria -> statement lines, abbreviations, typos), the
path of `ragecg knowledge search`. Latency per query, warm (encoder loaded, 1 warm-up query):
dense on the text as typed (the search before this change) against hybrid + query understanding.
The pipeline's recall (below) is reported for hybrid (what diagnose uses) and dense (before).

Retrieval recall. For each of the 71 SCP statements in ragecg/resources/scp_codes.json, a
`Measurements` value typical of that statement is made from a normal baseline (textbook adult
values, `BASELINE_*`) by (a) satisfying the statement's own rule in the knowledge base, every
condition past its threshold by one tolerance scale (criteria.UNIT_SCALES), and (b) for statements
without a rule, applying the textbook findings in `TYPICAL`. Then, exactly as the pipeline does:
`evaluate_criteria` -> `retrieve_evidence(k=5)` (whose query is `build_query`: findings in words
with values). A hit: a passage of a document whose `codes.scp` lists the statement is among the 5
passages. recall@5 = hits / 71; MRR = mean of 1/rank (0 when absent). Baseline in the same run:
the statement's description alone as the query (`index.search(description, 5)`).

Times (same run, same process, model already loaded): build from scratch (`force=True`) against an
incremental build after appending one sentence to one document; `load_index` of the built folder;
`ensure_index` when nothing changed (scans and hashes the inputs); `search` latency per query line
and `retrieve_evidence` latency per statement (p50/p95). Batch size 1 (used for
byte-identical incremental builds) against 32 on the same chunk texts.
"""
from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.knowledge import embed  # noqa: E402
from ragecg.knowledge import index as ix  # noqa: E402
from ragecg.digest import _SHA_MEMO  # noqa: E402
from ragecg.criteria.evaluate import _scale_for, evaluate_criteria  # noqa: E402
from ragecg.values import scp_codes  # noqa: E402
from ragecg.knowledge.documents import load_documents  # noqa: E402
from ragecg.values import Condition  # noqa: E402
from ragecg.values import LeadMeasurements, Measurements  # noqa: E402
from ragecg.retrieve.query import retrieve_evidence  # noqa: E402
from ragecg.retrieve import search_understood, understand_query  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402

K = 5
# How far past its threshold a typical value lies, in tolerance scales (criteria.UNIT_SCALES): one
# scale (score 0.73) is a clear but mild case that does not also pass stricter statements' thresholds.
MARGIN_SCALES = 1.0
LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
PRECORDIAL = ("V1", "V2", "V3", "V4", "V5", "V6")

# Normal adult 12-lead values (Goldberger's Clinical Electrocardiography, 9th ed., ch. 3-4):
# rate 60-100, PR 120-200 ms, QRS < 110 ms, QTc < 450 ms, axis -30..+90, R progression V1->V5.
BASELINE_GLOBAL = dict(
    heart_rate_bpm=70.0, rr_mean_ms=857.0, rr_sd_ms=20.0, rr_cv=0.03, rr_min_ms=830.0, rr_max_ms=885.0,
    beat_count=12, premature_beat_count=0, pvc_count=0, pac_count=0, bigeminy_cycles=0, trigeminy_cycles=0,
    nn_range_ms=55.0, atrial_organization=0.35, pause_count=0, p_waves_per_qrs=1.0, p_present=True,
    p_duration_ms=100.0, pr_interval_ms=160.0, qrs_duration_ms=90.0, qt_interval_ms=390.0,
    qtc_bazett_ms=421.0, qtc_fridericia_ms=410.0, qtc_framingham_ms=410.0, qtc_hodges_ms=410.0,
    p_axis_deg=50.0, qrs_axis_deg=45.0, t_axis_deg=40.0, sokolow_lyon_mv=2.4, cornell_voltage_mv=1.3,
    limb_lead_qrs_max_mv=1.4, precordial_qrs_max_mv=2.0,
)
#                 p      q     q_ms  r     s      t     st   rpt
BASELINE_LEADS = {
    "I":   (0.10, -0.05, 15, 0.8, -0.2, 0.30, 0.0, 35), "II":  (0.15, -0.05, 15, 1.2, -0.2, 0.35, 0.0, 35),
    "III": (0.05, 0.0, 0, 0.5, -0.2, 0.10, 0.0, 30),    "aVR": (-0.10, 0.0, 0, 0.1, -0.8, -0.30, 0.0, 20),
    "aVL": (0.05, 0.0, 0, 0.4, -0.3, 0.15, 0.0, 30),    "aVF": (0.10, 0.0, 0, 0.8, -0.2, 0.20, 0.0, 35),
    "V1":  (0.08, 0.0, 0, 0.3, -1.0, 0.10, 0.02, 20),   "V2":  (0.08, 0.0, 0, 0.6, -1.4, 0.60, 0.05, 25),
    "V3":  (0.08, 0.0, 0, 1.0, -0.9, 0.60, 0.03, 30),   "V4":  (0.08, 0.0, 0, 1.5, -0.5, 0.50, 0.0, 35),
    "V5":  (0.08, -0.08, 15, 1.4, -0.3, 0.40, 0.0, 38), "V6":  (0.08, -0.06, 15, 1.1, -0.2, 0.30, 0.0, 38),
}


def _leads(names, **values):
    return {ld: dict(values) for ld in names}


# Textbook findings for statements without a rule in the knowledge base (Goldberger 9th ed.;
# Surawicz & Knilans, Chou's Electrocardiography 6th ed.). Bench inputs only: no diagnostic threshold.
TYPICAL: dict[str, tuple[dict, dict]] = {
    "NDT": ({}, _leads(("I", "aVL", "V5", "V6"), t_amplitude_mv=0.04)),
    "NST_": ({}, _leads(("V4", "V5", "V6"), st_j60_mv=-0.05, st_j_mv=-0.05)),
    "DIG": ({"qtc_bazett_ms": 370.0, "qt_interval_ms": 340.0}, _leads(("II", "V4", "V5", "V6"), st_j60_mv=-0.1,
                                                                      st_j_mv=-0.05, t_amplitude_mv=0.05)),
    "LNGQT": ({"qtc_bazett_ms": 495.0, "qt_interval_ms": 460.0, "qtc_fridericia_ms": 480.0}, {}),
    "ISC_": ({}, _leads(("V4", "V5", "V6"), st_j60_mv=-0.1, t_amplitude_mv=-0.2)),
    "ISCAL": ({}, _leads(("I", "aVL", "V3", "V4", "V5", "V6"), t_amplitude_mv=-0.3, st_j60_mv=-0.08)),
    "ISCIN": ({}, _leads(("II", "III", "aVF"), t_amplitude_mv=-0.3, st_j60_mv=-0.08)),
    "INJAS": ({}, _leads(("V1", "V2", "V3"), st_j60_mv=-0.2, st_j_mv=-0.15)),
    "ISCIL": ({}, _leads(("II", "III", "aVF", "V5", "V6"), t_amplitude_mv=-0.3, st_j60_mv=-0.08)),
    "ISCAS": ({}, _leads(("V1", "V2", "V3"), t_amplitude_mv=-0.3, st_j60_mv=-0.08)),
    "INJAL": ({}, _leads(("I", "aVL", "V4", "V5", "V6"), st_j60_mv=-0.2, st_j_mv=-0.15)),
    "ISCLA": ({}, _leads(("I", "aVL", "V5", "V6"), t_amplitude_mv=-0.3, st_j60_mv=-0.08)),
    "ANEUR": ({}, _leads(("V1", "V2", "V3", "V4"), q_amplitude_mv=-0.5, q_duration_ms=45, r_amplitude_mv=0.05,
                         st_j60_mv=0.25, st_j_mv=0.2)),
    "EL": ({"qtc_bazett_ms": 470.0}, _leads(("V2", "V3", "V4"), t_amplitude_mv=1.3)),
    "IPLMI": ({}, {**_leads(("II", "III", "aVF", "V5", "V6"), q_amplitude_mv=-0.4, q_duration_ms=45),
                   **_leads(("V1", "V2"), r_amplitude_mv=1.1, s_amplitude_mv=-0.3)}),
    "ISCAN": ({}, _leads(("V2", "V3", "V4"), t_amplitude_mv=-0.35, st_j60_mv=-0.08)),
    "IPMI": ({}, {**_leads(("II", "III", "aVF"), q_amplitude_mv=-0.4, q_duration_ms=45),
                  **_leads(("V1", "V2"), r_amplitude_mv=1.1, s_amplitude_mv=-0.3, st_j60_mv=-0.15)}),
    "SEHYP": ({}, _leads(("I", "aVL", "V5", "V6"), q_amplitude_mv=-0.5, q_duration_ms=30)),
    "INJIN": ({}, _leads(("II", "III", "aVF"), st_j60_mv=-0.2, st_j_mv=-0.15)),
    "INJLA": ({}, _leads(("I", "aVL", "V5", "V6"), st_j60_mv=-0.2, st_j_mv=-0.15)),
    "PMI": ({}, _leads(("V1", "V2"), r_amplitude_mv=1.2, s_amplitude_mv=-0.2, st_j60_mv=-0.15, t_amplitude_mv=0.6)),
    "INJIL": ({}, _leads(("II", "III", "aVF", "V5", "V6"), st_j60_mv=-0.2, st_j_mv=-0.15)),
    "ABQRS": ({"qrs_duration_ms": 104.0}, _leads(("II", "III", "aVF"), r_prime_amplitude_mv=0.3, qrs_notch_count=1)),
    "PVC": ({"premature_beat_count": 2, "pvc_count": 2, "bigeminy_cycles": 1, "rr_sd_ms": 120.0, "rr_cv": 0.14,
             "rr_min_ms": 560.0}, {}),
    "STD_": ({}, _leads(("II", "V4", "V5", "V6"), st_j60_mv=-0.1, st_j_mv=-0.08)),
    "QWAVE": ({}, _leads(("III", "aVF"), q_amplitude_mv=-0.4, q_duration_ms=40)),
    "LOWT": ({}, _leads(("I", "II", "aVF", "V3", "V4", "V5", "V6"), t_amplitude_mv=0.06)),
    "NT_": ({}, _leads(("I", "V5", "V6"), t_amplitude_mv=0.02)),
    "PAC": ({"premature_beat_count": 2, "pac_count": 2, "bigeminy_cycles": 1, "rr_sd_ms": 110.0, "rr_cv": 0.13,
             "rr_min_ms": 600.0}, {}),
    "INVT": ({}, _leads(("II", "V2", "V3", "V4"), t_amplitude_mv=-0.3)),
    "TAB_": ({}, _leads(("I", "aVL", "V5", "V6"), t_amplitude_mv=-0.15)),
    "STE_": ({}, _leads(("V2", "V3"), st_j60_mv=0.15, st_j_mv=0.12)),
    "SARRH": ({"rr_sd_ms": 130.0, "rr_cv": 0.15, "rr_min_ms": 650.0, "rr_max_ms": 1100.0, "nn_range_ms": 450.0}, {}),
    "PACE": ({"qrs_duration_ms": 165.0, "p_present": False, "p_waves_per_qrs": 0.0, "qrs_axis_deg": -70.0,
              "rr_sd_ms": 3.0, "rr_cv": 0.004}, {}),
    "SVARR": ({"premature_beat_count": 3, "pac_count": 3, "bigeminy_cycles": 1, "rr_sd_ms": 150.0, "rr_cv": 0.18,
               "heart_rate_bpm": 95.0}, {}),
    "BIGU": ({"premature_beat_count": 6, "pvc_count": 6, "bigeminy_cycles": 6, "rr_sd_ms": 230.0, "rr_cv": 0.28,
              "rr_min_ms": 520.0}, {}),
    "AFLT": ({"heart_rate_bpm": 150.0, "rr_mean_ms": 400.0, "p_waves_per_qrs": 2.0, "rr_cv": 0.02,
              "atrial_dominant_rate_bpm": 300.0, "atrial_organization": 0.7}, {}),
    "TRIGU": ({"premature_beat_count": 4, "pvc_count": 4, "bigeminy_cycles": 1, "trigeminy_cycles": 4,
               "rr_sd_ms": 200.0, "rr_cv": 0.24, "rr_min_ms": 540.0}, {}),
}


def _satisfying(conds: list[Condition]) -> float | bool:
    """A value meeting every condition on one measure: MARGIN_SCALES tolerance scales past a one-sided threshold,
    the midpoint of a two-sided range, the boolean asked; counts (integers) 2 past the threshold."""
    c0 = conds[0]
    if isinstance(c0.value, bool):
        return c0.value if c0.op == "==" else not c0.value
    lows = [float(c.value) for c in conds if c.op in (">", ">=")]
    highs = [float(c.value) for c in conds if c.op in ("<", "<=")]
    eqs = [float(c.value) for c in conds if c.op == "=="]
    s = MARGIN_SCALES * _scale_for(c0)
    field = Measurements.model_fields.get(c0.measure) or LeadMeasurements.model_fields.get(c0.measure)
    is_int = field is not None and field.annotation in (int, int | None)
    if eqs:
        v = eqs[0]
    elif lows and highs:
        v = (max(lows) + min(highs)) / 2
    elif lows:
        v = math.floor(max(lows)) + 2 if is_int else max(lows) + s
    elif highs:
        v = max(0, math.ceil(min(highs)) - 2) if is_int else min(highs) - s
    else:                                   # only "!=": anything clearly away from the value
        v = float(c0.value) + s
    return int(round(v)) if is_int else v


def typical_measurements(code: str, docs) -> tuple[Measurements, str, str]:
    """(measurements, sex, how) typical of a statement: its rule satisfied, else TYPICAL findings."""
    glob = dict(BASELINE_GLOBAL)
    leads = {ld: dict(p_amplitude_mv=p, q_amplitude_mv=q, q_duration_ms=qd, r_amplitude_mv=r, s_amplitude_mv=s,
                      t_amplitude_mv=t, st_j_mv=st, st_j60_mv=st, st_j80_mv=st, r_peak_time_ms=rpt,
                      qrs_net_mv=round(r + s + q, 3), qrs_notch_count=0)
             for ld, (p, q, qd, r, s, t, st, rpt) in BASELINE_LEADS.items()}
    rules = [r for d in docs for r in d.criteria if r.code == code]
    how = "rule" if rules else ("typical" if code in TYPICAL else "baseline")
    g, per_lead = TYPICAL.get(code, ({}, {}))
    glob.update(g)
    for ld, vals in per_lead.items():
        leads[ld].update(vals)
    sex = "M"
    if rules:
        rule = rules[0]
        conds = [c for c in (rule.conditions if rule.match == "all" else rule.conditions[:1])
                 if c.sex is None or c.sex == sex]
        groups: dict[tuple, list[Condition]] = {}
        for c in conds:
            for ld in (c.leads or [None]):
                groups.setdefault((c.measure, ld), []).append(c)
        for (measure, ld), cs in groups.items():
            if ld is None:
                glob[measure] = _satisfying(cs)
            else:
                leads[ld][measure] = _satisfying(cs)
    if glob["heart_rate_bpm"] != BASELINE_GLOBAL["heart_rate_bpm"] and glob["rr_mean_ms"] == BASELINE_GLOBAL["rr_mean_ms"]:
        glob["rr_mean_ms"] = 60000.0 / glob["heart_rate_bpm"]       # keep rate and RR consistent
    m = Measurements(sampling_rate_hz=500, duration_s=10,
                     **{k: v for k, v in glob.items() if k in Measurements.model_fields},
                     leads={ld: LeadMeasurements(**v) for ld, v in leads.items()})
    return m, sex, how


def _pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q))


QUERIES = Path(__file__).resolve().parent / "clinician_queries.jsonl"
MODES = ("dense", "lexical", "hybrid", "hybrid+understanding")


def _clinician(idx, docs) -> None:
    """recall@5 and MRR of the clinician-style queries per retrieval mode; latency before/after."""
    import json

    rows = [json.loads(ln) for ln in QUERIES.read_text(encoding="utf-8").splitlines() if ln.strip()]
    covering = {c: {d.id for d in docs if c in d.codes.scp} for c in scp_codes()}
    vocab = idx.vocabulary()

    def run(mode: str, q: str):
        if mode == "hybrid+understanding":
            return search_understood(idx, understand_query(q, docs, evaluate_criteria, vocab), K, mode="hybrid")
        return idx.search(q, K, mode=mode)

    ranks: dict[str, list[int]] = {m: [] for m in MODES}
    for r in rows:
        for mode in MODES:
            hits = run(mode, r["query"])
            ranks[mode].append(next((i + 1 for i, p in enumerate(hits) if p.doc_id in covering[r["code"]]), 0))
    kinds = sorted({r["kind"] for r in rows})
    counts = ", ".join(f"{k} {sum(r['kind'] == k for r in rows)}" for k in kinds)
    print(f"clinician-style queries: {len(rows)} ({counts}), "
          f"{len({r['code'] for r in rows})} statements")
    print(f"  {'mode':<22} {'recall@5':>8} {'MRR':>6}   " + "  ".join(f"{k:>8}" for k in kinds))
    for mode in MODES:
        rk = ranks[mode]
        rec = sum(1 for x in rk if x) / len(rk)
        mrr = sum(1 / x for x in rk if x) / len(rk)
        per_kind = [sum(1 for x, r in zip(rk, rows) if x and r["kind"] == k) / sum(r["kind"] == k for r in rows)
                    for k in kinds]
        print(f"  {mode:<22} {rec:>8.3f} {mrr:>6.3f}   " + "  ".join(f"{v:>8.3f}" for v in per_kind))
    for r, x in zip(rows, ranks["hybrid+understanding"]):
        if not x:
            print(f"  miss (hybrid+understanding) {r['code']:<7} {r['query']}")
    def before(q: str):
        """The search before this change: the text as typed, FAISS top-k over its embedding."""
        sims, ids = idx.faiss_index.search(idx._query_vectors([q]), K)
        return [idx.passage(int(j), sv) for sv, j in zip(sims[0], ids[0]) if j >= 0]

    runners = {"before (dense, FAISS top-k)": before, "dense": lambda q: run("dense", q),
               "hybrid": lambda q: run("hybrid", q), "hybrid+understanding": lambda q: run("hybrid+understanding", q)}
    times: dict[str, list[float]] = {m: [] for m in runners}
    for fn in runners.values():
        fn("warm-up 100 ms")
    for _ in range(2):
        for r in rows:
            for mode, fn in runners.items():
                t = time.perf_counter()
                fn(r["query"])
                times[mode].append(time.perf_counter() - t)
    for mode, ts in times.items():
        print(f"  latency per query, {mode:<27} (n={len(ts)}): p50 {_pct(ts, 50):.1f} ms, p95 {_pct(ts, 95):.1f} ms")


def _recall(idx, docs) -> None:
    table = scp_codes()
    covering = {c: {d.id for d in docs if c in d.codes.scp} for c in table}
    rows, ev_times, ev_dense_times = [], [], []
    dense_idx = ix.load_index(idx.path, idx._model_dir, idx.settings.model_copy(update={"retrieval_mode": "dense"}))
    for code, row in table.items():
        m, sex, how = typical_measurements(code, docs)
        cands = evaluate_criteria(m, docs, sex=sex)
        t = time.perf_counter()
        ev = retrieve_evidence(idx, m, cands, k=K)
        ev_times.append(time.perf_counter() - t)
        rank = next((i + 1 for i, p in enumerate(ev.passages) if p.doc_id in covering[code]), 0)
        t = time.perf_counter()
        ev_dense = retrieve_evidence(dense_idx, m, cands, k=K)
        ev_dense_times.append(time.perf_counter() - t)
        dense_rank = next((i + 1 for i, p in enumerate(ev_dense.passages) if p.doc_id in covering[code]), 0)
        base_hits = idx.search(row["description"], K)
        base_rank = next((i + 1 for i, p in enumerate(base_hits) if p.doc_id in covering[code]), 0)
        top_codes = [f"{c.code}:{c.score:.2f}" for c in cands.candidates[:4]]
        cand_rank = next((i + 1 for i, c in enumerate(cands.candidates) if c.code == code), 0)
        rows.append(dict(code=code, how=how, rank=rank, dense_rank=dense_rank, base_rank=base_rank, top=top_codes, cand_rank=cand_rank,
                         query=ev.query.splitlines()[0] if ev.query else "", lines=ev.query.splitlines()))

    search_times = []
    lines = [ln for r in rows for ln in r["lines"]]
    idx.search("warm-up", K)
    for ln in lines:
        t = time.perf_counter()
        idx.search(ln, K)
        search_times.append(time.perf_counter() - t)

    def recall(key, sel=lambda r: True):
        rs = [r for r in rows if sel(r)]
        return (sum(1 for r in rs if r[key]) / len(rs), sum(1 / r[key] for r in rs if r[key]) / len(rs), len(rs))

    print(f"search latency per query line (n={len(search_times)}): p50 {_pct(search_times, 50):.1f} ms, "
          f"p95 {_pct(search_times, 95):.1f} ms")
    print(f"retrieve_evidence latency per statement (n={len(ev_times)}), {idx.mode}: p50 {_pct(ev_times, 50):.1f} ms, "
          f"p95 {_pct(ev_times, 95):.1f} ms; dense: p50 {_pct(ev_dense_times, 50):.1f} ms, "
          f"p95 {_pct(ev_dense_times, 95):.1f} ms")
    print(f"knowledge: {len(docs)} documents, {len(idx)} chunks, index {idx.index_hash}, "
          f"embedding model {idx.embedding_model_name} (sha256 {idx.embedding_model_sha256[:12]}...)")
    print(f"statements covered by a document: {sum(1 for c in covering.values() if c)} / {len(table)}")
    for label, sel in (("all", lambda r: True), ("with a rule", lambda r: r["how"] == "rule"),
                       ("without a rule", lambda r: r["how"] != "rule")):
        rc, mrr, n = recall("rank", sel)
        drc, dmrr, _ = recall("dense_rank", sel)
        brc, bmrr, _ = recall("base_rank", sel)
        print(f"recall@{K} {label} (n={n}): pipeline query, {idx.mode} {rc:.3f} (MRR {mrr:.3f}), dense {drc:.3f} "
              f"(MRR {dmrr:.3f}); description-only baseline ({idx.mode}) {brc:.3f} (MRR {bmrr:.3f})")
    misses = [r for r in rows if not r["rank"]]
    for r in misses:
        print(f"  miss {r['code']:<7} ({r['how']}, candidate rank {r['cand_rank']}) top candidates {r['top']} query: {r['query'][:110]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-batch", action="store_true", help="skip the batch-size comparison")
    ap.add_argument("--recall-only", action="store_true",
                    help="only recall/MRR and latencies (index kept in --home between runs; no build timing)")
    ap.add_argument("--home", type=Path, default=None, help="RAGECG home for --recall-only")
    args = ap.parse_args()
    print("command: python " + " ".join(sys.argv))

    base = get_settings()
    work = Path(tempfile.mkdtemp(prefix="ragecg-bench-"))
    try:
        kb = work / "knowledge"
        for d in base.knowledge_dirs:
            shutil.copytree(d, kb, dirs_exist_ok=True)
        home = args.home if (args.recall_only and args.home) else work / "home"
        settings = get_settings(home=home, knowledge_dirs=[kb])
        docs = load_documents([kb])
        model_dir = ix.embedding_model_dir(settings)

        t = time.perf_counter()
        embed._sentence_transformer(model_dir)
        t_model = time.perf_counter() - t
        print(f"embedding model load: {t_model:.2f} s")
        if args.recall_only:
            idx = ix.ensure_index(settings)
            _recall(idx, docs)
            _clinician(idx, docs)
            return

        fresh = ix.build_index(settings, force=True)
        target = Path(docs[0].path)                 # one curated document, first by id
        original = target.read_text(encoding="utf-8")
        target.write_text(original.rstrip() + "\n\nOne more sentence appended for the incremental benchmark.\n",
                          encoding="utf-8")
        incr = ix.build_index(settings)
        target.write_text(original, encoding="utf-8")
        back = ix.build_index(settings)
        identical = all((back.path / n).read_bytes() == (fresh.path / n).read_bytes()
                        for n in ("index.faiss", "chunks.json", "manifest.json"))

        loads, ensures = [], []
        for _ in range(5):
            t = time.perf_counter()
            ix.load_index(back.path, model_dir)
            loads.append(time.perf_counter() - t)
            t = time.perf_counter()
            idx = ix.ensure_index(settings)
            ensures.append(time.perf_counter() - t)
        _SHA_MEMO.clear()                       # the digest cache on disk still answers (as in a new process)
        t = time.perf_counter()
        ix.ensure_index(settings)
        ensure_cold_sha = time.perf_counter() - t

        print(f"build from scratch: {fresh.seconds:.2f} s ({fresh.n_embedded} chunks embedded)")
        print(f"incremental build after editing {target.name}: {incr.seconds:.2f} s "
              f"({incr.n_embedded} embedded, {incr.n_reused} reused) -> {fresh.seconds / incr.seconds:.1f}x faster")
        print(f"revert + incremental build byte-identical to the fresh build: {identical}")
        print(f"load_index: median {statistics.median(loads) * 1000:.1f} ms; ensure_index (up to date): "
              f"median {statistics.median(ensures) * 1000:.1f} ms, first in a process (model digest from the disk cache) "
              f"{ensure_cold_sha * 1000:.0f} ms")
        idx = ix.ensure_index(settings)
        _recall(idx, docs)
        _clinician(idx, docs)

        if not args.skip_batch:
            chunks_text = [f"{t}" for t in idx._chunks["text"][:64]]
            import torch

            model = embed._sentence_transformer(model_dir)
            torch.set_num_threads(embed.EMBED_THREADS)     # as in ix.embed_texts, for both batch sizes
            timings = {}
            out = {}
            for bs in (1, 32):
                t = time.perf_counter()
                out[bs] = model.encode(chunks_text, batch_size=bs, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
                timings[bs] = time.perf_counter() - t
            print(f"embedding {len(chunks_text)} chunks: batch 1 {timings[1]:.2f} s, batch 32 {timings[32]:.2f} s "
                  f"(batch 32 / batch 1 = {timings[32] / timings[1]:.2f}); max |diff| "
                  f"{float(np.abs(out[1] - out[32]).max()):.1e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
