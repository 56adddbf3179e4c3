"""Query understanding and hybrid search: values with units and leads read from free text, the
statements the knowledge base's criteria say they support, and searches over the shipped knowledge
base where a stated measurement past a threshold finds that statement's document first."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import run_cli
from test_index import _kb, curated_index  # noqa: F401 - the session fixture of the shipped index

from ragecg.criteria import evaluate_criteria
from ragecg.errors import IndexError_
from ragecg.knowledge import index as ix
from ragecg.knowledge import load_documents
from ragecg.retrieve.understand import (normalise_words, parse_measurements, search_understood, supported_statements,
                                        understand_query)
from ragecg.settings import get_settings


def _values(text: str) -> dict[str, float | bool]:
    return {k: v.value for v in parse_measurements(text) for k in v.evidence_keys()}


@pytest.mark.parametrize("text, expected", [
    ("PR 236", {"pr_interval_ms": 236.0}),
    ("PR interval 0.24 s with 1:1 conduction", {"pr_interval_ms": 240.0, "p_waves_per_qrs": 1.0}),
    ("PQ-Zeit 240 ms", {"pr_interval_ms": 240.0}),
    ("heart rate 42 bpm", {"heart_rate_bpm": 42.0}),
    ("HR 38/min", {"heart_rate_bpm": 38.0}),
    ("QRS 148 ms", {"qrs_duration_ms": 148.0}),
    ("complete LBBB with QRS 0.16 s", {"qrs_duration_ms": 160.0}),
    ("QTc of 520 ms", {"qtc_bazett_ms": 520.0, "qtc_fridericia_ms": 520.0, "qtc_framingham_ms": 520.0}),
    ("axis -50°", {"qrs_axis_deg": -50.0}),
    ("axis −60 degrees", {"qrs_axis_deg": -60.0}),
    ("Sokolow-Lyon 4.2 mV", {"sokolow_lyon_mv": 4.2}),
    ("sum of S in V1 and R in V5 45 mm", {"sokolow_lyon_mv": 4.5}),
    ("S V1 + R V5 = 4,1 mV", {"sokolow_lyon_mv": 4.1}),
    ("Cornell voltage 3.1 mV", {"cornell_voltage_mv": 3.1}),
    ("R in aVL 13 mm", {"r_amplitude_mv[aVL]": 1.3}),
    ("P wave 130 ms", {"p_duration_ms": 130.0}),
    ("atrial rate 300, 2:1 block", {"atrial_dominant_rate_bpm": 300.0, "p_waves_per_qrs": 2.0}),
])
def test_values_with_units_are_read_in_the_keys_units(text, expected):
    got = _values(text)
    for key, value in expected.items():
        assert got.get(key) == pytest.approx(value), (text, got)


def test_values_per_lead_with_ranges_lists_and_signs():
    st = _values("ST elevation 2 mm in V2-V4")
    assert {k: v for k, v in st.items() if k.startswith("st_j_mv")} == \
        {"st_j_mv[V2]": 0.2, "st_j_mv[V3]": 0.2, "st_j_mv[V4]": 0.2}
    assert st["st_j60_mv[V3]"] == 0.2
    dep = _values("ST depression 0.1 mV in II, V5, V6; QRS 90 ms")
    assert {k for k in dep if k.startswith("st_j_mv")} == {"st_j_mv[II]", "st_j_mv[V5]", "st_j_mv[V6]"}
    assert dep["st_j_mv[V5]"] == -0.1 and dep["qrs_duration_ms"] == 90.0
    assert _values("deep T inversion 4 mm in V1 to V3")["t_amplitude_mv[V2]"] == pytest.approx(-0.4)
    q = _values("Q waves 0.04 s in III and aVF")
    assert q == {"q_duration_ms[III]": 40.0, "q_duration_ms[aVF]": 40.0}
    # a lead's digit is never a value; a value without a unit or a quantity is not guessed
    assert _values("rsR' in V1, T inversion in V1 V2") == {}
    assert _values("patient 67 years") == {}


def _supported(text: str, docs):
    return supported_statements(parse_measurements(text), docs, evaluate_criteria)


def test_supported_statements_come_from_the_criteria():
    docs = load_documents(get_settings().knowledge_dirs)
    first = _supported("PR interval 236 ms", docs)[0]
    assert first.code in ("1AVB", "LPR") and first.doc_id == "first-degree-av-block"
    assert "PR interval 236 ms" in first.findings[0]
    assert _supported("heart rate 42 bpm, P before each QRS", docs)[0].code == "SBRAD"
    assert _supported("sum of S in V1 and R in V5 45 mm", docs)[0].code in ("LVH", "VCLVH")
    # values inside the normal ECG's criteria support no abnormality; below the threshold, nothing
    assert _supported("QRS 90 ms", docs) == []
    assert _supported("PR 180 ms", docs) == []
    assert _supported("sinus rhythm, P waves present", docs) == []
    u = understand_query("PR 236 ms", docs, evaluate_criteria)
    assert u.lines[0] == "PR 236 ms" and u.lines[1].startswith("first degree AV block")
    assert json.loads(json.dumps(u.to_dict()))["values"][0]["keys"] == ["pr_interval_ms"]


def test_abbreviations_and_typos_are_spelled_out():
    text, exp, corr = normalise_words("LBBB, sinus tachycardai", frozenset({"tachycardia", "sinus"}))
    assert exp == {"LBBB": "left bundle branch block"} and corr == {"tachycardai": "tachycardia"}
    assert text == "LBBB (left bundle branch block), sinus tachycardia"
    assert normalise_words("QRS V1 aVL", frozenset({"qrs"}))[0] == "QRS V1 aVL"   # short words untouched


# ---------------------------------------------------------------- searches on the shipped index
@pytest.mark.parametrize("query, doc_id", [
    ("PR interval 236 ms, each P followed by QRS, sinus rhythm", "first-degree-av-block"),
    ("heart rate 42 bpm, P before each QRS, normal PR", "sinus-bradycardia"),
    ("sum of S in V1 and R in V5 45 mm, ST depression and T inversion in V5 V6", "left-ventricular-hypertrophy"),
    ("QTc of 520 ms", "long-qt"),
    ("axis -50°, QRS 100 ms", "left-anterior-fascicular-block"),
])
def test_a_stated_measurement_past_a_threshold_finds_its_document_first(curated_index, query, doc_id):  # noqa: F811
    idx, docs = curated_index
    u = understand_query(query, docs, evaluate_criteria, idx.vocabulary())
    hits = search_understood(idx, u, 5)
    assert hits[0].doc_id == doc_id, (u.explain(), [h.doc_id for h in hits])


def test_exact_terms_reach_their_documents_through_bm25(curated_index):  # noqa: F811
    idx, _ = curated_index
    assert idx.search("Sokolow", 3, mode="lexical")[0].doc_id == "left-ventricular-hypertrophy"
    lex = {p.doc_id for p in idx.search("rsR' in V1", 5, mode="lexical")}
    assert lex & {"right-bundle-branch-block", "incomplete-rbbb"}
    hyb = idx.search("Sokolow", 5)
    assert hyb[0].doc_id == "left-ventricular-hypertrophy" and "LVH" in hyb[0].codes
    assert hyb == sorted(hyb, key=lambda p: -p.score)
    # a metadata filter still restricts every ranking
    assert {p.doc_id for p in idx.search("Sokolow", 3, doc_ids=["long-qt"])} == {"long-qt"}


# ---------------------------------------------------------------- the BM25 part on disk
def test_bm25_part_is_hashed_in_the_manifest_and_has_no_pickle(tmp_path, tmp_home):
    settings = get_settings(home=tmp_home, knowledge_dirs=[_kb(tmp_path)])
    res = ix.build_index(settings)
    manifest = json.loads((res.path / "manifest.json").read_text())
    bm25 = sorted(n for n in manifest["files"] if n.startswith("bm25/"))
    assert "bm25/vocab.index.json" in bm25 and "bm25/params.index.json" in bm25
    assert manifest["lexical"]["library"] == "bm25s" and manifest["lexical"]["k1"] == 1.5
    for name in bm25:
        if name.endswith(".npy"):
            arr = np.load(res.path / name, allow_pickle=False)          # raises on object (pickled) arrays
            assert arr.dtype != object
    # a changed BM25 file is caught by its sha256
    (res.path / "bm25" / "vocab.index.json").write_text("{}")
    with pytest.raises(IndexError_, match="rebuild"):
        ix.load_index(res.path)


def test_an_index_without_the_bm25_part_is_refused_and_rebuilt_reusing_vectors(tmp_path, tmp_home):
    settings = get_settings(home=tmp_home, knowledge_dirs=[_kb(tmp_path)])
    res = ix.build_index(settings)
    old = settings.indexes_dir / "0123456789abcdef"          # what a format-1 build left behind
    old.mkdir()
    for name in ("index.faiss", "chunks.json"):
        (old / name).write_bytes((res.path / name).read_bytes())
    manifest = json.loads((res.path / "manifest.json").read_text())
    manifest.update(format=1, index_hash=old.name,
                    files={n: d for n, d in manifest["files"].items() if not n.startswith("bm25/")})
    manifest.pop("lexical")
    (old / "manifest.json").write_text(json.dumps(manifest))
    (settings.indexes_dir / "ACTIVE").write_text(old.name + "\n")
    import shutil
    shutil.rmtree(res.path)
    with pytest.raises(IndexError_, match="rebuild"):
        ix.load_index(old)
    again = ix.build_index(settings)
    assert again.index_hash == res.index_hash and again.n_embedded == 0 and again.n_reused == again.n_chunks
    assert not old.exists() and ix.ensure_index(settings).search("Sokolow", 1)[0].doc_id == "lvh"


def test_cli_search_json_has_codes_and_understanding():
    res = run_cli("knowledge", "search", "PR interval 236 ms", "--json", "--k", "3")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["passages"][0]["doc_id"] == "first-degree-av-block"
    assert set(out["passages"][0]["codes"]) == {"1AVB", "LPR"}
    assert out["understanding"]["values"][0]["keys"] == ["pr_interval_ms"]
    assert out["understanding"]["statements"][0]["code"] in ("1AVB", "LPR")
    res = run_cli("knowledge", "search", "PR interval 236 ms", "--explain", "--k", "1")
    assert res.returncode == 0 and "PR interval 236 ms" in res.stdout and "supports 1AVB" in res.stdout
    bad = run_cli("knowledge", "search", "x", "--mode", "fuzzy")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--mode" in bad.stderr
