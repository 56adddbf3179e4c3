"""Knowledge documents: Markdown with YAML front matter (id, title, codes, superclass, sources,
reviewed, criteria). This module parses and validates them; `ragecg.knowledge.index` embeds them.
`validate_documents` / `validate_directories` list every problem (schema, measurement keys,
sources, SCP codes, body sections) and `coverage_table` maps the 71 PTB-XL statements to the
documents covering them; see knowledge/README.md for the format and the review rules.

Criteria format (evaluated by `ragecg.criteria`)::

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
`scale` (optional) overrides the default soft-margin scale of the measure's unit (see ragecg/criteria).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from ragecg.errors import InputError
from ragecg.values import (GLOBAL_KEYS, LEAD_KEYS, SUPERCLASSES, Condition, KnowledgeDoc, LeadMeasurements,
                           Measurements, StatementLogic, is_measurement_key, scp_codes)

_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.S)
# libyaml's loader: the pure-Python scanner took ~0.9 s of CPU for the 52 curated documents.


def yaml_safe_load(text: str):
    """YAML with libyaml's safe loader when the wheel has it, else `yaml.safe_load` (the same safe YAML 1.1
    constructors; tests/test_knowledge.py checks both give the same front matter for every document)."""
    if hasattr(yaml, "CSafeLoader"):
        return yaml.load(text, Loader=yaml.CSafeLoader)
    return yaml.safe_load(text)


def read_document_text(path: Path) -> str:
    """A knowledge file's text: UTF-8 (a BOM allowed), line ends made `\\n`; InputError otherwise.
    The one reader of Markdown for `knowledge add`, the index build and the criteria loader."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text; save it as UTF-8", path=Path(path).name) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def has_front_matter(text: str) -> bool:
    """Whether a Markdown text is a document in the curated format (a `---` block first, blank
    lines before it allowed): the one test used by `knowledge add`, the index build and the loader."""
    return text.lstrip("\ufeff \t\n").startswith("---")


def parse_markdown_doc(text: str, path: str = "<string>") -> KnowledgeDoc:
    """Parse one knowledge document. Raises InputError naming the file on any problem."""
    m = _FRONT.match(text.replace("\r\n", "\n").lstrip("\ufeff \t\n"))
    if not m:
        raise InputError("no YAML front matter (a '---' block at the top)", path=path)
    try:
        meta = yaml_safe_load(m.group(1)) or {}
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
    return _unique_sorted([parse_markdown_doc(read_document_text(p), str(p)) for p in iter_markdown_files(dirs)])


def _unique_sorted(docs: list[KnowledgeDoc]) -> list[KnowledgeDoc]:
    """Documents sorted by id; a duplicated id is an error naming both files."""
    seen: dict[str, str] = {}
    for d in docs:
        if d.id in seen:
            raise InputError(f"duplicate knowledge id {d.id!r} (also in {Path(seen[d.id]).name})", path=d.path)
        seen[d.id] = d.path
    return sorted(docs, key=lambda d: d.id)


def load_criteria_documents(settings) -> list[KnowledgeDoc]:
    """The documents whose criteria the criteria stage evaluates: every curated document, plus
    user-added Markdown that carries front matter (plain guideline files added with `knowledge add`
    are retrieval context only)."""
    dirs = list(settings.knowledge_dirs)
    return _unique_sorted(load_documents(dirs) + [doc for doc, problems in user_criteria_documents(settings)
                                                   if not problems])


def user_criteria_documents(settings) -> list[tuple[KnowledgeDoc, list[str]]]:
    """User-added Markdown documents in the curated format, each with its validation problems.
    `knowledge add` refuses a document with problems; one placed in the folder by hand is left out of
    the criteria (its codes are never reported) with a warning, and `knowledge validate` lists it."""
    user = settings.user_knowledge
    if not user.is_dir() or user in list(settings.knowledge_dirs):
        return []
    out = []
    for p in iter_markdown_files([user]):
        try:
            text = read_document_text(p)
            if not has_front_matter(text):
                continue
            doc = parse_markdown_doc(text, str(p))
        except InputError as exc:
            logging.getLogger("ragecg").warning(f"warning: {exc}; its criteria are not used "
                                                "(see `ragecg knowledge validate`)")
            continue
        problems = validate_document(doc)
        if problems:
            logging.getLogger("ragecg").warning(f"warning: {p.name}: {len(problems)} problem(s); its criteria are "
                                                "not used (see `ragecg knowledge validate`)")
        out.append((doc, problems))
    return out


