"""Conduction-defect design data from PTB-XL fold 9 (the validation fold; never fold 10): per record, the
measurements behind the CRBBB / CLBBB / IRBBB / LAFB / IVCD rules and what the decision layer made of them.

    python bench/conduction_fold9.py --out /tmp/cd9.jsonl            # labelled records + 200 NORM
    python bench/conduction_fold9.py --summary /tmp/cd9.jsonl        # the breakdown table only

Records: every fold-9 record labelled CRBBB, CLBBB, IRBBB, LAFB or IVCD (any likelihood) and a fixed random
sample (seed 9) of `--norm` NORM records without them. Each: `read_record` -> `analyse_ecg` (all leads, no
quality gate) -> `evaluate_criteria` -> `decide` with the shipped knowledge base and statement logic, sex
from the database. The summary sorts every miss of a labelled statement into one cause: the QRS-duration
condition failed, a morphology condition failed (which), the rule fired but the decision layer called it
borderline (which condition), or the statement was suppressed by another one.
"""
from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.compose.decision import decide  # noqa: E402
from ragecg.criteria.evaluate import evaluate_criteria  # noqa: E402
from ragecg.errors import RagecgError  # noqa: E402
from ragecg.knowledge.documents import load_documents, load_statement_logic  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402

CODES = ("CRBBB", "CLBBB", "IRBBB", "LAFB", "IVCD")
LEADS = ("I", "aVL", "V1", "V2", "V5", "V6")
LEAD_KEYS = ("r_peak_time_ms", "r_amplitude_mv", "r_prime_amplitude_mv", "s_amplitude_mv", "q_amplitude_mv",
             "qrs_notch_count")


def row_of(path: Path, docs, logic, sex) -> dict:
    a = analyse_ecg(read_record(path))
    m = a.measurements
    cand = evaluate_criteria(m, docs, sex=sex)
    dec = decide(cand, m, logic, docs)
    b = a.boundaries
    out = {"qrs_duration_ms": m.qrs_duration_ms, "qrs_u_ms": m.uncertainty.get("qrs_duration_ms"),
           "qrs_axis_deg": m.qrs_axis_deg, "heart_rate_bpm": m.heart_rate_bpm,
           "bounds": None if b is None else {k: getattr(b, k) for k in ("qrs_on", "qrs_off", "qrs_on_leads",
                                                                          "qrs_off_leads", "j_point")},
           "fs": None if a.beats is None else a.beats.fs,
           "leads": {ld: {k: getattr(m.leads[ld], k) for k in LEAD_KEYS} for ld in LEADS if ld in m.leads},
           "scores": {c: cand.scores.get(c, 0.0) for c in CODES},
           "status": {s.code: s.status for s in dec.statements if s.code in CODES},
           "suppressed": {s.code: s.by for s in dec.suppressed if s.code in CODES}}
    conds = {}
    for c in cand.candidates:
        if c.code in CODES:
            conds[c.code] = [(r.evidence_key, r.value, r.op, r.threshold, bool(r.met)) for r in c.conditions]
    out["conditions"] = conds
    out["borderline_by"] = {s.code: [cs.key for cs in s.conditions if cs.status == "borderline"]
                            for s in dec.statements if s.code in CODES and s.status == "borderline"}
    return out


def cause(code: str, r: dict) -> str:
    if r.get("error"):
        return "refused"
    if r["status"].get(code) == "definite":
        return "found"
    if code in r["suppressed"]:
        return f"suppressed by {r['suppressed'][code]}"
    if r["status"].get(code) == "borderline":
        return "borderline: " + ",".join(sorted(set(r["borderline_by"].get(code, []))))
    failed = [f"{k} {op} {t} (None)" if v is None else f"{k} {op} {t}" for k, v, op, t, met in r["conditions"].get(code, [])
              if not met]
    qrs = [f for f in failed if f.startswith("qrs_duration_ms")]
    other = [f for f in failed if not f.startswith("qrs_duration_ms")]
    if qrs and other:
        return "QRS duration and morphology failed"
    if qrs:
        return "QRS duration failed: " + qrs[0]
    return "morphology failed: " + "; ".join(other)


def summary(rows: list[dict]) -> None:
    for code in CODES:
        lab = [r for r in rows if code in r["labels"]]
        c = Counter(cause(code, r) for r in lab)
        print(f"\n{code}: {len(lab)} labelled, found definite {c.get('found', 0)}")
        for k, v in c.most_common():
            if k != "found":
                print(f"  {v:4d}  {k}")
        neg = [r for r in rows if code not in r["labels"] and "NORM" in r["labels"]]
        fp = sum(r["status"].get(code) == "definite" and code not in r["suppressed"] for r in neg)
        print(f"  definite on NORM sample without it: {fp}/{len(neg)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--summary", type=Path)
    ap.add_argument("--norm", type=int, default=200)
    args = ap.parse_args()
    if args.summary:
        summary([json.loads(x) for x in args.summary.read_text().splitlines()])
        return
    print("command: python " + " ".join(sys.argv), file=sys.stderr)
    settings = get_settings()
    docs = load_documents(list(settings.knowledge_dirs))
    logic = load_statement_logic(list(settings.knowledge_dirs))
    ptb = settings.data_dir / "ptbxl"
    db = pd.read_csv(ptb / "ptbxl_database.csv", index_col=0)
    db = db[db.strat_fold == 9]
    labels = db.scp_codes.apply(ast.literal_eval)
    chosen = [i for i in db.index if set(CODES) & set(labels[i])]
    norm = [i for i in db.index if "NORM" in labels[i] and not set(CODES) & set(labels[i])]
    random.Random(9).shuffle(norm)
    ids = sorted(set(chosen) | set(norm[:args.norm]))
    rows, t0 = [], time.perf_counter()
    with args.out.open("w") as fh:
        for i in ids:
            sex = "M" if db.loc[i, "sex"] == 0 else "F"   # PTB-XL: 0 male, 1 female
            try:
                r = row_of(ptb / (db.loc[i, "filename_lr"] + ".hea"), docs, logic, sex)
            except RagecgError as e:
                r = {"error": type(e).__name__}
            r.update(ecg_id=int(i), labels=sorted(labels[i]))
            rows.append(r)
            fh.write(json.dumps(r) + "\n")
    print(f"{len(rows)} records in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    summary(rows)


if __name__ == "__main__":
    main()
