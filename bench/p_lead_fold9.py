"""Lead II's own P duration against the global P duration on PTB-XL fold 9 (design fold), by label.

    python bench/p_lead_fold9.py                 # records labelled NORM or LAO/LAE, 100 Hz files

For the records labelled NORM (without LAO/LAE) and those labelled LAO/LAE: how many have each value,
lead II minus global (mean +/- SD, median), how many are above 120 ms (AHA/ACCF/HRS 2009 Part V) by
each, their median and 98th percentile, and the median beat-to-beat uncertainty of each. Measurement
only (`analyse_ecg`), no decision; records the measurement refuses are left out.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.errors import RagecgError  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402

LAE_P_MS = 120.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--fold", type=int, default=9)
    args = ap.parse_args(argv)
    if args.fold == 10:
        raise SystemExit("fold 10 is the test fold: not looked at here")
    import pandas as pd

    root = (args.data_dir or get_settings().data_dir) / "ptbxl"
    db = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    db = db[db.strat_fold == args.fold]
    rows = []
    for _, r in db.iterrows():
        codes = ast.literal_eval(r.scp_codes)
        group = "LAO/LAE" if "LAO/LAE" in codes else "NORM" if "NORM" in codes else None
        if group is None:
            continue
        try:
            m = analyse_ecg(read_record(root / (r.filename_lr + ".hea"))).measurements
        except RagecgError:
            continue
        ii = m.leads.get("II")
        rows.append((group, m.p_duration_ms, None if ii is None else ii.p_duration_ms,
                     m.uncertainty.get("p_duration_ms"), m.uncertainty.get("p_duration_ms[II]")))
    print(f"PTB-XL fold {args.fold}, 100 Hz: lead II's own P duration vs the global P duration")
    print("| label | records | global / lead II measured | lead II - global, ms (mean ± SD; median) | "
          "> 120 ms: global / lead II | median, 98th pct: global / lead II | median uncertainty: global / lead II |")
    print("|---|---|---|---|---|---|---|")
    for group in ("NORM", "LAO/LAE"):
        rs = [x for x in rows if x[0] == group]
        both = [x for x in rs if x[1] is not None and x[2] is not None]
        d = np.array([x[2] - x[1] for x in both])
        g, ii = np.array([x[1] for x in both]), np.array([x[2] for x in both])
        ug = [x[3] for x in both if x[3] is not None]
        ui = [x[4] for x in both if x[4] is not None]
        print(f"| {group} | {len(rs)} | {sum(x[1] is not None for x in rs)} / {sum(x[2] is not None for x in rs)} | "
              f"{d.mean():+.1f} ± {d.std(ddof=1):.1f}; {np.median(d):+.1f} (n {len(both)}) | "
              f"{sum(1 for x in rs if x[1] is not None and x[1] > LAE_P_MS)} / "
              f"{sum(1 for x in rs if x[2] is not None and x[2] > LAE_P_MS)} | "
              f"{np.median(g):.0f}, {np.percentile(g, 98):.0f} / {np.median(ii):.0f}, {np.percentile(ii, 98):.0f} | "
              f"{np.median(ug):.1f} / {np.median(ui):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