def knowledge_hash(docs: list[KnowledgeDoc], logic: StatementLogic | None = None) -> str:
    """Hash of the criteria documents and, when given, of the statement logic table: the knowledge a
    report's statements were decided by."""
    h = hashlib.sha256()
    for d in sorted(docs, key=lambda d: d.id):
        h.update(d.id.encode() + b"\0" + d.sha256.encode() + b"\n")
    if logic is not None:
        h.update(b"statement_logic\0" + logic.model_dump_json(exclude={"path"}).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Validation and coverage (used by `ragecg knowledge validate` / `ragecg knowledge coverage`)
# --------------------------------------------------------------------------------------------

REQUIRED_SECTIONS = ("Definition", "Criteria", "Differential", "Pitfalls")
_HEADING = re.compile(r"^##\s+(.+?)\s*$", re.M)


def _bool_measures() -> set[str]:
    """Measurement keys whose value is a boolean (conditions on them need == / != and true/false)."""
    out = set()
    for model in (Measurements, LeadMeasurements):
        for name, field in model.model_fields.items():
            if field.annotation in (bool, bool | None):
                out.add(name)
    return out


def _condition_problems(cond: Condition, source_ids: set[str]) -> list[str]:
    where = f"measure {cond.measure!r}"
    out: list[str] = []
    if "[" in cond.measure:
        out.append(f"{where}: give the lead in `leads: [...]`, not in the measure name")
    elif not is_measurement_key(cond.measure):
        out.append(f"{where} is not a measurement key of ragecg.measure")
    elif cond.measure in LEAD_KEYS and cond.measure not in GLOBAL_KEYS and not cond.leads:
        out.append(f"{where} is per lead and needs `leads: [...]`")
    elif cond.measure in GLOBAL_KEYS and cond.measure not in LEAD_KEYS and cond.leads:
        out.append(f"{where} is a global value and takes no `leads`")
    if cond.leads is not None:
        if not cond.leads:
            out.append(f"{where}: `leads` is empty")
        elif not 1 <= cond.min_leads <= len(cond.leads):
            out.append(f"{where}: min_leads {cond.min_leads} is not between 1 and {len(cond.leads)}")
    is_bool_measure = cond.measure in _bool_measures()
    if isinstance(cond.value, bool) != is_bool_measure:
        out.append(f"{where}: value {cond.value!r} does not match the measurement's type")
    if isinstance(cond.value, bool) and cond.op not in ("==", "!="):
        out.append(f"{where}: a true/false value takes op == or !=")
    if cond.source not in source_ids:
        out.append(f"{where}: source {cond.source!r} is not one of the document's sources")
    if cond.scale is not None and cond.scale <= 0:
        out.append(f"{where}: scale must be > 0")
    return out


def validate_document(doc: KnowledgeDoc) -> list[str]:
    """Problems of one parsed document (empty list: valid), each prefixed with the file name."""
    table = scp_codes()
    name = doc.path or doc.id
    problems: list[str] = []
    if not doc.title.strip():
        problems.append("title is empty")
    if not doc.sources:
        problems.append("no sources: every document cites at least one")
    ids = [s.id for s in doc.sources]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        problems.append(f"duplicate source id(s) {dup}")
    problems += [f"source {s.id!r} has an empty citation" for s in doc.sources if not s.cite.strip()]
    if not isinstance(doc.reviewed, _dt.date):
        problems.append("`reviewed` must be a date (YYYY-MM-DD)")
    if doc.version is None:
        problems.append("`version` is missing")
    supers = [doc.superclass] if isinstance(doc.superclass, str) else list(doc.superclass or [])
    problems += [f"superclass {s!r} is not one of {list(SUPERCLASSES)}" for s in supers if s not in SUPERCLASSES]
    problems += [f"codes.scp {c!r} is not a PTB-XL SCP statement" for c in doc.codes.scp if c not in table]
    problems += [f"codes.snomed {c!r} is not a SNOMED CT identifier (digits)"
                 for c in doc.codes.snomed if not re.fullmatch(r"\d{6,18}", str(c))]
    for rule in doc.criteria:
        if rule.code not in table:
            problems.append(f"criteria code {rule.code!r} is not a PTB-XL SCP statement")
        elif rule.code not in doc.codes.scp:
            problems.append(f"criteria code {rule.code!r} is not listed in codes.scp")
        if not rule.conditions:
            problems.append(f"criteria for {rule.code!r} has no conditions")
        for cond in rule.conditions:
            problems += [f"criteria {rule.code!r}: {p}" for p in _condition_problems(cond, doc.source_ids())]
    headings = {h.strip().lower() for h in _HEADING.findall(doc.body)}
    missing = [s for s in REQUIRED_SECTIONS if not any(h.startswith(s.lower()) for h in headings)]
    if missing:
        problems.append(f"body lacks section(s) {', '.join('## ' + s for s in missing)}")
    return [f"{name}: {p}" for p in problems]


def validate_documents(docs: list[KnowledgeDoc]) -> list[str]:
    """Every problem of the documents (schema, criteria, sources, codes); empty list: all valid."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for doc in docs:
        if doc.id in seen:
            problems.append(f"{doc.path or doc.id}: duplicate knowledge id {doc.id!r} (also in {seen[doc.id]})")
        seen.setdefault(doc.id, doc.path or doc.id)
        problems += validate_document(doc)
    return problems


def validate_directories(dirs: list[Path]) -> tuple[list[KnowledgeDoc], list[str]]:
    """Parse every Markdown file under `dirs`, collecting problems instead of stopping at the first."""
    docs: list[KnowledgeDoc] = []
    problems: list[str] = []
    for p in iter_markdown_files(dirs):
        try:
            docs.append(parse_markdown_doc(read_document_text(p), str(p)))
        except InputError as exc:
            problems.append(str(exc))
    for d in dirs:
        logic_file = Path(d) / STATEMENT_LOGIC_FILE
        if logic_file.is_file():
            try:
                problems += validate_statement_logic(parse_statement_logic(logic_file.read_text(encoding="utf-8"),
                                                                           str(logic_file)))
            except InputError as exc:
                problems.append(str(exc))
    return docs, problems + validate_documents(docs)


def validate_knowledge(settings) -> tuple[list[KnowledgeDoc], list[str]]:
    """`ragecg knowledge validate`: the curated folders, and the user folder's documents in the curated
    format (plain guideline files there are retrieval text, not checked)."""
    docs, problems = validate_directories(list(settings.knowledge_dirs))
    user = settings.user_knowledge
    if user.is_dir() and user not in list(settings.knowledge_dirs):
        for p in iter_markdown_files([user]):
            try:
                text = read_document_text(p)
                if has_front_matter(text):
                    docs.append(parse_markdown_doc(text, str(p)))
            except InputError as exc:
                problems.append(str(exc))
        problems = problems + [q for q in validate_documents(docs) if q not in problems]
    return docs, problems


def coverage_table(docs: list[KnowledgeDoc]) -> list[dict]:
    """One row per PTB-XL SCP statement: which documents cover it and which hold a rule for it."""
    rows = []
    for code, row in scp_codes().items():
        covering = sorted(d.id for d in docs if code in d.codes.scp)
        with_rule = sorted(d.id for d in docs if any(r.code == code for r in d.criteria))
        rows.append({"code": code, "description": row.get("description", ""), "kinds": list(row.get("kinds", [])),
                     "superclass": row.get("superclass"), "doc_ids": covering, "rule_doc_ids": with_rule})
    return rows


def uncovered_codes(docs: list[KnowledgeDoc]) -> list[str]:
    """SCP statements that no document lists in codes.scp."""
    return [r["code"] for r in coverage_table(docs) if not r["doc_ids"]]


# --------------------------------------------------------------------------------------------
# Statement logic (knowledge/statement_logic.yaml): which statements a definite statement removes
# --------------------------------------------------------------------------------------------

STATEMENT_LOGIC_FILE = "statement_logic.yaml"


def parse_statement_logic(text: str, path: str = "<string>") -> StatementLogic:
    try:
        meta = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"statement logic is not valid YAML ({exc.__class__.__name__})", path=path) from None
    if not isinstance(meta, dict):
        raise InputError("statement logic must be a mapping", path=path)
    try:
        return StatementLogic(**meta, path=str(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InputError(f"statement logic field {where}: {first['msg']}", path=path) from None


def validate_statement_logic(logic: StatementLogic) -> list[str]:
    """Problems of the statement logic table (unknown codes, uncited rules, self-suppression)."""
    table = scp_codes()
    ids = {s.id for s in logic.sources}
    out: list[str] = []
    for i, r in enumerate(logic.rules):
        where = f"rule {i + 1} ({r.by})"
        if r.by not in table:
            out.append(f"{where}: {r.by!r} is not a PTB-XL SCP statement")
        out += [f"{where}: {c!r} is not a PTB-XL SCP statement" for c in r.suppresses if c not in table]
        if r.by in r.suppresses:
            out.append(f"{where}: a statement cannot suppress itself")
        if r.source not in ids:
            out.append(f"{where}: source {r.source!r} is not one of the file's sources")
        if not r.why.strip():
            out.append(f"{where}: `why` is empty")
    for name in ("normal_statements", "minor_statements", "borderline_statements", "exact_statements"):
        out += [f"{name}: {c!r} is not a PTB-XL SCP statement" for c in getattr(logic, name) if c not in table]
    return [f"{logic.path or STATEMENT_LOGIC_FILE}: {p}" for p in out]


def load_statement_logic(dirs: list[Path]) -> StatementLogic:
    """The statement logic table of the first knowledge folder that has one (the curated knowledge/)."""
    for d in dirs:
        p = Path(d) / STATEMENT_LOGIC_FILE
        if p.is_file():
            return parse_statement_logic(p.read_text(encoding="utf-8"), str(p))
    raise InputError(f"no {STATEMENT_LOGIC_FILE} in the knowledge folders", path=str(dirs[0]) if dirs else None)
