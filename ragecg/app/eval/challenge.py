"""PhysioNet/CinC Challenge 2021 folders: WFDB records (``.hea`` + ``.mat``/``.dat``) whose header
carries ``# Dx: <SNOMED CT codes>``.

Labels: the Challenge's scored SNOMED CT classes that have an SCP-ECG counterpart, mapped by
``ragecg/resources/challenge2021_to_scp.csv`` (from the Challenge's ``dx_mapping_scored.csv``,
including its equivalent pairs, e.g. 713427006/59118001 -> CRBBB). Scored classes without an SCP
statement (bundle branch block unspecified, bradycardia, axis deviations, poor R progression) are
not evaluated. Each mapped SCP code is one class (task ``challenge``); a record with none of the
mapped codes is excluded, as in `labels.py`. Only the ``Dx`` line of the header is read here; the
other comment lines (age, sex) are never stored.

Reference: Reyna MA, et al. Will Two Do? Varying Dimensions in Electrocardiography: the
PhysioNet/Computing in Cardiology Challenge 2021. Computing in Cardiology 2021; 48.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ragecg.errors import InputError

from .labels import Task


@lru_cache(maxsize=1)
def snomed_to_scp() -> dict[str, str]:
    text = resources.files("ragecg.resources").joinpath("challenge2021_to_scp.csv").read_text(encoding="utf-8")
    return {row["snomed_ct"]: row["scp_code"] for row in csv.DictReader(text.splitlines())}


def challenge_task() -> Task:
    return Task("challenge", {code: (code,) for code in sorted(set(snomed_to_scp().values()))})


def header_dx_codes(hea: Path) -> list[str]:
    """SNOMED CT codes of the ``# Dx:`` header line ([] when there is none)."""
    try:
        text = Path(hea).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        s = line.lstrip("#").strip()
        if s.lower().startswith("dx:"):
            return [c.strip() for c in s[3:].split(",") if c.strip()]
    return []


def challenge_items(folder: Path) -> tuple[list[dict], dict[str, dict]]:
    """Work items of every ``.hea`` under `folder` (sorted) and their labels as SCP code dicts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("Challenge folder does not exist", path=str(folder))
    headers = sorted(folder.rglob("*.hea"))
    if not headers:
        raise InputError("no WFDB header (.hea) found in the Challenge folder", path=str(folder))
    mapping = snomed_to_scp()
    items, labels_of = [], {}
    for hea in headers:
        rid = str(hea.relative_to(folder).with_suffix(""))
        items.append({"record_id": rid, "ecg_id": None, "fold": None, "path": str(hea)})
        labels_of[rid] = {mapping[c]: 100.0 for c in header_dx_codes(hea) if c in mapping}
    return items, labels_of
