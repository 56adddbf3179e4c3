"""AF design data from PTB-XL fold 9 (the validation fold) and MIT-BIH 100: per record, the rhythm
measurements behind the AF rule, written as JSON lines for inspection (never fold 10).

    python bench/af_fold9.py --out /tmp/af9.jsonl            # AFIB/AFLT records, the AF test set, 300 NORM
    python bench/af_fold9.py --out /tmp/af9.jsonl --norm 0   # without the NORM sample

Records: every fold-9 record labelled AFIB or AFLT; the issue-17 AF test set (fold-9 records labelled STACH
or SR together with PAC, PVC or SVARR); other arrhythmia labels (SARRH, SVTAC, PSVT, BIGU, TRIGU); a fixed
random sample (seed 9) of `--norm` NORM records; MIT-BIH 100 (first 10 s of each minute, its APBs). Each:
`read_record` -> `analyse_ecg` (all leads), and the AF rule's inputs printed as a table at the end: how many
of each group the shipped AF criterion calls AF.
"""
from __future__ import annotations

import argparse
import dataclasses
import ast
import json
import random
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fold9 import fold9_setup  # noqa: E402
from ragecg.criteria.evaluate import evaluate_criteria  # noqa: E402
from ragecg.errors import RagecgError  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.signal import rhythm  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402
from ragecg.values import Ecg  # noqa: E402

KEYS = ("heart_rate_bpm", "rr_cv", "rr_irregularity", "nn_rmssd_ratio", "p_wave_beat_fraction", "p_present",
        "premature_beat_count", "pvc_count", "pac_count", "atrial_organization", "atrial_dominant_rate_bpm",
        "beat_count", "qrs_duration_ms", "p_duration_ms", "pr_interval_ms")
OTHER = {"SARRH", "SVTAC", "PSVT", "BIGU", "TRIGU"}
ECTOPY = {"PAC", "PVC", "SVARR"}


def group_of(labels: set[str]) -> str:
    if "AFIB" in labels:
        return "AFIB"
    if "AFLT" in labels:
        return "AFLT"
    if labels & {"STACH", "SR"} and labels & ECTOPY:
        return "SR/STACH+ectopy"
    if labels & OTHER:
        return "other arrhythmia"
    return "NORM sample"


def row_of(ecg: Ecg, docs) -> dict:
    a = analyse_ecg(ecg)
    m = a.measurements
    out = {k: getattr(m, k) for k in KEYS}
    bs = a.beats
    if bs is not None and m.premature_beat_count is not None:
        c = rhythm.classify_beats(bs)
        out["labels"] = c.labels
        out["rr_ms"] = [round(float(v) * 1000) for v in bs.rr_s]
    out["af_score"] = evaluate_criteria(m, docs, sex=None).scores.get("AFIB", 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--norm", type=int, default=300)
    args = ap.parse_args()
    docs, ptb, db = fold9_setup()
    labels = db.scp_codes.apply(ast.literal_eval)
    picked = [i for i in db.index if group_of(set(labels[i])) != "NORM sample"]
    norm = [i for i in db.index if "NORM" in labels[i] and group_of(set(labels[i])) == "NORM sample"]
    random.Random(9).shuffle(norm)
    ids = sorted(set(picked) | set(norm[:args.norm]))
    rows = []
    for i in ids:
        lab = set(labels[i])
        try:
            r = row_of(read_record(ptb / (db.loc[i, "filename_lr"] + ".hea")), docs)
        except RagecgError as e:
            r = {"refused": type(e).__name__}
        rows.append({"id": f"ptbxl-{i}", "group": group_of(lab), "labels": sorted(lab), **r})
    mit = read_record(ptb.parent / "mitdb" / "100.hea")
    fs = mit.sampling_rate_hz
    for minute in range(int(mit.duration_s // 60)):
        lo, hi = int(minute * 60 * fs), int((minute * 60 + 10) * fs)
        seg = dataclasses.replace(mit, signals_mv=mit.signals_mv[lo:hi])
        try:
            r = row_of(seg, docs)
        except RagecgError as e:
            r = {"refused": type(e).__name__}
        rows.append({"id": f"mitdb-100-{minute}", "group": "MIT-BIH 100", "labels": [], **r})
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    groups = sorted({r["group"] for r in rows})
    for g in groups:
        rs = [r for r in rows if r["group"] == g]
        af = sum(r.get("af_score", 0) >= 0.5 for r in rs)
        print(f"{g:<18} {len(rs):>4} records, AF called {af} ({af / max(1, len(rs)):.1%})")


if __name__ == "__main__":
    main()
