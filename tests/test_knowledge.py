"""The curated knowledge base: every document valid, every SCP statement covered (the rules' firing:
tests/test_criteria.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ragecg.values import scp_codes
from ragecg.errors import InputError
from ragecg.knowledge.documents import coverage_table, knowledge_hash, load_documents, load_statement_logic, parse_markdown_doc, uncovered_codes, validate_directories, validate_documents
from ragecg.values import is_measurement_key

KB_DIR = Path(__file__).resolve().parents[1] / "knowledge"


@pytest.fixture(scope="module")
def kb_docs():
    return load_documents([KB_DIR])


# ------------------------------------------------------------------ the shipped documents

def test_every_shipped_document_parses_and_validates():
    docs, problems = validate_directories([KB_DIR])
    assert problems == []
    assert len(docs) >= 40


def test_every_scp_statement_is_covered(kb_docs):
    assert uncovered_codes(kb_docs) == []
    table = coverage_table(kb_docs)
    assert {r["code"] for r in table} == set(scp_codes())
    assert len(table) == 71
    row = next(r for r in table if r["code"] == "CLBBB")
    assert row["doc_ids"] == ["left-bundle-branch-block"]
    assert row["rule_doc_ids"] == ["left-bundle-branch-block"]
    assert row["kinds"] == ["diagnostic"] and row["superclass"] == "CD"


def test_every_condition_uses_a_real_measurement_and_a_cited_source(kb_docs):
    n = 0
    for doc in kb_docs:
        for rule in doc.criteria:
            for cond in rule.conditions:
                n += 1
                assert is_measurement_key(cond.measure), (doc.id, cond.measure)
                assert cond.source in doc.source_ids(), (doc.id, cond.source)
    assert n > 100


# ------------------------------------------------------------------ malformed documents

GOOD_FRONT = """---
id: test-doc
title: Test
codes: {scp: [CLBBB]}
sources:
  - {id: src1, cite: "Someone. A paper. 2020."}
reviewed: 2026-11-23
version: 1
criteria:
  - code: CLBBB
    conditions:
      - {measure: MEASURE, op: ">=", value: 120, source: SOURCE}
---
## Definition
x
## Criteria
x
## Differential
x
## Pitfalls
x
"""


def _doc_text(measure="qrs_duration_ms", source="src1"):
    return GOOD_FRONT.replace("MEASURE", measure).replace("SOURCE", source)


def test_well_formed_test_document_has_no_problems():
    doc = parse_markdown_doc(_doc_text(), "kb/test-doc.md")
    assert validate_documents([doc]) == []


def test_missing_sources_is_an_input_error_naming_the_file():
    text = _doc_text().replace('sources:\n  - {id: src1, cite: "Someone. A paper. 2020."}\n', "")
    with pytest.raises(InputError) as exc:
        parse_markdown_doc(text, "kb/no-sources.md")
    assert "no-sources.md" in str(exc.value) and "sources" in str(exc.value)


def test_bad_yaml_is_an_input_error_naming_the_file():
    with pytest.raises(InputError) as exc:
        parse_markdown_doc("---\nid: [unclosed\n---\nbody\n", "kb/bad-yaml.md")
    assert "bad-yaml.md" in str(exc.value) and "YAML" in str(exc.value)


def test_unknown_measure_is_a_problem_naming_file_and_measure():
    doc = parse_markdown_doc(_doc_text(measure="qrs_width"), "kb/unknown-measure.md")
    problems = validate_documents([doc])
    assert len(problems) == 1
    assert problems[0].startswith("kb/unknown-measure.md:") and "qrs_width" in problems[0]


def test_condition_source_must_be_one_of_the_documents_sources():
    doc = parse_markdown_doc(_doc_text(source="nowhere2020"), "kb/bad-source.md")
    problems = validate_documents([doc])
    assert any("nowhere2020" in p and p.startswith("kb/bad-source.md:") for p in problems)


def test_per_lead_measure_without_leads_is_a_problem():
    doc = parse_markdown_doc(_doc_text(measure="st_j60_mv"), "kb/no-leads.md")
    assert any("needs `leads" in p for p in validate_documents([doc]))


def test_boolean_value_on_a_numeric_measure_is_a_problem():
    text = _doc_text().replace('op: ">=", value: 120', 'op: "==", value: true')
    doc = parse_markdown_doc(text, "kb/bool.md")
    assert any("does not match the measurement's type" in p for p in validate_documents([doc]))


def test_unknown_scp_code_and_missing_sections_are_problems():
    text = _doc_text().replace("scp: [CLBBB]", "scp: [CLBBB, NOTACODE]").replace("## Pitfalls\nx\n", "")
    doc = parse_markdown_doc(text, "kb/odd.md")
    problems = validate_documents([doc])
    assert any("NOTACODE" in p for p in problems)
    assert any("## Pitfalls" in p for p in problems)


def test_validate_directories_collects_parse_errors_instead_of_stopping(tmp_path):
    (tmp_path / "good.md").write_text(_doc_text(), encoding="utf-8")
    (tmp_path / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("# not a document\n", encoding="utf-8")
    docs, problems = validate_directories([tmp_path])
    assert [d.id for d in docs] == ["test-doc"]
    assert len(problems) == 1 and "broken.md" in problems[0]


def test_duplicate_ids_are_a_problem():
    a = parse_markdown_doc(_doc_text(), "kb/a.md")
    b = parse_markdown_doc(_doc_text(), "kb/b.md")
    assert any("duplicate knowledge id" in p for p in validate_documents([a, b]))


def test_libyaml_loader_reads_every_shipped_front_matter_as_the_python_loader_does():
    """knowledge/documents.py parses front matter with PyYAML's libyaml loader when it is available (speed):
    it must give the same values, of the same types, as yaml.safe_load for every curated document."""
    import yaml

    from ragecg.knowledge.documents import _FRONT, iter_markdown_files, yaml_safe_load
    from ragecg.settings import get_settings

    assert hasattr(yaml, "CSafeLoader")               # the wheel ships libyaml: the fast path is the one tested
    files = iter_markdown_files(get_settings().knowledge_dirs)
    assert len(files) >= 40
    for f in files:
        front = _FRONT.match(f.read_text(encoding="utf-8")).group(1)
        fast, slow = yaml_safe_load(front), yaml.safe_load(front)
        assert fast == slow and repr(fast) == repr(slow), f.name


def test_knowledge_hash_covers_the_statement_logic_table():
    """Reports carry one knowledge hash: a change to the statement logic (which decides the printed statements)
    must change it, as a change to a criteria document does."""
    docs = load_documents([KB_DIR])
    logic = load_statement_logic([KB_DIR])
    edited = logic.model_copy(update={"minor_statements": [*logic.minor_statements, "LPR"]})
    assert knowledge_hash(docs, logic) != knowledge_hash(docs)
    assert knowledge_hash(docs, logic) == knowledge_hash(docs, load_statement_logic([KB_DIR]))
    assert knowledge_hash(docs, edited) != knowledge_hash(docs, logic)
