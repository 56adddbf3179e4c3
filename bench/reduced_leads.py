"""Reduced-lead input (issue 19): the same LUDB records read as lead sets of 12, 6, 3, 2 and 1 lead(s);
interval error of each set against the 12-lead result of the same record, in the same run.

    python bench/reduced_leads.py                     # LUDB 101-200 (the reported half)
    python bench/reduced_leads.py --first 1 --limit 20

Lead sets: the PhysioNet/CinC Challenge 2021 sets (Reyna et al., CinC 2021): 6 = I, II, III, aVR, aVL,
aVF; 3 = I, II, V2; 2 = I, II; and a single-lead strip (II). Leads are LUDB's stored microvolts (its
header gains normalise every lead: SOURCES.md), written as WFDB files holding only the set's leads and
read through `read_record` (so the missing leads are listed, the limb leads derived where two of I, II,
III are there), gated by `checked_signal` and measured by `measure_ecg`, as `ragecg measure` does.
Figures: mean +/- SD of (set - 12-lead) per interval over the records both measure, and how many records
each set refuses or leaves without the value.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.errors import RagecgError
from ragecg.reading import read_record
from ragecg.settings import get_settings
from ragecg.signal import checked_signal, measure_ecg
from ragecg.values import STANDARD_LEADS

SETS = {"12": STANDARD_LEADS, "6 (limb)": ("I", "II", "III", "aVR", "aVL", "aVF"), "3 (I, II, V2)": ("I", "II", "V2"),
        "2 (I, II)": ("I", "II"), "1 (II)": ("II",)}
KEYS = ("heart_rate_bpm", "pr_interval_ms", "qrs_duration_ms", "qt_interval_ms")


def measure_set(x_mv: np.ndarray, leads, tmp: Path, name: str) -> dict | None:
    import wfdb

    idx = [STANDARD_LEADS.index(ld) for ld in leads]
    wfdb.wrsamp(name, fs=500, units=["mV"] * len(idx), sig_name=list(leads), p_signal=x_mv[:, idx],
                fmt=["16"] * len(idx), adc_gain=[1000.0] * len(idx), baseline=[0] * len(idx), write_dir=str(tmp))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ecg, q = checked_signal(read_record(tmp / f"{name}.hea"))
            if q.verdict == "unusable":
                return None
            m = measure_ecg(ecg, q.usable_leads())
    except RagecgError:
        return None
    return {k: getattr(m, k) for k in KEYS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=101)
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args(argv)
    import wfdb

    data = get_settings().data_dir
    t0 = time.perf_counter()
    rows: dict[str, list[dict | None]] = {s: [] for s in SETS}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for rid in range(args.first, args.first + args.limit):
            x = wfdb.rdrecord(str(data / f"ludb/data/{rid}"), physical=False).d_signal.astype(np.float64) / 1000.0
            for s, leads in SETS.items():
                rows[s].append(measure_set(x, leads, tmp, f"r{rid}"))
    cmd = "python bench/reduced_leads.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# Reduced-lead sets vs 12 leads, LUDB {args.first}-{args.first + args.limit - 1} ({time.perf_counter() - t0:.0f} s)")
    print(f"command: {cmd}\n")
    print("| lead set | refused | HR bpm | PR ms | QRS ms | QT ms |")
    print("|---|---|---|---|---|---|")
    for s in SETS:
        cells = []
        for k in KEYS:
            d = [b[k] - a[k] for a, b in zip(rows["12"], rows[s])
                 if a and b and a[k] is not None and b[k] is not None]
            lost = sum(1 for a, b in zip(rows["12"], rows[s]) if a and a[k] is not None and (not b or b[k] is None))
            cells.append(f"{np.mean(d):+.1f} ± {np.std(d):.1f} (n={len(d)}, lost {lost})" if d else "-")
        refused = sum(r is None for r in rows[s])
        print(f"| {s} | {refused}/{len(rows[s])} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
