"""Firing rates of knowledge-base rules on PTB-XL fold 9 (the validation fold), records at 100 Hz.

    python bench/rules_fold9.py                        # the rhythm/form rules of knowledge version 2
    python bench/rules_fold9.py --codes PVC,AFLT       # other statements
    python bench/rules_fold9.py --norm 100             # fewer NORM records (faster)

A sanity check of rules whose thresholds come from the literature, never a way to choose them (and
never fold 10, the test fold). Records: every fold-9 record carrying one of SELECT (the statements
checked plus AFIB and STACH, the usual confusions), and a fixed random sample (seed 9) of `--norm`
fold-9 NORM records carrying none of them. Each record: `read_record` -> `measure_ecg` (all leads;
no quality gate) -> `evaluate_criteria` with the shipped knowledge base, sex unknown. A rule fires
at score >= 0.5. Printed per statement: fired / records labelled with it; fired / NORM records not
labelled with it; fired / all other records of the sample. 1,034 records with the defaults: 73 s in
one run on the shared 2-core machine.
"""
from __future__ import annotations

import argparse
import ast
import random
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.criteria.evaluate import evaluate_criteria  # noqa: E402
from ragecg.errors import RagecgError  # noqa: E402
from ragecg.knowledge.documents import load_documents  # noqa: E402
from ragecg.signal.measure import measure_ecg  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402

CODES = ("PVC", "PAC", "SVARR", "BIGU", "TRIGU", "SARRH", "AFLT", "ABQRS", "SEHYP", "DIG", "PRC(S)")
SELECT = {"AFIB", "STACH", "AFLT", "BIGU", "TRIGU", "PACE", "SARRH", "SVARR", "PVC", "PAC", "ABQRS", "SEHYP",
          "DIG", "EL"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codes", default=",".join(CODES))
    ap.add_argument("--norm", type=int, default=300, help="NORM records without a SELECT statement")
    args = ap.parse_args()
    print("command: python " + " ".join(sys.argv))
    settings = get_settings()
    ptb = settings.data_dir / "ptbxl"
    db = pd.read_csv(ptb / "ptbxl_database.csv", index_col=0)
    db = db[db.strat_fold == 9]
    labels = db.scp_codes.apply(ast.literal_eval)
    chosen = [i for i in db.index if SELECT & set(labels[i])]
    norm = [i for i in db.index if "NORM" in labels[i] and not SELECT & set(labels[i])]
    random.Random(9).shuffle(norm)
    ids = sorted(set(chosen) | set(norm[:args.norm]))
    docs = load_documents(list(settings.knowledge_dirs))
    codes = args.codes.split(",")
    rows, failed, t0 = [], 0, time.perf_counter()
    for i in ids:
        try:
            m = measure_ecg(read_record(ptb / (db.loc[i, "filename_lr"] + ".hea")))
        except RagecgError:
            failed += 1
            continue
        scores = evaluate_criteria(m, docs, sex=None).scores
        rows.append((set(labels[i]), {c for c in codes if scores.get(c, 0.0) >= 0.5}))
    print(f"fold 9, 100 Hz: {len(rows)} records measured ({failed} refused) in {time.perf_counter() - t0:.0f} s; "
          f"{sum('NORM' in lab for lab, _ in rows)} labelled NORM")
    for c in codes:
        def rate(sel):
            group = [f for lab, f in rows if sel(lab)]
            k = sum(c in f for f in group)
            return f"{k}/{len(group)} ({k / max(1, len(group)):.1%})"
        print(f"{c:<7} labelled {rate(lambda lab: c in lab):<16} NORM without it {rate(lambda lab: 'NORM' in lab and c not in lab):<16} "
              f"all without it {rate(lambda lab: c not in lab)}")


if __name__ == "__main__":
    main()
