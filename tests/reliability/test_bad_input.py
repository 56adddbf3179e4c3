"""Every kind of bad input through `ragecg measure` and `ragecg diagnose --no-llm`: a documented exit
code, ONE line on stderr naming the file and the problem, no traceback, no output for a signal that
cannot support it; odd-but-valid inputs work and give the clean record's values."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ragecg.errors import UnusableSignalError
from ragecg.signal.measure import measure_ecg
from ragecg.signal.quality import assess_quality
from ragecg.reading.leads import ecg_from_leads
from ragecg.values import STANDARD_LEADS

from .clirun import run_cli
from .conftest import DIAGNOSE_OK_FAST, run_diagnose_json, shown_name
from .corpus import KINDS, base_signal

ERROR_KINDS = [k for k in KINDS if k.exit_code != 0]
OK_KINDS = [k for k in KINDS if k.exit_code == 0]
DOCUMENTED_EXIT_CODES = {0, 3, 4, 5}   # README.md exit-code table (6 is for batches)


def test_corpus_is_broad():
    assert len(KINDS) >= 30
    assert {k.exit_code for k in KINDS} == {0, 3, 4}
    assert all(k.exit_code in DOCUMENTED_EXIT_CODES for k in KINDS)
    assert all(k.needle for k in ERROR_KINDS), "every failing kind says which message it expects"


def assert_one_line_error(res: dict, kind, path) -> str:
    assert res["escaped"] is None, f"{kind.name}: exception escaped main(): {res['escaped']}"
    assert res["rc"] == kind.exit_code, (kind.name, res["rc"], res["stderr"][-600:])
    lines = [ln for ln in res["stderr"].splitlines() if ln.strip()]
    assert len(lines) == 1, (kind.name, lines)
    line = lines[0]
    assert line.startswith("ragecg: "), line
    assert "Traceback" not in res["stderr"] and "File \"" not in res["stderr"]
    assert shown_name(path) in line, f"{kind.name}: the message does not name the file: {line}"
    assert re.search(kind.needle, line), f"{kind.name}: expected /{kind.needle}/ in: {line}"
    assert res["stdout"] == "", f"{kind.name}: output printed for a refused input"
    assert len(line) < 1200
    return line


@pytest.mark.parametrize("kind", ERROR_KINDS, ids=lambda k: k.name)
def test_measure_refuses_bad_input(kind, corpus, measure_results):
    assert_one_line_error(measure_results[kind.name], kind, corpus[kind.name])


@pytest.mark.parametrize("kind", ERROR_KINDS, ids=lambda k: k.name)
def test_diagnose_refuses_bad_input(kind, corpus, diagnose_error_results):
    assert_one_line_error(diagnose_error_results[kind.name], kind, corpus[kind.name])


def _values(res: dict) -> dict:
    return json.loads(res["stdout"])["measurements"]


@pytest.mark.parametrize("kind", OK_KINDS, ids=lambda k: k.name)
def test_measure_works_on_odd_but_valid_input(kind, measure_results):
    res = measure_results[kind.name]
    assert res["escaped"] is None and res["rc"] == 0, (kind.name, res["rc"], res["stderr"][-600:])
    assert "Traceback" not in res["stderr"]
    doc = json.loads(res["stdout"])
    m, clean = doc["measurements"], _values(measure_results["clean"])
    # sane: the clean record's rhythm and intervals (the modifications leave the heart alone)
    assert m["heart_rate_bpm"] == pytest.approx(clean["heart_rate_bpm"], rel=0.03), kind.name
    assert abs(m["qrs_duration_ms"] - clean["qrs_duration_ms"]) <= 20, (kind.name, m["qrs_duration_ms"])
    assert abs(m["qt_interval_ms"] - clean["qt_interval_ms"]) <= 30, (kind.name, m["qt_interval_ms"])
    if kind.name not in ("la_ra_reversal", "inverted_polarity", "eight_leads", "one_lead"):   # one lead: no axis
        assert abs(m["qrs_axis_deg"] - clean["qrs_axis_deg"]) <= 15, (kind.name, m["qrs_axis_deg"])
    warnings = [ln for ln in res["stderr"].splitlines() if ln.strip()]
    if kind.name == "dat_longer":
        assert len(warnings) == 1 and warnings[0].startswith("warning: rec.hea: signal file rec.dat holds")
    elif kind.name == "too_long":
        assert warnings == ["warning: long.hea: record is 660 s long; only its first 600 s (10 min) were read"]
    else:
        assert warnings == [], (kind.name, warnings)


def test_lead_reversal_and_inversion_are_flagged(measure_results):
    def reasons(name):
        q = json.loads(measure_results[name]["stdout"])["quality"]
        return q["verdict"], " ".join(q["reasons"])

    verdict, text = reasons("la_ra_reversal")
    assert verdict == "limited" and "possible limb lead reversal (LA/RA)" in text
    verdict, text = reasons("inverted_polarity")
    assert verdict == "limited" and "possible inverted polarity" in text
    for name in ("clean", "dc_offset", "eight_leads"):
        assert "reversal" not in reasons(name)[1] and "inverted" not in reasons(name)[1], name
    # the swap itself is visible in the measurements: lead I inverted, axis moved to the right
    swapped, clean = _values(measure_results["la_ra_reversal"]), _values(measure_results["clean"])
    assert swapped["qrs_axis_deg"] > 90 and clean["qrs_axis_deg"] < 90


def test_eight_leads_report_derived_leads(measure_results):
    doc = json.loads(measure_results["eight_leads"]["stdout"])
    assert set(doc["measurements"]["leads"]) >= set(STANDARD_LEADS[:6])


@pytest.mark.parametrize("name", ["missing_file", "all_zero", "fs_negative", "dc_offset"])
def test_a_real_process_per_call_behaves_like_the_batch(name, corpus, measure_results, cli_env):
    """The batch runner calls the same entry point; a separate process per call gives the same result."""
    res = run_cli("measure", "--json", str(corpus[name]), env_extra=cli_env)
    batch = measure_results[name]
    assert res.returncode == batch["rc"] and res.stderr == batch["stderr"]
    if res.returncode == 0:
        assert json.loads(res.stdout)["measurements"] == json.loads(batch["stdout"])["measurements"]


def test_diagnose_works_on_odd_but_valid_input(corpus, cli_env, measure_results):
    results = run_diagnose_json(corpus, cli_env, ["clean", *DIAGNOSE_OK_FAST])
    _check_diagnose_ok(results)


@pytest.mark.slow
def test_diagnose_works_on_every_odd_but_valid_input(corpus, cli_env):
    _check_diagnose_ok(run_diagnose_json(corpus, cli_env, ["clean", *[k.name for k in OK_KINDS]]))


def _check_diagnose_ok(results: dict) -> None:
    clean = json.loads(results["clean"]["stdout"])
    for name, res in results.items():
        assert res["escaped"] is None and res["rc"] == 0, (name, res["rc"], res["stderr"][-600:])
        doc = json.loads(res["stdout"])
        assert "physician" in doc["disclaimer"]
        assert doc["measurements"]["heart_rate_bpm"] == pytest.approx(clean["measurements"]["heart_rate_bpm"], rel=0.03)
        if name == "la_ra_reversal":
            assert any("limb lead reversal" in r for r in doc["quality"]["reasons"])
            assert doc["quality"]["electrode_findings"] == ["limb_lead_reversal"]
        if name == "inverted_polarity":
            assert doc["quality"]["electrode_findings"] == ["inverted_polarity"]
        if name.startswith("mains_") and name.endswith("_heavy"):
            assert doc["quality"]["mains_filter_hz"] == [float(name[6:8])]
        if name == "eight_leads":
            assert sorted(doc["derived_leads"]) == ["III", "aVF", "aVL", "aVR"]


# ------------------------------------------------------------------ Python API: values no file format holds
def _leads(data_dir) -> dict[str, np.ndarray]:
    sig = base_signal(str(data_dir))
    return {name: sig[:, i].copy() for i, name in enumerate(STANDARD_LEADS)}


def test_inf_samples_are_treated_as_missing(data_dir):
    leads = _leads(data_dir)
    for name in leads:
        leads[name][2000:2010] = np.inf
        leads[name][3000] = -np.inf
    ecg = ecg_from_leads(leads, 500.0, source_path="inf.hea", source_format="wfdb")
    quality = assess_quality(ecg)
    assert quality.verdict != "unusable"
    m = measure_ecg(ecg, quality.usable_leads())
    flat = m.flat()
    assert flat and all(np.isfinite(float(v)) for v in flat.values())
    assert 50 < m.heart_rate_bpm < 80


def test_mostly_inf_is_refused(data_dir):
    leads = _leads(data_dir)
    for name in leads:
        leads[name][::3] = np.inf
    ecg = ecg_from_leads(leads, 500.0, source_path="inf.hea", source_format="wfdb")
    quality = assess_quality(ecg)
    assert quality.verdict == "unusable" and "NaN/inf" in " ".join(quality.reasons)
    from ragecg.pipeline import measure
    with pytest.raises(UnusableSignalError, match="inf.hea: signal unusable"):
        measure(ecg)


# ------------------------------------------------------------------ electrode findings withhold the codes they spoil
def test_lead_reversal_withholds_limb_lead_codes(data_dir):
    """LUDB 58 with the arm electrodes swapped: the reversal is flagged, every code that fired only on limb-lead
    or frontal-axis criteria is withheld (and named in the report), and no code left standing reads a limb
    lead; the unmodified record is untouched."""
    from ragecg.criteria.evaluate import evaluate_criteria
    from ragecg.pipeline import Resources, diagnose_ecg
    from ragecg.criteria.withhold import LIMB_LEAD_MEASURES
    from ragecg.values import LIMB_LEADS
    from ragecg.render import render
    from ragecg.settings import get_settings

    from .corpus import la_ra_swap

    res = Resources(settings=get_settings(), use_llm=False, use_retrieval=False)
    sig = base_signal(str(data_dir))
    clean = diagnose_ecg(ecg_from_leads({n: sig[:, i].copy() for i, n in enumerate(STANDARD_LEADS)}, 500.0,
                                        source_path="clean.hea", source_format="wfdb"), res)
    swapped_sig = la_ra_swap(sig)
    swapped = diagnose_ecg(ecg_from_leads({n: swapped_sig[:, i].copy() for i, n in enumerate(STANDARD_LEADS)}, 500.0,
                                          source_path="swapped.hea", source_format="wfdb"), res)
    assert clean.quality.electrode_findings == [] and clean.quality.withheld_codes == []
    q = swapped.quality
    assert q.electrode_findings == ["limb_lead_reversal"]
    # Without withholding, the swap makes limb-lead codes fire (the hazard); each of them is withheld now.
    unfiltered = evaluate_criteria(swapped.measurements, res.docs)
    spoiled = {c.code for c in unfiltered.fired()} - {c.code for c in clean.criteria if c.fired}
    assert spoiled and spoiled <= set(q.withheld_codes), (spoiled, q.withheld_codes)
    for code in q.withheld_codes:
        assert swapped.candidate_scores[code] < 0.5
        assert code not in [c.code for c in swapped.diagnosis.codes]
    for c in swapped.criteria:
        if c.fired:
            for cond in c.conditions:
                assert cond.lead not in LIMB_LEADS and cond.measure not in LIMB_LEAD_MEASURES, (c.code, cond)
    text = render(swapped, "text")
    assert "codes withheld (limb-lead reversal suspected" in text and q.withheld_codes[0] in text
