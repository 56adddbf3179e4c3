"""Serial comparison on PTB-XL patients with several ECGs: precision of the statements ragecg calls "new
since the prior ECG" (and "no longer present") against the pairs' own labels.

Pairs: within one fold (default 9, the validation fold; PTB-XL's folds split by patient, so a
patient's ECGs are all in one fold), each patient's ECGs ordered by recording date, every
consecutive (prior, new) pair. patient_id and recording_date are read only to form the pairs and are
never printed. Each record is diagnosed once (100 Hz), the pair compared with `serial.compare_reports`.

Labels: `scp_codes`, all 71 statements, any likelihood (as ragecg/eval/labels.py). A statement is
truly new when the new ECG's labels have it and the prior's do not.
  precision (new)          = |called new AND truly new| / |called new|
  precision (present)      = |called new AND in the new ECG's labels| / |called new|
  recall (new)             = |called new AND truly new| / |truly new|
and the same for "no longer present". 95 % CIs: percentile bootstrap over pairs (1,000 resamples,
seed 0). "No significant change" is set against pairs whose label sets are identical.

    python bench/serial_ptbxl.py                  # fold 9, criteria only
    python bench/serial_ptbxl.py --llm            # with the embedded LLM
Fold 10 is the held-out test fold: the project runs it once, at the end (`--fold 10`).
"""
from __future__ import annotations

import argparse
import ast
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ragecg.errors import RagecgError  # noqa: E402
from ragecg.pipeline import Resources, diagnose_ecg  # noqa: E402
from ragecg.reading import read_record  # noqa: E402
from ragecg.render import compare_reports  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402


def pairs_of_fold(ptbxl: Path, fold: int) -> tuple[list[tuple[int, int]], dict[int, set], dict[int, Path]]:
    db = pd.read_csv(ptbxl / "ptbxl_database.csv",
                     usecols=["ecg_id", "patient_id", "recording_date", "scp_codes", "strat_fold", "filename_lr"])
    db = db[db.strat_fold == fold]
    labels = {int(r.ecg_id): set(ast.literal_eval(r.scp_codes)) for r in db.itertuples()}
    paths = {int(r.ecg_id): ptbxl / (r.filename_lr + ".hea") for r in db.itertuples()}
    pairs = []
    for _, g in db.groupby("patient_id"):
        ids = [int(x) for x in g.sort_values(["recording_date", "ecg_id"]).ecg_id]
        pairs += list(zip(ids[:-1], ids[1:]))
    return sorted(pairs, key=lambda p: p[1]), labels, paths


def ratio(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.sum() / b.sum()) if b.sum() else float("nan")


def boot_ci(num: np.ndarray, den: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    vals = num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1e-12)
    vals = vals[den[idx].sum(axis=1) > 0]
    return (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if len(vals) else (np.nan, np.nan)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fold", type=int, default=9)
    ap.add_argument("--llm", action="store_true", help="with the embedded LLM (default: criteria only)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many pairs (the first by ecg_id)")
    args = ap.parse_args(argv)

    settings = get_settings()
    ptbxl = settings.data_dir / "ptbxl"
    pairs, labels, paths = pairs_of_fold(ptbxl, args.fold)
    if args.limit:
        pairs = pairs[:args.limit]
    resources = Resources(settings=settings, use_llm=args.llm, use_retrieval=args.llm)
    reports, failed = {}, 0
    ids = sorted({i for p in pairs for i in p})
    t0 = time.perf_counter()
    for n, eid in enumerate(ids, 1):
        try:
            reports[eid] = diagnose_ecg(read_record(paths[eid]), resources)
        except RagecgError:
            failed += 1
        print(f"\r{n}/{len(ids)} records ({time.perf_counter() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    rows = []
    called_new: Counter = Counter()
    for prior, new in pairs:
        if prior not in reports or new not in reports:
            continue
        c = compare_reports(reports[new], reports[prior])
        pred_new, pred_gone = set(c.new_codes()), set(c.gone_codes())
        true_new, true_gone = labels[new] - labels[prior], labels[prior] - labels[new]
        rows.append({"called_new": len(pred_new), "new_true": len(pred_new & true_new),
                     "new_present": len(pred_new & labels[new]), "truly_new": len(true_new),
                     "called_gone": len(pred_gone), "gone_true": len(pred_gone & true_gone),
                     "gone_absent": len(pred_gone - labels[new]), "truly_gone": len(true_gone),
                     "labels_same": labels[new] == labels[prior], "significant": c.significant_change,
                     # context: every statement of the new report, and the unchanged ones, against its labels
                     "all_new_report": len(nc := {x.code for x in reports[new].diagnosis.codes}),
                     "all_true": len(nc & labels[new]),
                     "unchanged": len(nc - pred_new), "unchanged_true": len((nc - pred_new) & labels[new])})
        for code in pred_new:
            called_new[(code, code in true_new)] += 1
    df = pd.DataFrame(rows)
    a = {k: df[k].to_numpy(dtype=float) for k in df.columns}

    def line(name, num, den):
        lo, hi = boot_ci(a[num], a[den])
        value = f"{ratio(a[num], a[den]):.3f} [{lo:.3f}, {hi:.3f}]"
        return f"| {name} | {value} | {int(a[num].sum())}/{int(a[den].sum())} |"

    mode = "LLM (embedded)" if args.llm else "criteria only"
    print(f"command: python bench/{Path(__file__).name} {shlex.join(argv if argv is not None else sys.argv[1:])}")
    print(f"PTB-XL fold {args.fold}, 100 Hz; {mode}; {len(df)} consecutive same-patient pairs "
          f"({len(ids)} records, {failed} refused by the quality gate or unreadable); {time.perf_counter() - t0:.0f} s")
    print()
    print("| measure | value [95 % CI] | count |")
    print("|---|---|---|")
    print(line("precision of \"new since prior\" (label new)", "new_true", "called_new"))
    print(line("precision of \"new since prior\" (in the new ECG's labels)", "new_present", "called_new"))
    print(line("recall of label-new statements", "new_true", "truly_new"))
    print(line("precision of \"no longer present\" (label gone)", "gone_true", "called_gone"))
    print(line("precision of \"no longer present\" (not in the new ECG's labels)", "gone_absent", "called_gone"))
    print(line("context: precision of all statements of the new ECGs", "all_true", "all_new_report"))
    print(line("context: precision of the statements called unchanged", "unchanged_true", "unchanged"))
    same = df[df.labels_same]
    diff = df[~df.labels_same]
    print(f"| \"no significant change\" when the two label sets are identical | "
          f"{(~same.significant).mean():.3f} | {int((~same.significant).sum())}/{len(same)} |")
    print(f"| \"significant change\" when the label sets differ | {diff.significant.mean():.3f} | "
          f"{int(diff.significant.sum())}/{len(diff)} |")
    print()
    top = Counter()
    for (code, ok), k in called_new.items():
        top[code] += k
    print("statements most often called new: " + ", ".join(
        f"{code} {called_new[(code, True)]}/{k}" for code, k in top.most_common(10)) + " (label-new / called)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
