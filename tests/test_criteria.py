"""Criteria: rules of the curated knowledge base fire on hand-made measurements the way their cited
criteria say (moved from tests/test_knowledge.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ragecg.criteria.evaluate import evaluate_criteria
from ragecg.knowledge.documents import load_documents
from ragecg.values import LeadMeasurements, Measurements

KB_DIR = Path(__file__).resolve().parents[1] / "knowledge"


@pytest.fixture(scope="module")
def kb_docs():
    return load_documents([KB_DIR])


# ------------------------------------------------------------------ rules on hand-made measurements

def _m(**kw) -> Measurements:
    leads = kw.pop("leads", {})
    return Measurements(sampling_rate_hz=500, duration_s=10,
                        leads={k: LeadMeasurements(**v) for k, v in leads.items()}, **kw)


NORMAL = dict(p_present=True, p_waves_per_qrs=1.0, heart_rate_bpm=72, rr_cv=0.03, pr_interval_ms=160,
              qrs_duration_ms=92, qtc_framingham_ms=410, qrs_axis_deg=45)


def _fired(m, docs, sex=None) -> set[str]:
    return {c.code for c in evaluate_criteria(m, docs, sex=sex).fired()}


def test_normal_measurements_fire_norm_and_sinus_rhythm_only(kb_docs):
    fired = _fired(_m(**NORMAL), kb_docs)
    assert {"NORM", "SR"} <= fired
    assert not fired & {"SBRAD", "STACH", "AFIB", "1AVB", "CLBBB", "CRBBB", "LNGQT"}


def test_wide_qrs_with_late_lateral_r_peak_fires_clbbb_and_suppresses_norm(kb_docs):
    m = _m(**{**NORMAL, "qrs_duration_ms": 150},
           leads={"V5": {"r_peak_time_ms": 80}, "V6": {"r_peak_time_ms": 80}, "V1": {"r_peak_time_ms": 30}})
    cands = evaluate_criteria(m, kb_docs)
    fired = {c.code for c in cands.fired()}
    assert "CLBBB" in fired
    assert not fired & {"CRBBB", "IRBBB", "IVCD", "NORM"}
    clbbb = next(c for c in cands.candidates if c.code == "CLBBB")
    assert clbbb.doc_ids == ["left-bundle-branch-block"]
    assert {r.source for r in clbbb.conditions} == {"aha2009-part3"}


def test_late_r_peak_in_v1_fires_crbbb_not_clbbb(kb_docs):
    m = _m(**{**NORMAL, "qrs_duration_ms": 140},
           leads={"V1": {"r_peak_time_ms": 95}, "V5": {"r_peak_time_ms": 40}, "V6": {"r_peak_time_ms": 40}})
    fired = _fired(m, kb_docs)
    assert "CRBBB" in fired and "CLBBB" not in fired


def test_slow_rate_with_p_waves_fires_sbrad_not_sr(kb_docs):
    fired = _fired(_m(**{**NORMAL, "heart_rate_bpm": 45}), kb_docs)
    assert "SBRAD" in fired
    assert not fired & {"SR", "STACH", "AFIB"}


def test_no_p_waves_and_irregular_rr_fire_afib_not_sr(kb_docs):
    m = _m(**{**NORMAL, "p_present": False, "p_waves_per_qrs": None, "pr_interval_ms": None, "rr_cv": 0.2,
              "rr_irregularity": 0.2, "p_wave_beat_fraction": 0.0})
    fired = _fired(m, kb_docs)
    assert "AFIB" in fired
    # irregular only through ectopy (classes tight), or P waves before most beats: not AF
    assert "AFIB" not in _fired(_m(**{**NORMAL, "p_present": False, "rr_cv": 0.2, "rr_irregularity": 0.03,
                                      "p_wave_beat_fraction": 0.0}), kb_docs)
    assert "AFIB" not in _fired(_m(**{**NORMAL, "p_present": False, "rr_cv": 0.2, "rr_irregularity": 0.2,
                                      "p_wave_beat_fraction": 0.8}), kb_docs)
    assert not fired & {"SR", "SBRAD", "STACH", "NORM"}


def test_regular_narrow_tachycardia_without_p_waves_fires_svtac_not_stach(kb_docs):
    m = _m(**{**NORMAL, "p_present": False, "pr_interval_ms": None, "heart_rate_bpm": 170, "rr_cv": 0.01})
    fired = _fired(m, kb_docs)
    assert "SVTAC" in fired and "STACH" not in fired and "AFIB" not in fired


def test_long_pr_fires_first_degree_block(kb_docs):
    fired = _fired(_m(**{**NORMAL, "pr_interval_ms": 260}), kb_docs)
    assert {"1AVB", "LPR"} <= fired and "NORM" not in fired


def test_sex_specific_thresholds_cornell_and_qtc(kb_docs):
    m = _m(**{**NORMAL, "cornell_voltage_mv": 2.4, "qtc_framingham_ms": 455})
    men, women = _fired(m, kb_docs, sex="M"), _fired(m, kb_docs, sex="F")
    assert "VCLVH" in women and "VCLVH" not in men      # Cornell: > 2.0 mV women, > 2.8 mV men
    assert "LVH" not in women                           # voltage alone is not LVH (Romhilt-Estes < 5)
    assert "LNGQT" in men and "LNGQT" not in women      # QTc: >= 450 ms men, >= 460 ms women
    assert "VCLVH" not in _fired(m, kb_docs, sex=None)  # unknown sex: first (male) threshold
    strain = {ld: {"st_j80_mv": -0.1, "t_amplitude_mv": -0.3} for ld in ("V5", "V6")}
    assert "LVH" in _fired(_m(**{**NORMAL, "cornell_voltage_mv": 2.4}, leads=strain), kb_docs, sex="F")


def test_romhilt_estes_voltage_point_with_left_axis_deviation_is_lvh(kb_docs):
    tall_limb_r = {"I": {"r_amplitude_mv": 2.2}}
    assert "LVH" in _fired(_m(**{**NORMAL, "qrs_axis_deg": -40}, leads=tall_limb_r), kb_docs)   # 3 + 2 points
    assert "LVH" not in _fired(_m(**NORMAL, leads=tall_limb_r), kb_docs)                        # voltage alone: 3
    deep_s_v2 = {"V2": {"s_amplitude_mv": -3.2}}
    assert "LVH" in _fired(_m(**{**NORMAL, "qrs_axis_deg": -40}, leads=deep_s_v2), kb_docs)
    assert "LVH" not in _fired(_m(**{**NORMAL, "qrs_axis_deg": -40}, leads={"V2": {"s_amplitude_mv": -2.5}}), kb_docs)


def test_romhilt_estes_voltage_with_left_atrial_p_terminal_in_v1_is_lvh(kb_docs):
    """Romhilt & Estes 1968: voltage (3 points) + terminal negative P in V1 of >= 1 mm and >= 0.04 s (3 points)."""
    lae = {"V1": {"p_terminal_negative_mv": -0.15, "p_terminal_negative_ms": 48}}
    assert "LVH" in _fired(_m(**{**NORMAL, "sokolow_lyon_mv": 3.8}, leads=lae), kb_docs)
    assert "LVH" not in _fired(_m(**{**NORMAL, "sokolow_lyon_mv": 3.8}), kb_docs)             # voltage alone: 3
    assert "LVH" not in _fired(_m(**NORMAL, leads=lae), kb_docs)                               # P terminal alone: 3
    short = {"V1": {"p_terminal_negative_mv": -0.15, "p_terminal_negative_ms": 30}}
    assert "LVH" not in _fired(_m(**{**NORMAL, "sokolow_lyon_mv": 3.8}, leads=short), kb_docs)


def test_inferior_q_waves_fire_imi_only_with_narrow_qrs(kb_docs):
    q = {"q_duration_ms": 40, "q_amplitude_mv": -0.3}
    leads = {"II": q, "III": q, "aVF": q}
    assert "IMI" in _fired(_m(**NORMAL, leads=leads), kb_docs)
    assert "IMI" not in _fired(_m(**{**NORMAL, "qrs_duration_ms": 150}, leads=leads), kb_docs)
    one = {"II": q, "III": {"q_duration_ms": 0, "q_amplitude_mv": 0}, "aVF": {"q_duration_ms": 0, "q_amplitude_mv": 0}}
    assert "IMI" not in _fired(_m(**NORMAL, leads=one), kb_docs)   # one lead is not two contiguous


def test_inferior_q_waves_with_a_wide_qrs_fire_imi_unless_it_is_lbbb_like(kb_docs):
    q = {"q_duration_ms": 40, "q_amplitude_mv": -0.3}
    wide = {**NORMAL, "qrs_duration_ms": 135}
    ivcd = {"II": q, "III": q, "aVF": q, "V5": {"r_peak_time_ms": 45}, "V6": {"r_peak_time_ms": 50}}
    assert "IMI" in _fired(_m(**wide, leads=ivcd), kb_docs)          # UDMI excludes only LVH and LBBB
    lbbb = {**ivcd, "V5": {"r_peak_time_ms": 75}, "V6": {"r_peak_time_ms": 80}}
    assert "IMI" not in _fired(_m(**wide, leads=lbbb), kb_docs)      # AHA 2009 Part III: RpT > 60 in V5 and V6


def test_minnesota_major_q_in_one_inferior_lead_fires_imi(kb_docs):
    lat = {"V5": {"r_peak_time_ms": 40}, "V6": {"r_peak_time_ms": 40}}
    no_q = {"q_duration_ms": 0, "q_amplitude_mv": 0}
    avf = {**lat, "II": no_q, "III": no_q, "aVF": {"q_duration_ms": 55, "q_amplitude_mv": -0.2}}
    assert "IMI" in _fired(_m(**NORMAL, leads=avf), kb_docs)                  # Minnesota 1-1-5
    shorter = {**avf, "aVF": {"q_duration_ms": 45, "q_amplitude_mv": -0.2}}
    assert "IMI" not in _fired(_m(**NORMAL, leads=shorter), kb_docs)          # 1-2-5 (minor) only
    shallow = {**avf, "aVF": {"q_duration_ms": 55, "q_amplitude_mv": -0.05}}
    assert "IMI" not in _fired(_m(**NORMAL, leads=shallow), kb_docs)          # < 0.1 mV is not a Q wave
    lbbb_like = {**avf, "V5": {"r_peak_time_ms": 70}, "V6": {"r_peak_time_ms": 75}}
    assert "IMI" not in _fired(_m(**NORMAL, leads=lbbb_like), kb_docs)


def test_missing_measurement_does_not_fire_and_says_why(kb_docs):
    m = _m(**{**NORMAL, "qrs_duration_ms": None})
    cands = evaluate_criteria(m, kb_docs)
    clbbb = next(c for c in cands.candidates if c.code == "CLBBB")
    assert not clbbb.fired
    assert any(r.note == "not measured" for r in clbbb.conditions)


def test_premature_beats_fire_by_their_origin(kb_docs):
    pvc = _fired(_m(**{**NORMAL, "premature_beat_count": 1, "pvc_count": 1, "pac_count": 0}), kb_docs)
    assert {"PVC", "PRC(S)"} <= pvc and not pvc & {"PAC", "SVARR"}
    pac = _fired(_m(**{**NORMAL, "premature_beat_count": 1, "pvc_count": 0, "pac_count": 1}), kb_docs)
    assert {"PAC", "SVARR", "PRC(S)"} <= pac and "PVC" not in pac
    # early narrow beats without a P-wave rhythm (atrial fibrillation) are not atrial premature complexes
    af = _fired(_m(**{**NORMAL, "p_present": False, "rr_cv": 0.2, "rr_irregularity": 0.2, "p_wave_beat_fraction": 0.0,
                      "premature_beat_count": 3, "pac_count": 3}), kb_docs)
    assert "AFIB" in af and not af & {"PAC", "SVARR"}
    none = _fired(_m(**{**NORMAL, "premature_beat_count": 0, "pvc_count": 0, "pac_count": 0}), kb_docs)
    assert not none & {"PVC", "PAC", "SVARR", "PRC(S)"}


def test_bigeminy_and_trigeminy_need_three_cycles(kb_docs):
    base = {**NORMAL, "premature_beat_count": 3, "pvc_count": 3}
    assert "BIGU" in _fired(_m(**{**base, "bigeminy_cycles": 3, "trigeminy_cycles": 0}), kb_docs)
    two = _fired(_m(**{**base, "bigeminy_cycles": 2, "trigeminy_cycles": 0}), kb_docs)
    assert "BIGU" not in two and "PVC" in two
    tri = _fired(_m(**{**base, "bigeminy_cycles": 1, "trigeminy_cycles": 3}), kb_docs)
    assert "TRIGU" in tri and "BIGU" not in tri


def test_sinus_arrhythmia_needs_p_waves_and_an_nn_range_above_160_ms(kb_docs):
    assert "SARRH" in _fired(_m(**{**NORMAL, "nn_range_ms": 180}), kb_docs)
    # Between the MeSH 120 ms and Chou's 160 ms definitions: not printed (Chou's is the rule).
    assert "SARRH" not in _fired(_m(**{**NORMAL, "nn_range_ms": 150}), kb_docs)
    assert "SARRH" not in _fired(_m(**{**NORMAL, "nn_range_ms": 90}), kb_docs)
    assert "SARRH" not in _fired(_m(**{**NORMAL, "nn_range_ms": 180, "p_present": False}), kb_docs)


def test_atrial_flutter_needs_an_organised_atrial_rate_of_250_to_350(kb_docs):
    flutter = {**NORMAL, "p_present": False, "heart_rate_bpm": 75, "rr_cv": 0.02}
    assert "AFLT" in _fired(_m(**{**flutter, "atrial_dominant_rate_bpm": 300, "atrial_organization": 0.8}), kb_docs)
    assert "AFLT" not in _fired(_m(**{**flutter, "atrial_dominant_rate_bpm": 450, "atrial_organization": 0.8}), kb_docs)
    assert "AFLT" not in _fired(_m(**{**flutter, "atrial_dominant_rate_bpm": 300, "atrial_organization": 0.3}), kb_docs)
    assert "AFLT" not in _fired(_m(**{**flutter, "atrial_organization": 0.3}), kb_docs)   # no rate reported


def test_a_p_wave_at_a_fixed_pr_excludes_flutter_unless_the_conduction_ratio_is_2_to_1(kb_docs):
    """Flutter waves replace P waves (2015 ACC/AHA/HRS SVT guideline): with a consistent P wave before every QRS
    the organised atrial rate is flutter only when it is about twice the ventricular rate (2:1 flutter, the other
    flutter wave hidden in the QRS or T wave: Goldberger); 3-5 times the rate is a harmonic of a sinus rhythm."""
    organised = {"atrial_dominant_rate_bpm": 300, "atrial_organization": 0.8}
    sinus = {**NORMAL, **organised, "heart_rate_bpm": 75, "atrial_ventricular_rate_ratio": 4.0}
    assert "AFLT" not in _fired(_m(**sinus), kb_docs)
    assert "AFLT" not in _fired(_m(**{**sinus, "heart_rate_bpm": 100, "atrial_ventricular_rate_ratio": 3.0}), kb_docs)
    two_to_one = {**sinus, "heart_rate_bpm": 150, "atrial_ventricular_rate_ratio": 2.0}
    assert "AFLT" in _fired(_m(**two_to_one), kb_docs)
    # without a consistent P wave any conduction ratio (4:1 flutter, variable conduction)
    assert "AFLT" in _fired(_m(**{**sinus, "p_present": False}), kb_docs)
    # a P wave and no ratio (no heart rate) is not flutter
    assert "AFLT" not in _fired(_m(**{**sinus, "atrial_ventricular_rate_ratio": None}), kb_docs)


def test_fragmented_qrs_needs_two_leads_of_one_territory_and_a_narrow_qrs(kb_docs):
    notch, plain = {"qrs_notch_count": 1}, {"qrs_notch_count": 0}
    inferior = {"II": notch, "III": plain, "aVF": notch, "V2": plain}
    assert "ABQRS" in _fired(_m(**NORMAL, leads=inferior), kb_docs)
    assert "ABQRS" not in _fired(_m(**{**NORMAL, "qrs_duration_ms": 130}, leads=inferior), kb_docs)
    split = {"II": notch, "III": plain, "aVF": plain, "V2": notch, "I": plain}
    assert "ABQRS" not in _fired(_m(**NORMAL, leads=split), kb_docs)


def test_digitalis_needs_st_depression_and_a_short_qtc(kb_docs):
    st = {"st_j80_mv": -0.1}
    leads = {"V5": st, "V6": st}
    assert "DIG" in _fired(_m(**{**NORMAL, "qtc_framingham_ms": 370}, leads=leads), kb_docs)
    assert "DIG" not in _fired(_m(**{**NORMAL, "qtc_framingham_ms": 430}, leads=leads), kb_docs)
    assert "DIG" not in _fired(_m(**{**NORMAL, "qtc_framingham_ms": 370}), kb_docs)


def test_deep_lateral_q_waves_with_a_narrow_qrs_fire_septal_hypertrophy(kb_docs):
    deep = {"q_amplitude_mv": -0.45, "q_duration_ms": 25}
    assert "SEHYP" in _fired(_m(**NORMAL, leads={"I": deep, "aVL": deep}), kb_docs)
    assert "SEHYP" not in _fired(_m(**{**NORMAL, "qrs_duration_ms": 150}, leads={"I": deep, "aVL": deep}), kb_docs)
    shallow = {"q_amplitude_mv": -0.1, "q_duration_ms": 20}
    assert "SEHYP" not in _fired(_m(**NORMAL, leads={"I": shallow, "aVL": shallow}), kb_docs)



def test_left_atrial_abnormality_needs_a_long_p_wave_and_a_deep_long_terminal_negative_p_in_v1(kb_docs):
    """Seattle criteria (Drezner 2013, kept in the 2017 International criteria): P duration > 120 ms AND a
    terminal negative P in V1 at least 0.1 mV deep and 40 ms long. The long P alone, common in normal-labelled
    PTB-XL records, no longer states it; no P wave (AF): no left atrial abnormality."""
    v1 = {"V1": {"p_terminal_negative_mv": -0.12, "p_terminal_negative_ms": 44}}
    assert "LAO/LAE" in _fired(_m(**{**NORMAL, "p_duration_ms": 130}, leads=v1), kb_docs)
    assert "LAO/LAE" not in _fired(_m(**{**NORMAL, "p_duration_ms": 130}), kb_docs)
    assert "LAO/LAE" not in _fired(_m(**{**NORMAL, "p_duration_ms": 120}, leads=v1), kb_docs)
    shallow = {"V1": {"p_terminal_negative_mv": -0.08, "p_terminal_negative_ms": 44}}
    assert "LAO/LAE" not in _fired(_m(**{**NORMAL, "p_duration_ms": 130}, leads=shallow), kb_docs)
    short = {"V1": {"p_terminal_negative_mv": -0.12, "p_terminal_negative_ms": 30}}
    assert "LAO/LAE" not in _fired(_m(**{**NORMAL, "p_duration_ms": 130}, leads=short), kb_docs)
    assert "LAO/LAE" not in _fired(_m(**{**NORMAL, "p_present": False, "p_duration_ms": 130}, leads=v1), kb_docs)


def test_a_p_duration_condition_may_name_a_lead():
    """`p_duration_ms` is a global value and a lead's own (LeadMeasurements): a criterion on lead II's P duration
    (the lead of AHA 2009 Part V's statement) is a valid condition, and is not evaluated without lead II."""
    from ragecg.criteria.evaluate import evaluate_condition
    from ragecg.knowledge.documents import _condition_problems
    from ragecg.values import Condition
    cond = Condition(measure="p_duration_ms", leads=["II"], op=">", value=120, source="aha2009-part5")
    assert _condition_problems(cond, {"aha2009-part5"}) == []
    assert _condition_problems(Condition(measure="p_duration_ms", op=">", value=120, source="x"), {"x"}) == []
    assert evaluate_condition(cond, _m(leads={"II": {"p_duration_ms": 130}}), None).met
    missing = evaluate_condition(cond, _m(p_duration_ms=140, leads={"I": {"p_duration_ms": 135}}), None)
    assert not missing.met and missing.value is None and missing.note == "not measured"
