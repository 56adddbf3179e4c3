"""Retrieval: the query is findings in words with values (not label names alone); evidence holds the
flat measurements and deduplicated passages with '<doc_id>#<n>' ids."""
from __future__ import annotations

import re

import pytest

from ragecg.knowledge import index as ix
from ragecg.criteria.evaluate import evaluate_criteria
from ragecg.knowledge.documents import load_documents
from ragecg.values import LeadMeasurements, Measurements
from ragecg.retrieve.query import build_query, retrieve_evidence
from ragecg.values import describe_measure, describe_value
from ragecg.settings import get_settings

from test_index import _kb  # tests/ is on sys.path (pytest rootdir-relative import)


def _lbbb_measurements() -> Measurements:
    leads = {ld: LeadMeasurements(r_peak_time_ms=35.0, r_amplitude_mv=0.8, s_amplitude_mv=-0.4, st_j60_mv=0.0)
             for ld in ("I", "II", "V1", "V2", "V3", "V4")}
    leads["V5"] = LeadMeasurements(r_peak_time_ms=68.0, r_amplitude_mv=1.4, st_j60_mv=-0.12)
    leads["V6"] = LeadMeasurements(r_peak_time_ms=72.0, r_amplitude_mv=1.2, st_j60_mv=-0.10)
    return Measurements(sampling_rate_hz=500, duration_s=10, heart_rate_bpm=74.0, pr_interval_ms=172.0,
                        qrs_duration_ms=148.0, qtc_bazett_ms=468.0, qrs_axis_deg=-20.0, p_present=True,
                        leads=leads)


@pytest.fixture
def small_index(tmp_path, tmp_home):
    kb = _kb(tmp_path)
    settings = get_settings(home=tmp_home, knowledge_dirs=[kb])
    return ix.ensure_index(settings), load_documents([kb])


def test_describe_measurement_keys_in_words():
    assert describe_measure("st_j60_mv[V2]") == "ST level at J+60 ms in V2"
    assert describe_value("qrs_duration_ms", 148.04) == "QRS duration 148 ms"
    assert describe_value("r_peak_time_ms[V6]", 72.0) == "R peak time in V6 72 ms"
    assert describe_value("st_j60_mv[V2]", 0.254) == "ST level at J+60 ms in V2 0.25 mV"
    assert describe_value("p_present", False) == "P waves absent"
    assert describe_measure("new_thing_ms") == "new thing"        # unknown keys still read as words


def test_query_is_findings_with_values(tmp_path):
    docs = load_documents([_kb(tmp_path)])
    m = _lbbb_measurements()
    cands = evaluate_criteria(m, docs, sex="M")
    assert cands.candidates[0].code == "CLBBB" and cands.candidates[0].fired
    q = build_query(m, cands)
    first = q.splitlines()[0]
    assert first.startswith("complete left bundle branch block:")
    assert "QRS duration 148 ms" in first and "R peak time in V6 72 ms" in first
    assert "(in V5, V6)" in first           # both leads past the threshold are named
    assert q.splitlines()[-1].startswith("ECG measurements: heart rate 74 bpm, PR interval 172 ms")
    # With nothing fired, the best-scoring codes still give findings, not bare names.
    normal = m.model_copy(update={"qrs_duration_ms": 92.0, "leads": {}})
    q2 = build_query(normal, evaluate_criteria(normal, docs, sex="M"))
    assert "QRS duration 92 ms" in q2


def test_retrieve_evidence_dedupes_and_keeps_measurements(small_index):
    idx, docs = small_index
    m = _lbbb_measurements()
    cands = evaluate_criteria(m, docs, sex="M")
    ev = retrieve_evidence(idx, m, cands, k=4)
    ids = [p.passage_id for p in ev.passages]
    assert len(ids) == len(set(ids)) == 4
    assert all(re.fullmatch(r"[a-z0-9._-]+#\d+", i) for i in ids)
    assert ev.passages[0].doc_id == "clbbb"
    assert ev.measurements == m.flat() and ev.query == build_query(m, cands)
    assert ev.keys() == set(m.flat()) | set(ids)
    # every passage of a tiny index: still no duplicates, never more than the index holds
    assert len(retrieve_evidence(idx, m, cands, k=50).passages) == len(idx)


def test_candidate_documents_come_first_and_tied_codes_share_a_line(tmp_path, small_index):
    idx, docs = small_index
    # The metadata filter: an LBBB query restricted to the AF document returns only AF passages.
    within = idx.search("prolonged QRS duration 148 ms, R peak time in V6 72 ms", 3, doc_ids=["afib"])
    assert within and {p.doc_id for p in within} == {"afib"}
    assert idx.search("anything", 3, doc_ids=["no-such-doc"]) == []
    # Two codes defined by one document with the same rule tie; they get one query line, not two.
    twin = docs[1].model_copy(deep=True)            # clbbb
    assert twin.id == "clbbb"
    rule = twin.criteria[0]
    twin.criteria.append(rule.model_copy(update={"code": "IVCD"}))
    m = _lbbb_measurements()
    cands = evaluate_criteria(m, [docs[0], twin, docs[2]], sex="M")
    assert {c.code for c in cands.fired()} >= {"CLBBB", "IVCD"}
    lines = build_query(m, cands).splitlines()
    assert sum(ln.startswith(("complete left bundle", "non-specific intraventricular")) for ln in lines) == 1
    ev = retrieve_evidence(idx, m, cands, k=3)
    assert ev.passages[0].doc_id == "clbbb"
    assert len({p.doc_id for p in ev.passages}) >= 2       # the open hits bring other documents in


def test_retrieve_without_index_or_k():
    m = _lbbb_measurements()
    cands = evaluate_criteria(m, [], sex=None)
    ev = retrieve_evidence(None, m, cands, k=5)
    assert ev.passages == [] and ev.measurements == m.flat() and "QRS duration 148 ms" in ev.query
