"""Checks that need measured values (after `measure`): a probable LA/RA electrode reversal or all-lead
polarity inversion, added to the `Quality` (verdict at most "limited"); the intervals ventricular pacing
changes, flagged on the `Measurements`. See docs/reliability.md."""
from __future__ import annotations

from ragecg.values import BEATS_DISPUTED, Measurements, Quality


# ------------------------------------------------------------------ checks on the measurements
def lead_reversal_findings(m: Measurements) -> list[str]:
    """A probable left-arm/right-arm electrode reversal, or every lead inverted, from median-beat polarities.

    Rule (Batchvarov, Malik & Camm, Europace 2007;9:1081-1090; Harrigan et al., J Emerg Med
    2012;43:1038-1044): in a rhythm with P waves, a negative P wave AND a negative net QRS in lead I
    with a positive net QRS in aVR (normally negative) indicate LA/RA reversal; dextrocardia gives the
    same limb-lead pattern and is told apart by the precordial leads. When V5 and V6 are also negative
    (normally upright: R-wave progression), the whole recording is probably inverted (polarity) or the
    heart is on the right. Without P waves the rule is not applied (extreme axis deviation alone is not
    specific). On LUDB 1-100 with the arm electrodes swapped in software it flags 60 of 100 records
    (83 keep a detectable P wave) and 1 of the 100 unmodified records (a paced one).
    """
    def get(key: str, lead: str):
        lm = m.leads.get(lead)
        return None if lm is None else getattr(lm, key)

    if not m.p_present:
        return []
    p_i = get("p_amplitude_mv", "I")
    q_i, q_avr = get("qrs_net_mv", "I"), get("qrs_net_mv", "aVR")
    if None in (p_i, q_i, q_avr) or not (p_i < 0 and q_i < 0 < q_avr):
        return []
    v56 = [get("qrs_net_mv", ld) for ld in ("V5", "V6")]
    if all(v is not None and v < 0 for v in v56):
        return ["possible inverted polarity of all leads (or dextrocardia): P and QRS negative in I, QRS positive "
                "in aVR and negative in V5-V6 (Batchvarov et al. 2007) - check the recording; axes and "
                "polarity-based findings are unreliable"]
    return ["possible limb lead reversal (LA/RA): P and QRS negative in I, QRS positive in aVR, V5-V6 upright "
            "(Batchvarov et al. 2007) - check electrode placement; axes and limb-lead findings are unreliable"]


def with_measurement_checks(quality: Quality, m: Measurements) -> Quality:
    """`quality` with the findings that need measurements (lead reversal) added to its reasons."""
    found = lead_reversal_findings(m)
    if not found:
        return quality
    kind = "inverted_polarity" if found[0].startswith("possible inverted polarity") else "limb_lead_reversal"
    verdict = "limited" if quality.verdict == "usable" else quality.verdict
    return quality.model_copy(update={"reasons": [*quality.reasons, *found], "verdict": verdict,
                                      "electrode_findings": [*quality.electrode_findings, kind]})


def with_pacing_flags(m: Measurements, quality: Quality) -> Measurements:
    """`m` with the intervals ventricular pacing changes flagged: the PR interval is the device's AV delay
    (not reported, the reason given), QRS and QT are those of the paced complexes, measured after the
    stimulus was blanked (their method says so, their confidence is at most 0.5)."""
    p = quality.pacing
    if p is None or p.kind not in ("ventricular", "dual"):
        return m
    m = m.model_copy(deep=True)
    m.pr_interval_ms = None
    m.not_measurable["pr_interval_ms"] = "ventricular pacing: the AV interval is set by the pacemaker"
    for key in ("qrs_duration_ms", "qt_interval_ms"):
        if m.get(key) is not None:
            m.methods[key] = (m.methods.get(key, "") + f"; {p.paced_beats} of {p.beats} beats paced: measured on the "
                              "paced complex after the stimulus was blanked").lstrip("; ")
            m.confidence[key] = min(m.confidence.get(key, 1.0), 0.5)
    return m


def with_beat_flags(m: Measurements, quality: Quality) -> Measurements:
    """`m` with the values read from the sequence of beats flagged when the beats are disputed
    (`quality.beats_disputed`: artefact adds or hides beats): the heart rate and what is corrected by it
    are from the detected beats, their method says so and their confidence is at most 0.5."""
    if not quality.beats_disputed:
        return m
    m = m.model_copy(deep=True)
    note = (f"{BEATS_DISPUTED} (bSQI {quality.beat_agreement:.2f}): from the detected beats, which artefact "
            "adds or hides")
    for key in ("heart_rate_bpm", "qtc_bazett_ms", "qtc_fridericia_ms", "qtc_framingham_ms", "qtc_hodges_ms"):
        if m.get(key) is not None:
            m.methods[key] = (m.methods.get(key, "") + "; " + note).lstrip("; ")
            m.confidence[key] = min(m.confidence.get(key, 1.0), 0.5)
            m.uncertain[key] = note
    return m
