"""Atrial flutter design data from PTB-XL fold 9 (the validation fold; never fold 10): every record on which the
AFLT criterion fires or that is labelled AFLT, with the measurements behind the rule (atrial rate, organisation,
the atrial/ventricular rate ratio, P wave before every QRS, per-beat P share, PR, RR irregularity).

    python bench/flutter_fold9.py [--out /tmp/flutter9.jsonl]

Each record: `read_record` -> `analyse_ecg` (all leads, no quality gate) -> `evaluate_criteria`; the table at the end
counts the records the rule states flutter on, by label group (AFLT / AFIB / sinus rhythm / PACE / other).
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fold9 import fold9_setup  # noqa: E402
from ragecg.criteria.evaluate import evaluate_criteria  # noqa: E402
from ragecg.errors import RagecgError  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402

KEYS = ("heart_rate_bpm", "atrial_dominant_rate_bpm", "atrial_organization", "atrial_ventricular_rate_ratio",
        "p_present", "p_wave_beat_fraction", "pr_interval_ms", "rr_irregularity")
SINUS = {"SR", "STACH", "SBRAD", "SARRH"}


def group_of(labels: set[str]) -> str:
    for g in ("AFLT", "AFIB", "PACE"):
        if g in labels:
            return g
    return "sinus rhythm" if labels & SINUS else "other"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    docs, ptb, db = fold9_setup()
    rows = []
    for i in db.index:
        labels = set(ast.literal_eval(db.loc[i, "scp_codes"]))
        try:
            m = analyse_ecg(read_record(ptb / (db.loc[i, "filename_lr"] + ".hea"))).measurements
        except RagecgError:
            continue
        score = evaluate_criteria(m, docs, sex=None).scores.get("AFLT", 0.0)
        if score >= 0.5 or "AFLT" in labels:
            rows.append({"id": f"ptbxl-{i}", "group": group_of(labels), "aflt_score": round(score, 3),
                         **{k: getattr(m, k) for k in KEYS}})
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("| record | group | AFLT | HR bpm | atrial bpm | organisation | ratio | P present | P share | PR ms | irregularity |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["group"], r["id"])):
        print(f"| {r['id']} | {r['group']} | {'yes' if r['aflt_score'] >= 0.5 else 'no'} | "
              + " | ".join(str(r[k]) for k in KEYS) + " |")
    groups = sorted({r["group"] for r in rows})
    print("\nAFLT stated by group: " + ", ".join(
        f"{g} {sum(r['aflt_score'] >= 0.5 for r in rows if r['group'] == g)}" for g in groups))


if __name__ == "__main__":
    main()
