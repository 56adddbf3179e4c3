"""The GE Marquette 12SL (v23) baseline from PTB-XL+: machine statements mapped onto SCP codes.

Source data: PTB-XL+ (Strodthoff et al., Sci Data 10:279, 2023) ``labels/12sl_statements.csv``,
column ``statements`` (the bare 12SL acronyms of each ECG, e.g. ``['NSR', 'IMI', 'AU', 'AB']``).

Mapping: ``ragecg/resources/twelvesl_to_scp.csv`` (acronym -> SCP code, with the 12SL text and the
reason). It was written from the statement definitions alone (12SL text in PTB-XL+
``labels/mapping/12slv23ToSNOMED.csv`` against the SCP description in ``scp_statements.csv``), never
from label agreement. Only mappings where the 12SL statement asserts the SCP statement's finding
are listed; a statement with no SCP counterpart (axis statements, early repolarisation, "abnormal
ECG", modifiers such as AU/AC/PO/CRO, acute injury patterns without an SCP statement) maps to
nothing. A 12SL statement counts whatever its qualifier ("possible", "cannot rule out"), the same
rule as for PTB-XL labels (any likelihood counts).

The baseline's score of an SCP code is 1.0 when a mapped statement is present, else 0.0 (so its
AUC comes from a single operating point); its chosen codes are the same set.
"""
from __future__ import annotations

import ast
import csv
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ragecg.errors import InputError

STATEMENTS_PATH = Path("labels") / "12sl_statements.csv"


@lru_cache(maxsize=1)
def load_mapping() -> dict[str, tuple[str, ...]]:
    """12SL acronym -> SCP codes it asserts (from the shipped mapping table)."""
    text = resources.files("ragecg.resources").joinpath("twelvesl_to_scp.csv").read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    for row in csv.DictReader(text.splitlines()):
        out.setdefault(row["acronym"], []).append(row["scp_code"])
    return {k: tuple(v) for k, v in out.items()}


def load_12sl_statements(ptbxl_plus_dir: Path) -> dict[int, list[str]]:
    """ecg_id -> 12SL acronyms. InputError when the file is missing or malformed."""
    path = Path(ptbxl_plus_dir) / STATEMENTS_PATH
    if not path.is_file():
        raise InputError(f"PTB-XL+ 12SL statements not found ({STATEMENTS_PATH} is missing)", path=str(ptbxl_plus_dir))
    out: dict[int, list[str]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                out[int(row["ecg_id"])] = [str(s) for s in ast.literal_eval(row["statements"])]
    except (KeyError, ValueError, SyntaxError) as exc:
        raise InputError(f"{STATEMENTS_PATH} is not the PTB-XL+ 12SL table ({type(exc).__name__})",
                         path=str(ptbxl_plus_dir)) from None
    return out


def twelvesl_scp_codes(acronyms: list[str], mapping: dict[str, tuple[str, ...]] | None = None) -> set[str]:
    """SCP codes asserted by a list of 12SL statements."""
    mapping = load_mapping() if mapping is None else mapping
    return {code for a in acronyms for code in mapping.get(a, ())}


def twelvesl_rows(statements: dict[int, list[str]], ecg_ids, all_codes) -> dict[int, dict]:
    """Prediction rows of the 12SL baseline for `ecg_ids` that have 12SL statements:
    {ecg_id: {"scores": {code: 0/1}, "codes": [...]}}."""
    mapping = load_mapping()
    out = {}
    for eid in ecg_ids:
        if eid not in statements:
            continue
        codes = twelvesl_scp_codes(statements[eid], mapping)
        out[eid] = {"scores": {c: (1.0 if c in codes else 0.0) for c in all_codes}, "codes": sorted(codes)}
    return out
