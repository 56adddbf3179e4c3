"""Infarction (Q-wave) criteria on LUDB 1-100 (design set, 500 Hz) against the cardiologists' Ischemia column:
which records fire an MI criterion, and which fire only with the current rules compared with another
knowledge folder (e.g. a worktree of an older commit).

    python bench/ludb_mi.py [--old /path/to/old/knowledge]

Amplitudes read as microvolts (bench/ludb_uv.py). Candidates as `evaluate_criteria` fires them (before the statement logic: paced rhythm and LBBB remove MI
statements in the report).
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ludb_uv import read_ludb_uv  # noqa: E402
from ragecg.criteria.evaluate import evaluate_criteria  # noqa: E402
from ragecg.knowledge.documents import load_documents  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402

MI = {"IMI", "ASMI", "AMI", "LMI", "ALMI", "ILMI", "IPLMI", "IPMI", "PMI"}
COLUMNS = ("Rhythms", "Conduction abnormalities", "Hypertrophies", "Ischemia", "Cardiac pacing")


def fired_mi(m, docs, sex) -> set[str]:
    return {c.code for c in evaluate_criteria(m, docs, sex=sex).candidates if c.fired and c.code in MI}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", type=Path, default=None, help="knowledge folder to compare with")
    args = ap.parse_args()
    print("command: python " + " ".join(sys.argv), file=sys.stderr)
    s = get_settings()
    docs = load_documents(list(s.knowledge_dirs))
    old = load_documents([args.old]) if args.old else None
    meta = pd.read_csv(s.data_dir / "ludb" / "ludb.csv")
    meta = meta[meta.ID <= 100]
    tab = collections.Counter()
    only_new = []
    for _, r in meta.iterrows():
        text = {c: " ".join(str(r[c]).split()) for c in COLUMNS}
        sex = str(r.Sex).strip()[:1]
        sex = sex if sex in ("M", "F") else None
        m = analyse_ecg(read_ludb_uv(s.data_dir, int(r.ID))).measurements
        fired = fired_mi(m, docs, sex)
        labelled = any(w in text["Ischemia"].lower() for w in ("infarct", "scar", "stemi"))
        tab[(labelled, bool(fired))] += 1
        if fired or labelled:
            print(r.ID, sorted(fired), "|", text["Ischemia"][:80])
        if old is not None and fired != fired_mi(m, old, sex):
            only_new.append(f"{r.ID} {sorted(fired - fired_mi(m, old, sex))} | " + " / ".join(v[:60] for v in text.values()))
    print("(scar/infarct/STEMI labelled, MI criterion fired): records", dict(tab))
    if old is not None:
        print("--- fired only with the current rules")
        print("\n".join(only_new))


if __name__ == "__main__":
    main()
