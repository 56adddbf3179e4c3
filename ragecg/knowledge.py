"""Knowledge documents: Markdown with YAML front matter (id, title, codes, superclass, sources,
reviewed, criteria). This module parses and validates them; `index.py` embeds them.

Criteria format (evaluated by `criteria.py`)::

    criteria:
      - code: CLBBB            # one rule per code; a document may hold rules for several codes
        match: all             # all (default): every condition; any: at least one
        conditions:
          - {measure: qrs_duration_ms, op: ">=", value: 120, source: aha2009-part3}
          - {measure: r_peak_time_ms, leads: [V5, V6], min_leads: 1, op: ">", value: 60, source: aha2009-part3}
          - {measure: cornell_voltage_mv, op: ">", value: 2.8, sex: M, source: casale1987}

`op` is one of > >= < <= == != ; `value` a number or a boolean (for ``p_present``).
`leads` with `min_leads` (default 1) asks the condition of at least that many of the leads.
`sex` (M/F) restricts a condition to one sex; for a record of unknown sex, the condition is used
with the threshold of the first listed alternative (documents list male first by convention).
`scale` (optional) overrides the default soft-margin scale of the measure's unit (see criteria.py).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from .errors import InputError
from .record import STANDARD_LEADS

SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")


class Source(BaseModel):
    id: str
    cite: str


class Condition(BaseModel):
    measure: str
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float | bool
    source: str
    leads: list[str] | None = None
    min_leads: int = 1
    sex: Literal["M", "F"] | None = None
    scale: float | None = None

    @field_validator("leads")
    @classmethod
    def _known_leads(cls, v):
        if v is not None:
            bad = [ld for ld in v if ld not in STANDARD_LEADS]
            if bad:
                raise ValueError(f"unknown lead(s) {bad}")
        return v


class Rule(BaseModel):
    code: str
    match: Literal["all", "any"] = "all"
    conditions: list[Condition]


class Codes(BaseModel):
    scp: list[str] = Field(default_factory=list)
    snomed: list[str] = Field(default_factory=list)


class KnowledgeDoc(BaseModel):
    id: str
    title: str
    codes: Codes = Field(default_factory=Codes)
    superclass: list[str] | str | None = None
    sources: list[Source]
    reviewed: _dt.date | str | None = None
    version: str | int | None = None
    criteria: list[Rule] = Field(default_factory=list)
    body: str = ""
    path: str = ""
    sha256: str = ""

    @field_validator("id")
    @classmethod
    def _id_slug(cls, v):
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", v):
            raise ValueError("id must be lower-case letters, digits, '.', '_' or '-'")
        return v

    def source_ids(self) -> set[str]:
        return {s.id for s in self.sources}


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.S)


def parse_markdown_doc(text: str, path: str = "<string>") -> KnowledgeDoc:
    """Parse one knowledge document. Raises InputError naming the file on any problem."""
    m = _FRONT.match(text)
    if not m:
        raise InputError("no YAML front matter (a '---' block at the top)", path=path)
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"front matter is not valid YAML ({exc.__class__.__name__})", path=path) from None
    if not isinstance(meta, dict):
        raise InputError("front matter must be a mapping", path=path)
    try:
        doc = KnowledgeDoc(**meta, body=m.group(2).strip(), path=str(path),
                           sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InputError(f"front matter field {where}: {first['msg']}", path=path) from None
    return doc


def iter_markdown_files(dirs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        if Path(d).is_dir():
            files.extend(sorted(p for p in Path(d).rglob("*.md") if p.name.lower() != "readme.md"))
    return files


def load_documents(dirs: list[Path]) -> list[KnowledgeDoc]:
    """All curated Markdown knowledge documents under `dirs`, sorted by id; ids must be unique."""
    docs = [parse_markdown_doc(p.read_text(encoding="utf-8"), str(p)) for p in iter_markdown_files(dirs)]
    seen: dict[str, str] = {}
    for d in docs:
        if d.id in seen:
            raise InputError(f"duplicate knowledge id {d.id!r} (also in {Path(seen[d.id]).name})", path=d.path)
        seen[d.id] = d.path
    return sorted(docs, key=lambda d: d.id)


def knowledge_hash(docs: list[KnowledgeDoc]) -> str:
    h = hashlib.sha256()
    for d in sorted(docs, key=lambda d: d.id):
        h.update(d.id.encode() + b"\0" + d.sha256.encode() + b"\n")
    return h.hexdigest()[:16]
