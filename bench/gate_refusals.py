"""False refusals of the quality gate on real, unmodified records: how many records and leads the gate
(`ragecg.quality.checked_signal`: mains notch, per-lead rules, beat agreement) refuses or excludes.

    python bench/gate_refusals.py                      # LUDB 1-200 + PTB-XL fold 9 (validation), 100 Hz
    python bench/gate_refusals.py --ptbxl-limit 300    # quicker

PTB-XL fold 9 is the validation fold; its labels are not read here except the dataset's own signal-quality
columns (baseline_drift, static_noise, burst_noise, electrodes_problems), printed beside each refused
record so that a refusal of a record the annotators marked noisy can be told from a false one. Fold 10
(the test fold) is not used.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.signal.quality import checked_signal  # noqa: E402
from ludb_uv import read_ludb_uv  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402

NOISE_COLUMNS = ("baseline_drift", "static_noise", "burst_noise", "electrodes_problems")


def gate(load) -> tuple[str, list[str], list[str], bool]:
    """(verdict, first reason, leads excluded, mains notch applied) of the record `load()` reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, q = checked_signal(load())
    excluded = [ld for ld, lq in q.leads.items() if lq.state not in ("good", "noisy")]
    return q.verdict, q.reasons[:1], excluded, bool(q.mains_filter_hz)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ptbxl-limit", type=int, default=None, help="first N fold-9 records (default: all)")
    args = ap.parse_args(argv)
    import pandas as pd

    data = get_settings().data_dir
    t0 = time.perf_counter()
    # LUDB's amplitudes are read as microvolts (bench/ludb_uv.py: its header gains scale every lead to 1 mV p-p)
    sets: dict[str, list[tuple[str, Callable, str]]] = {
        "LUDB 1-100 (development)": [(str(i), partial(read_ludb_uv, data, i), "") for i in range(1, 101)],
        "LUDB 101-200 (reported)": [(str(i), partial(read_ludb_uv, data, i), "") for i in range(101, 201)],
    }
    db = pd.read_csv(data / "ptbxl/ptbxl_database.csv", index_col="ecg_id")
    f9 = db[db.strat_fold == 9]
    if args.ptbxl_limit:
        f9 = f9.iloc[: args.ptbxl_limit]
    sets["PTB-XL fold 9 (validation), 100 Hz"] = [
        (str(eid), partial(read_record, data / "ptbxl" / f"{row.filename_lr}.hea"),
         ", ".join(f"{c}={str(row[c]).strip(' ,')}" for c in NOISE_COLUMNS if isinstance(row[c], str)) or "none")
        for eid, row in f9.iterrows()]
    cmd = "python bench/gate_refusals.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = []
    for name, items in sets.items():
        verdicts, excluded_leads, notched, refused = Counter(), 0, 0, []
        for rid, load, noise in items:
            verdict, why, excl, notch = gate(load)
            verdicts[verdict] += 1
            excluded_leads += len(excl)
            notched += notch
            if verdict == "unusable":
                refused.append(f"{rid} ({why[0][:90] if why else ''}{'; annotated noise: ' + noise if noise else ''})")
        n = len(items)
        lines.append(f"| {name} | {n} | {verdicts['unusable']} ({100 * verdicts['unusable'] / n:.1f} %) | "
                     f"{verdicts['limited']} | {excluded_leads} | {notched} |")
        for r in refused:
            lines.append(f"|  refused: {r} | | | | | |")
        print(f"{name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print(f"Quality gate on unmodified records, command: `{cmd.strip()}`, {time.perf_counter() - t0:.0f} s\n")
    print("| records | n | refused (exit 4) | limited | leads excluded | mains notch applied |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
