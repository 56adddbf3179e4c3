"""The decision layer (ragecg/decision.py): definite vs borderline, statement logic, the overall category,
and AF not called on sinus rhythm with premature complexes (real records)."""
from __future__ import annotations

import ast
import sys

import numpy as np
import pandas as pd
import pytest

from ragecg.compose.decision import categorise, condition_status, decide, fallback_uncertainty
from ragecg.criteria.evaluate import evaluate_criteria
from ragecg.errors import UnusableSignalError
from ragecg.knowledge import load_statement_logic, validate_statement_logic
from ragecg.pipeline import Resources, diagnose, diagnose_ecg
from ragecg.reading import read_record
from ragecg.settings import REPO_ROOT
from ragecg.signal import measure_ecg
from ragecg.values import STANDARD_LEADS, Candidates, CodeCandidate, ConditionResult, Ecg, Measurements

sys.path.insert(0, str(REPO_ROOT / "bench"))
from ludb_uv import read_ludb_uv  # noqa: E402


def _cond(key, value, op, thr, met=True, lead=None):
    return ConditionResult(measure=key, op=op, threshold=thr, value=value, lead=lead, score=0.9 if met else 0.1,
                           met=met, source="x")


def _cand(code, conds, score=0.9, superclass=None):
    return CodeCandidate(code=code, description=code.lower(), superclass=superclass, score=score, fired=score >= 0.5,
                         conditions=conds)


def test_fallback_uncertainties_are_the_cited_tolerances():
    assert fallback_uncertainty("pr_interval_ms", 206) == 10.0
    assert fallback_uncertainty("qt_interval_ms", 400) == 25.0
    assert fallback_uncertainty("r_amplitude_mv[aVL]", 0.3) == 0.025
    assert fallback_uncertainty("r_amplitude_mv[aVL]", 2.0) == pytest.approx(0.1)
    assert fallback_uncertainty("heart_rate_bpm", 110) == pytest.approx(11.0)
    assert fallback_uncertainty("premature_beat_count", 1) == 0.0


def test_a_value_just_past_its_threshold_is_borderline_and_the_record_own_uncertainty_wins():
    m = Measurements(sampling_rate_hz=500, duration_s=10)
    assert condition_status(_cond("pr_interval_ms", 206.0, ">", 200.0), m).status == "borderline"
    assert condition_status(_cond("pr_interval_ms", 230.0, ">", 200.0), m).status == "definite"
    assert condition_status(_cond("pr_interval_ms", 209.0, ">", 200.0), m).status == "borderline"
    m2 = Measurements(sampling_rate_hz=500, duration_s=10, uncertainty={"pr_interval_ms": 40.0})
    assert condition_status(_cond("pr_interval_ms", 230.0, ">", 200.0), m2).status == "borderline"
    d = decide(Candidates(scores={"1AVB": 0.7}, candidates=[_cand("1AVB", [_cond("pr_interval_ms", 206.0, ">", 200.0)])]), m)
    assert d.borderline() == ["1AVB"] and d.definite() == [] and "1AVB" not in d.chosen()


def test_statement_logic_file_is_valid_and_lbbb_subsumes_ivcd():
    logic = load_statement_logic([REPO_ROOT / "knowledge"])
    assert validate_statement_logic(logic) == []
    m = Measurements(sampling_rate_hz=500, duration_s=10)
    cands = [_cand("CLBBB", [_cond("qrs_duration_ms", 160.0, ">=", 120.0)], superclass="CD"),
             _cand("IVCD", [_cond("qrs_duration_ms", 160.0, ">", 110.0)], superclass="CD"),
             _cand("SR", [_cond("p_present", True, "==", True)])]
    d = decide(Candidates(scores={}, candidates=cands), m, logic)
    assert "CLBBB" in d.definite() and "IVCD" not in d.definite()
    assert [(s.code, s.by) for s in d.suppressed] == [("IVCD", "CLBBB")]
    assert d.category.name == "Abnormal ECG" and "CLBBB" in d.category.because


def test_af_excludes_sinus_and_pr_statements():
    logic = load_statement_logic([REPO_ROOT / "knowledge"])
    m = Measurements(sampling_rate_hz=500, duration_s=10)
    cands = [_cand("AFIB", [_cond("p_present", False, "==", False), _cond("rr_irregularity", 0.2, ">=", 0.1)]),
             _cand("1AVB", [_cond("pr_interval_ms", 260.0, ">", 200.0)], superclass="CD"),
             _cand("SR", [_cond("p_present", True, "==", True)])]
    d = decide(Candidates(scores={}, candidates=cands), m, logic)
    assert d.definite() == ["AFIB"]


