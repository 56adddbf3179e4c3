"""Peak memory of batch work: `ragecg evaluate --no-llm` over N PTB-XL fold-9 records (100 Hz), each run in
a fresh process, its peak RSS read from the parent with getrusage(RUSAGE_CHILDREN) (Linux: KiB). The
baseline is the same command over fewer records in the same run; bounded memory means the ratio stays
near 1 however many records are processed.

    python bench/memory.py                       # 100 vs 1,000 records (fold 9 = validation), ~10 min
    python bench/memory.py --small 20 --large 200
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# One wrapper process per measurement: RUSAGE_CHILDREN of the wrapper is then the evaluate process alone.
WRAPPER = ("import json, resource, subprocess, sys, time\n"
           "t = time.perf_counter()\n"
           "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
           "print(json.dumps({'rc': r.returncode, 'stderr': r.stderr[-2000:], 'seconds': time.perf_counter() - t,\n"
           "                  'rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")


def evaluate_args(limit: int, run_dir: Path) -> list[str]:
    return ["-m", "ragecg.cli", "evaluate", "--folds", "9", "--sampling-rate", "100", "--no-llm",
            "--limit", str(limit), "--out", str(run_dir)]


def peak_rss(limit: int, run_dir: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, *evaluate_args(limit, run_dir)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "RAGECG_DEBUG": "0"})
    out = json.loads(res.stdout)
    pred = run_dir / "predictions.jsonl"
    rows = sum(1 for _ in open(pred, encoding="utf-8")) if pred.is_file() else 0
    return {**out, "rows": rows, "rss_mib": out["rss_kib"] / 1024}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=100, help="records of the baseline run")
    ap.add_argument("--large", type=int, default=1000, help="records of the measured run")
    args = ap.parse_args(argv)
    cmd = "python bench/memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {}
    # The knowledge index is built (or found up to date) first, so that neither run pays for building it.
    subprocess.run([sys.executable, "-m", "ragecg.cli", "knowledge", "build"], cwd=REPO, check=True,
                   capture_output=True)
    with tempfile.TemporaryDirectory(prefix="ragecg_mem_") as tmp:
        for n in (args.small, args.large):
            r = peak_rss(n, Path(tmp) / f"run{n}")
            if r["rc"] not in (0, 6):
                print(f"evaluate --limit {n} failed (rc {r['rc']}): {r['stderr']}", file=sys.stderr)
                return 1
            results[n] = r
            print(f"{n} records: {r['rss_mib']:.0f} MiB peak RSS, {r['seconds']:.0f} s", file=sys.stderr)
    small, large = results[args.small], results[args.large]
    shown = " ".join(evaluate_args(args.large, Path("RUN_DIR"))[2:])
    print(f"Peak RSS of batch work, command: `{cmd.strip()}` (each run: `ragecg {shown}` in a fresh process)\n")
    print("| records (PTB-XL fold 9, 100 Hz, criteria-only) | rows written | peak RSS MiB | wall s |")
    print("|---|---|---|---|")
    for n, r in results.items():
        print(f"| {n} | {r['rows']} | {r['rss_mib']:.0f} | {r['seconds']:.0f} |")
    print(f"\nratio {args.large} / {args.small} records: {large['rss_mib'] / small['rss_mib']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
