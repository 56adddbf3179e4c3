"""The LLM stage of two checkouts on the same 40 PTB-XL fold-9 records: tokens, decode calls and
seconds of the LLM call, and whether its output is as good (codes against the labels, cited keys,
grounding). For a change to the prompt or the decoder (issue 23).

    python bench/llm_compare.py --base /path/to/baseline/checkout          # every 50th fold-9 record, 40
    python bench/llm_compare.py --base ../main --every 50 --records 40 --out /tmp/cmp

Records: fold 9 (validation) at 100 Hz, sorted by ecg_id, every `--every`th, the first `--records`
(a fixed choice, no randomness). Fold 10 is never read. Each checkout runs in its own process
(its directory first on PYTHONPATH), with the embedded LLM and retrieval as `ragecg diagnose` has
them; the two run as two whole passes, one after the other (one model per process): compare tokens
and decode calls (exact) and CPU seconds (less sensitive to a shared machine's load than wall
seconds). Labels (`scp_codes`, any likelihood) are read only to score both after the runs.

Printed: per checkout the medians of prompt tokens (of them from the prefix cache), answer tokens,
decode calls, LLM seconds, TTFT and process CPU seconds per record; the reported codes' micro
precision / recall / F1 over the 71 statements; how many records' codes, LLM confidences and cited
keys are identical between the two; grounding (LLM sentences whose keys were all shown, sentences
dropped by reason).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(ids: list[int], out: Path) -> None:
    """Diagnose the records (this process's `ragecg`) and write one JSON line per record."""
    import ragecg
    from ragecg.app.eval.labels import load_database
    from ragecg.errors import RagecgError
    from ragecg.pipeline import Resources, diagnose
    from ragecg.reading.record import read_record
    from ragecg.settings import get_settings
    print(f"worker: {ragecg.__file__}", file=sys.stderr)
    settings = get_settings(llm_timeout_s=600.0)
    ptbxl = settings.data_dir / "ptbxl"
    db = load_database(ptbxl)
    res = Resources(settings=settings, use_llm=True, use_retrieval=True)
    with open(out, "w") as fh:
        for eid in ids:
            rel = db.at[eid, "filename_lr"]
            ecg = read_record(ptbxl / (rel + ".hea"))
            c = time.process_time()
            try:
                d = diagnose(ecg, resources=res).diagnosis
            except RagecgError as e:                  # refused by the quality gate: no LLM call
                fh.write(json.dumps({"ecg_id": int(eid), "status": f"refused ({e.exit_code})"}) + "\n")
                continue
            cpu = time.process_time() - c
            llm = d.llm
            fh.write(json.dumps({
                "ecg_id": int(eid), "status": llm.status, "codes": sorted(f.code for f in d.codes),
                "borderline": sorted(f.code for f in d.borderline), "offered": d.offered_codes,
                "scores": {k: d.scores.get(k) for k in d.offered_codes},
                "llm_sentences": [{"section": s.section, "text": s.text, "evidence": s.evidence}
                                  for s in d.narrative if s.origin == "llm"],
                "dropped": d.dropped_sentences, "stripped_keys": d.stripped_keys,
                "sentences_raw": llm.sentences_raw, "sentences_keys_valid": llm.sentences_keys_valid,
                "prompt_tokens": llm.prompt_tokens, "cached": llm.cached_prompt_tokens,
                "answer_tokens": llm.completion_tokens, "decode_calls": llm.decode_calls,
                "llm_s": llm.seconds, "ttft_s": llm.ttft_s, "cpu_s": cpu}) + "\n")
            fh.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the baseline checkout (its ragecg/ is imported)")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--records", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None, help="folder for the per-record JSON lines (default: a temp folder)")
    ap.add_argument("--reuse", action="store_true", help="keep a checkout's lines from an earlier run in --out when "
                                                          "they cover the same records (base.jsonl, new.jsonl)")
    ap.add_argument("--worker", nargs=2, metavar=("IDS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker([int(x) for x in args.worker[0].split(",")], Path(args.worker[1]))
        return

    sys.path.insert(0, str(REPO))
    from bench.llm import prf            # micro precision / recall / F1 of code sets, as bench/llm.py scores them
    from ragecg.app.eval.labels import load_database, load_statements, record_labels, task_definition
    from ragecg.settings import get_settings
    ptbxl = get_settings().data_dir / "ptbxl"
    db = load_database(ptbxl)
    ids = [int(i) for i in db[db.strat_fold == 9].sort_index().index[::args.every][:args.records]]
    task = task_definition("all", load_statements(ptbxl))
    labels = {i: record_labels(db.at[i, "scp_codes"], task) for i in ids}
    out = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / "ragecg-llm-compare"
    out.mkdir(parents=True, exist_ok=True)
    print(f"command: python bench/llm_compare.py {shlex.join(sys.argv[1:])}")
    print(f"{len(ids)} fold-9 records (every {args.every}th ecg_id from {ids[0]}); {os.cpu_count()} CPU cores; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    sides = {"base": args.base.resolve(), "new": REPO}
    rows: dict[str, list[dict]] = {}
    for name, path in sides.items():
        env = dict(os.environ, PYTHONPATH=str(path), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        f = out / f"{name}.jsonl"
        t = time.perf_counter()
        old = [json.loads(x)["ecg_id"] for x in f.read_text().splitlines()] if f.is_file() else []
        if not (args.reuse and old == ids):
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--base", str(path), "--worker",
                            ",".join(map(str, ids)), str(f)], cwd=path, env=env, check=True)
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        rows[name] = [x for x in lines if "codes" in x]
        print(f"{name} ({path}): {len(rows[name])} records diagnosed, {len(lines) - len(rows[name])} refused by the "
              f"quality gate, in {time.perf_counter() - t:.0f} s, "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)

    def med(name, key):
        xs = [r[key] for r in rows[name] if r.get(key) is not None]
        return statistics.median(xs) if xs else float("nan")

    print("\n| checkout | LLM ok | prompt tokens (cached) | answer tokens | decode calls | LLM call (s) | TTFT (s) | "
          "CPU per record (s) | codes P / R / F1 | LLM sentences | all keys shown | dropped |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for name in sides:
        rs = rows[name]
        p, r, f1 = prf([(set(x["codes"]) | set(x["borderline"]), labels[x["ecg_id"]]) for x in rs])
        dropped: dict[str, int] = {}
        for x in rs:
            for k, v in (x["dropped"] or {}).items():
                dropped[k] = dropped.get(k, 0) + v
        raw = sum(x["sentences_raw"] or 0 for x in rs)
        valid = sum(x["sentences_keys_valid"] or 0 for x in rs)
        print(f"| {name} | {sum(x['status'] == 'ok' for x in rs)}/{len(rs)} | {med(name, 'prompt_tokens'):.0f} "
              f"({med(name, 'cached'):.0f}) | {med(name, 'answer_tokens'):.0f} | {med(name, 'decode_calls'):.0f} | "
              f"{med(name, 'llm_s'):.2f} | {med(name, 'ttft_s'):.2f} | {med(name, 'cpu_s'):.2f} | "
              f"{p:.3f} / {r:.3f} / {f1:.3f} | {raw} | {valid}/{raw} | {json.dumps(dropped)} |")
    b, n = {x["ecg_id"]: x for x in rows["base"]}, {x["ecg_id"]: x for x in rows["new"]}
    common = [i for i in ids if i in b and i in n]
    same = lambda f: sum(f(b[i]) == f(n[i]) for i in common)  # noqa: E731
    keys = lambda x: sorted({k for s in x["llm_sentences"] for k in s["evidence"]})  # noqa: E731
    print(f"\nSame in both ({len(common)} records): reported codes {same(lambda x: (x['codes'], x['borderline']))}, "
          f"LLM scores of the offered codes {same(lambda x: x['scores'])}, cited keys {same(keys)}, "
          f"LLM sentences {same(lambda x: x['llm_sentences'])}")
    for i in common:
        if (b[i]["codes"], b[i]["borderline"]) != (n[i]["codes"], n[i]["borderline"]):
            print(f"  ecg_id {i}: labels {sorted(labels[i])}; base {b[i]['codes']} + borderline {b[i]['borderline']} "
                  f"-> new {n[i]['codes']} + borderline {n[i]['borderline']}")
    cited = {name: sum(len(keys(x)) for x in rows[name]) for name in sides}
    print(f"cited keys in all: base {cited['base']}, new {cited['new']}")


if __name__ == "__main__":
    main()