def test_af_excludes_a_flutter_statement_from_a_flutter_range_atrial_peak():
    """Irregularly irregular RR without a repeating P wave is AF even when the atrial spectrum peaks at 250-350/min
    (coarse f waves): AFLT is not printed beside AFIB (statement_logic.yaml)."""
    logic = load_statement_logic([REPO_ROOT / "knowledge"])
    m = Measurements(sampling_rate_hz=500, duration_s=10)
    cands = [_cand("AFIB", [_cond("p_present", False, "==", False), _cond("rr_irregularity", 0.2, ">=", 0.1)]),
             _cand("AFLT", [_cond("atrial_dominant_rate_bpm", 300.0, ">=", 250.0),
                            _cond("atrial_organization", 0.7, ">=", 0.5)])]
    d = decide(Candidates(scores={}, candidates=cands), m, logic)
    assert d.definite() == ["AFIB"] and ("AFLT", "AFIB") in [(s.code, s.by) for s in d.suppressed]
    alone = decide(Candidates(scores={}, candidates=cands[1:]), m, logic)
    assert alone.definite() == ["AFLT"]


def test_a_flat_t_finding_is_named_once():
    """Flat T waves fire LOWT, NT_, TAB_ and NDT on the same limits (nonspecific-t-changes.md); the report names the
    finding once as a form statement (LOWT) beside the diagnostic one (NDT)."""
    logic = load_statement_logic([REPO_ROOT / "knowledge"])
    m = Measurements(sampling_rate_hz=500, duration_s=10)
    flat = [_cond("t_amplitude_mv", 0.02, "<", 0.1, lead="V5"), _cond("t_amplitude_mv", 0.02, ">", -0.1, lead="V5")]
    cands = [_cand(c, flat, superclass="STTC" if c == "NDT" else None) for c in ("LOWT", "NT_", "TAB_", "NDT")]
    d = decide(Candidates(scores={}, candidates=cands), m, logic)
    assert sorted(d.definite()) == ["LOWT", "NDT"]
    assert sorted((s.code, s.by) for s in d.suppressed) == [("NT_", "LOWT"), ("TAB_", "LOWT")]
    d = decide(Candidates(scores={}, candidates=cands[1:]), m, logic)
    assert sorted(d.definite()) == ["NDT", "NT_"]


def test_categories():
    logic = load_statement_logic([REPO_ROOT / "knowledge"])
    assert categorise(["SR"], [], [], False, logic).name == "Normal ECG"
    assert categorise(["SBRAD"], [], [], False, logic).name == "Otherwise normal ECG"
    assert categorise(["SR"], ["1AVB"], [], False, logic).name == "Borderline ECG"
    assert categorise(["SR", "VCLVH"], [], [], False, logic).name == "Borderline ECG"
    assert categorise(["SR", "CLBBB"], [], [], False, logic).name == "Abnormal ECG"
    assert categorise(["SR"], [], ["qrs_axis_deg -70 (normal >= -30)"], True, logic).name == "Abnormal ECG"


# ------------------------------------------------------------------ real records

def _resources():
    return Resources(use_llm=False, use_retrieval=False)


def test_the_shipped_example_is_a_normal_ecg():
    """examples/example_sinus: PTB-XL 00204, labelled normal ECG in sinus rhythm by the cardiologists."""
    r = diagnose(REPO_ROOT / "examples" / "example_sinus.hea", resources=_resources())
    assert r.diagnosis.category.name == "Normal ECG", r.diagnosis.category
    assert {c.code for c in r.diagnosis.codes} == {"SR", "NORM"}
    assert any("Normal ECG" in s.text for s in r.diagnosis.narrative if s.section == "conclusion")


def af_test_records(data_dir) -> list[int]:
    """Fold-9 (validation) records labelled sinus rhythm or sinus tachycardia together with premature
    complexes or supraventricular arrhythmia (and neither AF nor flutter)."""
    db = pd.read_csv(data_dir / "ptbxl" / "ptbxl_database.csv", usecols=["ecg_id", "scp_codes", "strat_fold"])
    out = []
    for ecg_id, codes, fold in zip(db.ecg_id, db.scp_codes, db.strat_fold):
        c = set(ast.literal_eval(codes))
        if fold == 9 and c & {"STACH", "SR"} and c & {"PAC", "PVC", "SVARR"} and not c & {"AFIB", "AFLT"}:
            out.append(int(ecg_id))
    return out


