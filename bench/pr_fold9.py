"""ragecg's PR on PTB-XL fold 9 (100 Hz) against the 1AVB calls of GE 12SL and of the cardiologists.

    python bench/pr_fold9.py [--run RUN_DIR]     # fold 9 only (the validation fold); ~2 min on one core

Measures every fold-9 record (`analyse_ecg`, measurement only) and prints, per 10 ms bin of ragecg's PR,
how many records have a PR there and which share of them GE 12SL (PTB-XL+ statements, mapping of
ragecg.app.eval.twelvesl) and the cardiologists (PTB-XL scp_codes) call first-degree AV block, and the
share labelled NORM. With --run, the PR of the NORM-labelled records to which that run's decision layer
gave a definite or borderline 1AVB. Nothing is tuned from it: it says where, on ragecg's PR scale, the
other readers start to call 1AVB.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.app.eval.labels import load_database  # noqa: E402
from ragecg.app.eval.twelvesl import load_12sl_statements, twelvesl_scp_codes  # noqa: E402
from ragecg.errors import RagecgError  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="an evaluate run directory of fold 9")
    args = ap.parse_args(argv)
    s = get_settings()
    ptbxl = s.data_dir / "ptbxl"
    db = load_database(ptbxl)
    db = db[db["strat_fold"] == 9]
    sl = load_12sl_statements(s.data_dir / "ptbxl_plus")
    rows = {}
    for i, (eid, r) in enumerate(db.iterrows()):
        if int(eid) not in sl:
            continue
        try:
            m = analyse_ecg(read_record(ptbxl / (r["filename_lr"] + ".hea"))).measurements
        except RagecgError:
            continue
        codes = r["scp_codes"] if isinstance(r["scp_codes"], dict) else ast.literal_eval(r["scp_codes"])
        rows[int(eid)] = {"pr": m.pr_interval_ms, "u": m.uncertainty.get("pr_interval_ms"),
                          "sl": "1AVB" in twelvesl_scp_codes(sl[int(eid)]), "lab": "1AVB" in codes,
                          "norm": "NORM" in codes}
        if i % 200 == 0:
            print(f"\r{i}/{len(db)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    ok = [v for v in rows.values() if v["pr"] is not None]
    pr = np.array([v["pr"] for v in ok])
    sl_ = np.array([v["sl"] for v in ok])
    lab = np.array([v["lab"] for v in ok])
    norm = np.array([v["norm"] for v in ok])
    print(f"PTB-XL fold 9, 100 Hz: {len(rows)} records measured with 12SL statements, {len(ok)} with a PR; "
          f"ragecg PR > 200 ms: {int(np.sum(pr > 200))}, 12SL 1AVB: {int(sl_.sum())}, cardiologists' 1AVB: "
          f"{int(lab.sum())}")
    print()
    print("| ragecg PR, ms | records | 12SL calls 1AVB | cardiologists' 1AVB | labelled NORM |")
    print("|---|---|---|---|---|")
    for lo in range(170, 260, 10):
        sel = (pr >= lo) & (pr < lo + 10)
        k = int(sel.sum())
        if k:
            print(f"| {lo}-{lo + 9} | {k} | {sl_[sel].mean():.2f} | {lab[sel].mean():.2f} | {norm[sel].mean():.2f} |")
    sel = pr >= 260
    if sel.any():
        print(f"| >= 260 | {int(sel.sum())} | {sl_[sel].mean():.2f} | {lab[sel].mean():.2f} | {norm[sel].mean():.2f} |")
    if args.run is not None:
        preds = [json.loads(line) for line in (args.run / "predictions.jsonl").read_text().splitlines() if line.strip()]
        for status, key in (("definite", "codes"), ("borderline", "borderline")):
            v = [rows[p["ecg_id"]] for p in preds if p.get("status") == "ok" and p["ecg_id"] in rows
                 and rows[p["ecg_id"]]["norm"] and "1AVB" in (p.get(key) or [])]
            p_ = np.array([x["pr"] for x in v if x["pr"] is not None])
            u_ = np.array([x["u"] for x in v if x["u"] is not None])
            if p_.size:
                print()
                print(f"NORM-labelled records with a {status} 1AVB in {args.run.name}: {len(v)}; ragecg PR median "
                      f"{np.median(p_):.0f} ms (quartiles {np.percentile(p_, 25):.0f}-{np.percentile(p_, 75):.0f}), "
                      f"<= 210 ms: {int(np.sum(p_ <= 210))}, <= 220 ms: {int(np.sum(p_ <= 220))}; PR uncertainty "
                      f"median {np.median(u_):.1f} ms; 12SL calls 1AVB in {sum(x['sl'] for x in v)} of them")
    print()
    cmd = "python bench/pr_fold9.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    print(f"Command: `{cmd}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
