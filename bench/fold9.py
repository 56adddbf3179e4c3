"""Shared set-up of the fold-9 design benches (af_fold9.py, flutter_fold9.py): the knowledge documents and
the PTB-XL fold-9 rows (the validation fold; these benches never read fold 10)."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.knowledge.documents import load_documents  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402


def fold9_setup() -> tuple[list, Path, pd.DataFrame]:
    """Print the command line to stderr; return (knowledge documents, PTB-XL folder, fold-9 database rows)."""
    print("command: python " + " ".join(sys.argv), file=sys.stderr)
    settings = get_settings()
    docs = load_documents(list(settings.knowledge_dirs))
    ptb = settings.data_dir / "ptbxl"
    db = pd.read_csv(ptb / "ptbxl_database.csv", index_col=0)
    return docs, ptb, db[db.strat_fold == 9]
