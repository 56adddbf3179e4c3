"""Batch throughput of `ragecg evaluate` (criteria only): 1 worker against N worker processes.

    python bench/evaluate.py                          # 120 fold-9 records, 1 vs 2 workers
    python bench/evaluate.py --records 300 --workers 4

The same fixed sample of PTB-XL fold-9 (validation) records at 100 Hz (numpy default_rng(seed)
choice, sorted) is run through `ragecg.app.eval.runner.iter_rows` once with one worker (in this
process) and once with a process pool, one after the other, criteria only, no retrieval
(criteria-only codes and scores do not depend on the retrieved passages). Wall time includes
building `Resources` and, for the pool, starting the processes (what a user sees); "steady" is the
rate between the 10th and the last record (start-up excluded). The rows of both runs are checked
to be the same (timings aside). Labels are not read. The machine's load average is printed: on a
shared machine the ratio says more about the other jobs than about ragecg.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.app.eval.labels import load_database  # noqa: E402
from ragecg.app.eval.runner import iter_rows, select_ptbxl_items  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402

KEYS = ("record_id", "status", "error", "codes", "scores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ptbxl", type=Path, default=None)
    args = ap.parse_args()
    settings = get_settings()
    ptbxl = args.ptbxl or settings.data_dir / "ptbxl"
    db = load_database(ptbxl)
    items, missing = select_ptbxl_items(db, ptbxl, folds=[9], sampling_rate_hz=100, sample=args.records, seed=args.seed)
    print(f"command: python bench/evaluate.py {shlex.join(sys.argv[1:])}")
    print(f"{len(items)} fold-9 records at 100 Hz (seed {args.seed}), criteria only, no retrieval; "
          f"{os.cpu_count()} CPU cores visible; load average before: {os.getloadavg()[0]:.2f}")
    results = {}
    for workers in (1, args.workers):
        t = time.perf_counter()
        rows, at = [], []
        for row in iter_rows(items, settings=settings, use_llm=False, use_retrieval=False, workers=workers):
            rows.append(row)
            at.append(time.perf_counter() - t)
        wall = at[-1]
        steady = (len(at) - 10) / (at[-1] - at[9]) if len(at) > 20 else float("nan")
        results[workers] = (rows, wall, steady)
        ok = sum(r["status"] == "ok" for r in rows)
        print(f"workers={workers}: {len(rows)} records ({ok} ok) in {wall:.1f} s -> {len(rows) / wall:.2f} records/s "
              f"(first row after {at[0]:.1f} s; steady {steady:.2f} records/s)")
    (r1, w1, s1), (rn, wn, sn) = results[1], results[args.workers]
    same = sorted(({k: r.get(k) for k in KEYS} for r in r1), key=lambda r: r["record_id"]) == \
        sorted(({k: r.get(k) for k in KEYS} for r in rn), key=lambda r: r["record_id"])
    print(f"speed-up {args.workers} workers / 1 worker: {w1 / wn:.2f}x wall, {sn / s1:.2f}x steady; "
          f"rows identical: {same}; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