def test_no_af_on_sinus_rhythm_with_premature_complexes_ptbxl_fold9(data_dir):
    ids = af_test_records(data_dir)
    assert len(ids) >= 100
    res = _resources()
    called, done = [], 0
    for i in ids:
        path = data_dir / "ptbxl" / "records100" / f"{i // 1000 * 1000:05d}" / f"{i:05d}_lr.hea"
        try:
            r = diagnose_ecg(read_record(path), res)
        except UnusableSignalError:
            continue
        done += 1
        stated = {c.code for c in r.diagnosis.codes} | {c.code for c in r.diagnosis.borderline}
        if "AFIB" in stated:
            called.append(i)
    assert done >= 0.95 * len(ids)
    assert called == []


def test_no_af_on_mitdb_100_windows_with_atrial_premature_beats(data_dir):
    """MIT-BIH 100 (sinus rhythm, 33 atrial premature beats, MLII and V5): every 10 s window holding an
    annotated APB is diagnosed on its two leads; none may come out AF."""
    import wfdb

    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "100"))
    ann = wfdb.rdann(str(data_dir / "mitdb" / "100"), "atr")
    fs = float(rec.fs)
    apb = ann.sample[np.asarray(ann.symbol) == "A"] / fs
    assert len(apb) == 33
    res = _resources()
    starts = sorted({int(t // 10) * 10 for t in apb if t + 10 < rec.sig_len / fs})
    called = []
    for start in starts:
        a, b = int(start * fs), int((start + 10) * fs)
        x = np.full((b - a, 12), np.nan, dtype=np.float32)
        x[:, STANDARD_LEADS.index("II")] = rec.p_signal[a:b, 0]
        x[:, STANDARD_LEADS.index("V5")] = rec.p_signal[a:b, 1]
        ecg = Ecg(signals_mv=x, sampling_rate_hz=fs, source_path="100", source_format="wfdb",
                  missing_leads=[ld for ld in STANDARD_LEADS if ld not in ("II", "V5")])
        m = measure_ecg(ecg, ["II", "V5"])
        d = decide(evaluate_criteria(m, res.docs), m, res.logic, res.docs)
        if "AFIB" in d.definite() or "AFIB" in d.borderline():
            called.append(start)
    assert len(starts) >= 20
    assert called == []


def test_af_found_on_most_fold9_af_records_including_those_with_early_narrow_beats(data_dir):
    """Fold-9 (validation) records labelled AFIB: AF is stated (definite) on at least 80 % of them (63.6 % before
    the per-beat P window stopped at the previous T end and before early narrow beats without repeating P waves
    stopped counting as ectopic). Record 5293 (AF whose short intervals were taken for atrial premature beats)
    is one of them."""
    db = pd.read_csv(data_dir / "ptbxl" / "ptbxl_database.csv", usecols=["ecg_id", "scp_codes", "strat_fold"])
    ids = [int(i) for i, c, f in zip(db.ecg_id, db.scp_codes, db.strat_fold) if f == 9 and "AFIB" in ast.literal_eval(c)]
    assert len(ids) >= 140
    res = _resources()
    called = set()
    for i in ids:
        path = data_dir / "ptbxl" / "records100" / f"{i // 1000 * 1000:05d}" / f"{i:05d}_lr.hea"
        m = measure_ecg(read_record(path))
        if "AFIB" in decide(evaluate_criteria(m, res.docs), m, res.logic, res.docs).definite():
            called.add(i)
    assert 5293 in called
    assert len(called) >= 0.8 * len(ids)


# ------------------------------------------------------------------ normal ECG and Q-wave infarction (issue 17)

def _ptbxl(data_dir, ecg_id: int):
    return data_dir / "ptbxl" / "records100" / f"{ecg_id // 1000 * 1000:05d}" / f"{ecg_id:05d}_lr.hea"


def test_a_value_exactly_at_a_strict_threshold_is_not_past_it():
    from ragecg.criteria.evaluate import score_value
    from ragecg.values import Condition
    strict = Condition(measure="p_duration_ms", op=">", value=120, source="x")
    loose = Condition(measure="p_duration_ms", op=">=", value=120, source="x")
    assert score_value(120.0, strict) < 0.5 <= score_value(120.0, loose)
    assert score_value(122.0, strict) > 0.5
    assert score_value(450.0, Condition(measure="qtc_framingham_ms", op="<", value=450, source="x")) < 0.5


def test_q_wave_duration_and_depth_must_hold_in_the_same_leads():
    from ragecg.criteria.evaluate import evaluate_rule
    from ragecg.values import Condition, LeadMeasurements, Rule
    leads = ["II", "III", "aVF"]
    conds = [Condition(measure="q_duration_ms", leads=leads, min_leads=2, op=">=", value=30, source="x"),
             Condition(measure="q_amplitude_mv", leads=leads, min_leads=2, op="<=", value=-0.1, source="x")]
    rule = Rule(code="IMI", conditions=conds, same_leads=True)
    # II: long but shallow Q; III: a Q wave; aVF: deep but short Q. Durations hold in II and III, depths in III and
    # aVF: each condition alone is met in two leads, but only III has a Q wave.
    split = Measurements(sampling_rate_hz=500, duration_s=10, leads={
        "II": LeadMeasurements(q_duration_ms=40, q_amplitude_mv=-0.05),
        "III": LeadMeasurements(q_duration_ms=40, q_amplitude_mv=-0.3),
        "aVF": LeadMeasurements(q_duration_ms=10, q_amplitude_mv=-0.3)})
    assert evaluate_rule(Rule(code="IMI", conditions=conds), split, None)[0] > 0.5
    assert evaluate_rule(rule, split, None)[0] < 0.5
    split.leads["aVF"].q_duration_ms = 36           # now III and aVF both have a Q wave
    score, results = evaluate_rule(rule, split, None)
    assert score > 0.5 and all(r.met and r.lead == "aVF" for r in results)


def test_normal_ptbxl_216_with_p_wave_of_exactly_120_ms_is_a_normal_ecg(data_dir):
    """PTB-XL 216 (fold 9, labelled NORM, sinus rhythm): P duration measures exactly 120 ms. "P > 120 ms"
    (AHA 2009 Part V) is not met by it, so no (borderline) left atrial abnormality and a Normal ECG."""
    r = diagnose_ecg(read_record(_ptbxl(data_dir, 216)), _resources())
    assert r.measurements.p_duration_ms == 120.0
    stated = {c.code for c in r.diagnosis.codes} | {c.code for c in r.diagnosis.borderline}
    assert "LAO/LAE" not in stated
    assert r.diagnosis.category.name == "Normal ECG" and "NORM" in {c.code for c in r.diagnosis.codes}


def test_normal_ptbxl_151_has_no_q_wave_statement_from_two_different_leads(data_dir):
    """PTB-XL 151 (fold 9, labelled NORM): Q waves of 30 ms in I and II are shallow (< 0.1 mV) and the deep ones
    in V5-V6 are short (< 30 ms); no lead has a Q wave, so QWAVE is not stated, not even as borderline."""
    r = diagnose_ecg(read_record(_ptbxl(data_dir, 151)), _resources())
    stated = {c.code for c in r.diagnosis.codes} | {c.code for c in r.diagnosis.borderline}
    assert not stated & {"QWAVE", "LMI", "IMI", "ILMI", "ALMI"}


def test_normal_ptbxl_151_with_a_long_p_wave_alone_is_a_normal_ecg(data_dir):
    """PTB-XL 151 (fold 9, labelled NORM): P duration 132 ms, but the terminal negative P in V1 is shallow
    (0.04 mV). Left atrial abnormality needs both (Seattle criteria, left-atrial-abnormality.md), so the record
    is a Normal ECG; with the P duration alone it was stated as LAO/LAE and the ECG called abnormal."""
    r = diagnose_ecg(read_record(_ptbxl(data_dir, 151)), _resources())
    assert r.measurements.p_duration_ms > 120 + r.measurements.uncertainty["p_duration_ms"]
    assert r.measurements.leads["V1"].p_terminal_negative_mv > -0.1
    stated = {c.code for c in r.diagnosis.codes} | {c.code for c in r.diagnosis.borderline}
    assert "LAO/LAE" not in stated
    assert r.diagnosis.category.name == "Normal ECG" and "NORM" in {c.code for c in r.diagnosis.codes}


def test_inferior_q_waves_are_read_in_right_bundle_branch_block_ptbxl_8348(data_dir):
    """PTB-XL 8348 (fold 9, labelled CRBBB, IMI, LAFB): complete RBBB (QRS >= 120 ms) with inferior Q waves. The
    UDMI excludes Q-wave criteria only in LVH and LBBB; RBBB leaves the Q waves readable, so IMI is stated."""
    r = diagnose_ecg(read_record(_ptbxl(data_dir, 8348)), _resources())
    codes = {c.code for c in r.diagnosis.codes}
    assert {"CRBBB", "IMI"} <= codes
    assert r.measurements.qrs_duration_ms >= 120


def test_sinus_tachycardia_alone_is_an_otherwise_normal_ecg_ptbxl_8172(data_dir):
    """PTB-XL 8172 (fold 9, labelled NORM and STACH), rate about 112 bpm: sinus tachycardia is a minor statement
    ("sinus tachycardia, otherwise normal ECG"); the NORM rule's rate limit does not count it a second time."""
    r = diagnose_ecg(read_record(_ptbxl(data_dir, 8172)), _resources())
    assert r.measurements.heart_rate_bpm > 110
    assert "STACH" in {c.code for c in r.diagnosis.codes}
    assert r.diagnosis.category.name == "Otherwise normal ECG" and "NORM" in {c.code for c in r.diagnosis.codes}


# ------------------------------------------------------------------ atrial flutter (issue 17)

def test_flutter_not_stated_on_sinus_rhythm_whose_atrial_rate_is_a_harmonic_of_the_heart_rate(data_dir):
    """PTB-XL 17939 (fold 9, labelled SR and 1AVB): a P wave before every QRS at a fixed PR and a dominant atrial
    frequency of 300/min at a heart rate of 95 bpm (ratio 3.2: the third harmonic of the ventricular cycle). The
    first flutter rule stated AFLT on it; a consistent P wave excludes flutter unless the ratio is 2:1.
    PTB-XL 20 (fold 9, labelled AFLT): 2:1 flutter, the conducted flutter wave passes for a P wave at a fixed PR,
    atrial rate twice the heart rate: AFLT stays stated and no sinus rhythm."""
    res = _resources()
    sinus = measure_ecg(read_record(_ptbxl(data_dir, 17939)))
    assert sinus.p_present is True and sinus.atrial_ventricular_rate_ratio >= 3
    assert 250 <= sinus.atrial_dominant_rate_bpm <= 350
    d = decide(evaluate_criteria(sinus, res.docs), sinus, res.logic, res.docs)
    assert "AFLT" not in d.definite() and "SR" in d.definite()
    flutter = measure_ecg(read_record(_ptbxl(data_dir, 20)))
    assert flutter.p_present is True and flutter.atrial_ventricular_rate_ratio < 2.5
    d = decide(evaluate_criteria(flutter, res.docs), flutter, res.logic, res.docs)
    assert "AFLT" in d.definite() and "SR" not in d.definite()


def test_flutter_on_ludb_flutter_records_and_not_on_ludb_17_sinus(data_dir):
    """LUDB 35 (typical flutter, 2:1 and 4:1 conduction, P-like wave at a fixed PR) and 52 (typical flutter, 4:1,
    no P wave) are stated AFLT; LUDB 17 (sinus rhythm, atrial spectral peak at 3.5 x the heart rate) is not."""
    res = _resources()
    for n, want in ((35, True), (52, True), (17, False)):
        m = measure_ecg(read_ludb_uv(data_dir, n))      # amplitudes as microvolts (LUDB header gains)
        assert (evaluate_criteria(m, res.docs).scores.get("AFLT", 0.0) >= 0.5) == want, n


def test_noisy_record_with_disputed_beats_is_read_for_its_morphology_ptbxl_17787(data_dir):
    """PTB-XL 17787 (fold 9, labelled IMI and ASMI in sinus rhythm; its readers noted noise in V4-V5): the detected
    beats agree with the leads' own at bSQI 0.85, short of the 0.90 of a full reading. It is read, not refused: the
    inferior infarction is stated from the median beat, while the rhythm, rate and premature-beat statements are
    withheld (named in the quality), NORM is not evaluated and the heart rate says how it was counted."""
    r = diagnose_ecg(read_record(_ptbxl(data_dir, 17787)), _resources())
    q = r.quality
    assert q.verdict == "limited" and q.beats_disputed and 0.8 <= q.beat_agreement < 0.9
    assert q.reasons[0].startswith("beats partly confirmed")
    stated = {c.code for c in r.diagnosis.codes}
    assert "IMI" in stated
    assert not stated & {"SR", "SARRH", "SBRAD", "STACH", "AFIB", "PAC", "PVC", "NORM"}
    assert {"SR"} <= set(q.withheld_codes) and "NORM" in q.not_evaluated_codes
    assert "beats disputed" in r.measurements.methods["heart_rate_bpm"]
    assert r.measurements.confidence["heart_rate_bpm"] <= 0.5 and "heart_rate_bpm" in r.measurements.uncertain
    rhythm = [x.text for x in r.diagnosis.narrative if x.section == "rhythm"]
    assert rhythm and "not interpreted" in rhythm[0]
