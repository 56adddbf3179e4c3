"""Codes the record does not support: after the criteria, the codes are re-scored without the rules that
read leads the record lacks (not evaluated, never scored as absent), limb leads or the frontal axes (LA/RA
reversal), any lead's polarity (inverted polarity), amplitudes or axes (Einthoven violation), or the
morphology pacing changes, or the sequence of beats when the beats are disputed (rhythm, rate, premature
beats; NORM not evaluated); the codes so withheld are named in the `Quality`, PACE is added when pacing
is found. See docs/reliability.md."""
from __future__ import annotations

from ragecg.values import (FIRE_THRESHOLD, LIMB_LEADS, STANDARD_LEADS, CodeCandidate, ConditionResult, Measurements,
                           PacingFinding, Quality, scp_codes)

from .evaluate import evaluate_criteria


# ------------------------------------------------------------------ codes an electrode finding makes unreliable
# Global measures computed from limb leads: the frontal-plane axes (from I and aVF), the Cornell voltage
# (R in aVL) and the limb-lead QRS maximum (low voltage).
LIMB_LEAD_MEASURES = ("qrs_axis_deg", "p_axis_deg", "t_axis_deg", "cornell_voltage_mv", "limb_lead_qrs_max_mv")
# With every lead inverted, every per-lead amplitude, and so every lead's polarity, is unreliable as well.
POLARITY_MEASURES = LIMB_LEAD_MEASURES + ("sokolow_lyon_mv",)
PACE_SOURCE = ("IEC 60601-2-27:2011 201.12.1.101.13 (pacemaker pulses 0.1-2 ms); Goldberger's Clinical "
               "Electrocardiography 9th ed. 2018 (a stimulus before each paced complex)")
WITHHELD_BECAUSE = {"limb_lead_reversal": "limb-lead reversal suspected: their criteria read limb leads or the "
                                          "frontal axis",
                    "inverted_polarity": "inverted polarity suspected: their criteria read lead polarities",
                    "limb_lead_inconsistency": "limb leads inconsistent (Einthoven): their criteria read amplitudes "
                                               "or axes",
                    "ventricular_pacing": "ventricular pacing: QRS and ST-T morphology is that of the paced beats",
                    "atrial_pacing": "atrial pacing: P-wave morphology and sinus rhythm statements do not apply",
                    "beats_disputed": "beats not confirmed by most leads: rhythm, rate and beat-by-beat statements "
                                      "are not interpreted"}
# Statements read from the sequence of beats (rate, regularity, premature beats, AV conduction beat by beat),
# which beats added or hidden by artefact change: every rhythm statement but PACE (the pacing stimuli confirm
# their beats) and these; the median beat of the dominant beats still gives the intervals and the morphology.
BEAT_SEQUENCE_FORM_CODES = ("PAC", "PVC", "PRC(S)", "2AVB", "3AVB")


def reads_beat_sequence(code: str, table: dict[str, dict]) -> bool:
    """Whether `code` is read from the sequence of beats (withheld when the beats are disputed)."""
    kinds = table.get(code, {}).get("kinds") or []
    return code in BEAT_SEQUENCE_FORM_CODES or ("rhythm" in kinds and code != "PACE")
# Morphology statements that ventricular pacing invalidates (the paced QRS is wide with secondary ST-T
# changes: Goldberger 2018, ch. 22; the usual conduction, hypertrophy, infarction and ST-T criteria do
# not apply, AHA/ACCF/HRS 2009 Part III on paced rhythms): the SCP superclasses of those statements.
PACED_QRS_SUPERCLASSES = ("CD", "HYP", "MI", "STTC")
# Atrial pacing: the P wave is the paced one (no P-wave morphology statement, no sinus rhythm).
ATRIAL_PACED_CODES = ("SR", "SARRH", "SBRAD", "STACH", "LAO/LAE", "RAO/RAE")
# Global measures and the leads they read: (all of these, at least one of these).
MEASURE_LEADS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "qrs_axis_deg": (("I", "aVF"), ()), "p_axis_deg": (("I", "aVF"), ()), "t_axis_deg": (("I", "aVF"), ()),
    "sokolow_lyon_mv": (("V1",), ("V5", "V6")), "cornell_voltage_mv": (("aVL", "V3"), ()),
    "limb_lead_qrs_max_mv": (LIMB_LEADS, ()), "precordial_qrs_max_mv": (("V1", "V2", "V3", "V4", "V5", "V6"), ()),
}


def rule_is_unreliable(rule, finding: str) -> bool:
    """True when `rule` reads a lead or a measure that `finding` makes unreliable: "limb_lead_reversal"
    (limb leads, frontal axes), "inverted_polarity" (any lead's polarity), "limb_lead_inconsistency" (any
    amplitude or axis)."""
    for c in rule.conditions:
        if finding == "inverted_polarity":
            if c.leads or c.measure in POLARITY_MEASURES:
                return True
        elif finding == "limb_lead_inconsistency":
            if c.measure.endswith(("_mv", "_deg")):
                return True
        elif finding == "limb_lead_reversal":
            if c.measure in LIMB_LEAD_MEASURES or any(ld in LIMB_LEADS for ld in (c.leads or ())):
                return True
    return False


def condition_is_evaluable(c, usable: set[str]) -> bool:
    """False when a condition reads leads that are not there: a lead list with fewer usable leads than it
    needs (`min_leads`), or a global measure computed from a lead that is missing or unusable
    (MEASURE_LEADS). Such a condition is not evaluated (the finding is neither present nor absent)."""
    if c.leads:
        return sum(ld in usable for ld in c.leads) >= max(c.min_leads, 1)
    need_all, need_any = MEASURE_LEADS.get(c.measure, ((), ()))
    return all(ld in usable for ld in need_all) and (not need_any or any(ld in usable for ld in need_any))


def rule_on_available_leads(rule, usable: set[str]):
    """`rule` restricted to what the leads there can evaluate, or None when it cannot be evaluated
    (a `match: all` rule with any unevaluable condition, a `match: any` rule with none left)."""
    ok = [c for c in rule.conditions if condition_is_evaluable(c, usable)]
    if len(ok) == len(rule.conditions):
        return rule
    if rule.match == "all" or not ok:
        return None
    return rule.model_copy(update={"conditions": ok})


def withhold_unreliable_codes(candidates, m: Measurements, quality: Quality, docs: list, sex: str | None):
    """(candidates, quality) re-scored for what the record allows:

    * codes whose every rule reads a missing or unusable lead are not evaluated (listed in
      `quality.not_evaluated_codes`, never scored as absent; NORM too, when any code is not evaluated);
    * rules an electrode finding makes unreliable (lead reversal, polarity, Einthoven violation) are
      dropped; pacing withholds the morphology codes it invalidates; codes that fired before and no longer
      do are listed in `quality.withheld_codes` and named in its reasons;
    * after a muscle filter, fired codes read from amplitudes are listed in `quality.uncertain_codes`.
    """
    findings = list(quality.electrode_findings)
    pacing = quality.pacing
    if pacing is not None and pacing.kind in ("ventricular", "dual"):
        findings.append("ventricular_pacing")
    if pacing is not None and pacing.kind in ("atrial", "dual"):
        findings.append("atrial_pacing")
    if quality.beats_disputed:
        findings.append("beats_disputed")
    usable = set(quality.usable_leads())
    reduced = len(usable) < len(STANDARD_LEADS)
    table = scp_codes()
    update: dict = {}
    reasons = list(quality.reasons)
    if findings or reduced:
        kept_docs, had_rules, kept_rules = [], set(), set()
        lead_findings = [f for f in findings if f in ("limb_lead_reversal", "inverted_polarity",
                                                      "limb_lead_inconsistency")]
        for d in docs:
            rules = []
            for r in d.criteria:
                had_rules.add(r.code)
                if any(rule_is_unreliable(r, f) for f in lead_findings):
                    continue
                if "ventricular_pacing" in findings and table.get(r.code, {}).get("superclass") in PACED_QRS_SUPERCLASSES:
                    continue
                if "atrial_pacing" in findings and r.code in ATRIAL_PACED_CODES:
                    continue
                if "beats_disputed" in findings and (r.code == "NORM" or reads_beat_sequence(r.code, table)):
                    continue
                if reduced:
                    r = rule_on_available_leads(r, usable)
                    if r is None:
                        continue
                    kept_rules.add(r.code)
                rules.append(r)
            kept_docs.append(d.model_copy(update={"criteria": rules}))
        not_evaluated: list[str] = []
        if reduced:
            # evaluable only without the leads that are not there: every rule was dropped for lack of leads
            dropped = had_rules - kept_rules
            plain = {r.code for d in docs for r in d.criteria
                     if not any(rule_is_unreliable(r, f) for f in lead_findings)}
            not_evaluated = sorted(c for c in dropped if c in plain and c != "NORM")
            if not_evaluated and "NORM" in had_rules:
                not_evaluated.append("NORM")   # a normal ECG needs every abnormality to have been evaluated
                kept_docs = [d.model_copy(update={"criteria": [r for r in d.criteria if r.code != "NORM"]})
                             for d in kept_docs]
        if "beats_disputed" in findings and "NORM" in had_rules and "NORM" not in not_evaluated:
            not_evaluated.append("NORM")      # a normal ECG needs its rhythm and rate to have been read
        rescored = evaluate_criteria(m, kept_docs, sex=sex)
        withheld = sorted(c.code for c in candidates.fired()
                          if rescored.scores.get(c.code, 0.0) < FIRE_THRESHOLD and c.code not in not_evaluated)
        candidates = rescored
        named = [f for f in findings if f in WITHHELD_BECAUSE]
        if named:
            why = "; ".join(WITHHELD_BECAUSE[f] for f in named)
            reasons.append(f"codes withheld ({why}): {', '.join(withheld)}" if withheld
                           else f"no code withheld, none fired on such criteria ({why})")
        missing = [ld for ld in STANDARD_LEADS if ld not in usable]
        if not_evaluated and missing:
            reasons.append(f"not evaluated (their criteria need {', '.join(missing)}): {', '.join(not_evaluated)}")
        elif not_evaluated:
            reasons.append(f"not evaluated (the rhythm and rate were not read): {', '.join(not_evaluated)}")
        update.update(withheld_codes=withheld, not_evaluated_codes=not_evaluated)
    if pacing is not None and pacing.kind in ("atrial", "ventricular", "dual"):
        candidates = with_pace_statement(candidates, pacing)
    if quality.muscle_filter_hz:
        uncertain = sorted({c.code for c in candidates.fired()
                            if any(r.measure.endswith("_mv") for r in c.conditions)})
        if uncertain:
            reasons.append(f"less certain after the {quality.muscle_filter_hz:g} Hz muscle filter (read from "
                           f"amplitudes the filter lowers): {', '.join(uncertain)}")
        update["uncertain_codes"] = uncertain
    update["reasons"] = reasons
    return candidates, quality.model_copy(update=update)


def with_pace_statement(candidates, pacing: PacingFinding):
    """`candidates` with PACE (artificial pacemaker) fired from the detected pacing stimuli."""
    row = scp_codes().get("PACE", {})
    cond = ConditionResult(measure="pacing_spikes", op=">=", threshold=1.0, value=float(pacing.spike_count),
                           score=1.0, met=True, source=PACE_SOURCE,
                           note=f"{pacing.kind} pacing: {pacing.paced_beats} of {pacing.beats} beats preceded by a stimulus")
    pace = CodeCandidate(code="PACE", description=row.get("description", "artificial pacemaker"),
                         superclass=row.get("superclass"), score=1.0, fired=True, doc_ids=["pacemaker-rhythm"],
                         conditions=[cond])
    others = [c for c in candidates.candidates if c.code != "PACE"]
    return candidates.model_copy(update={"scores": {**candidates.scores, "PACE": 1.0},
                                         "candidates": [pace, *others]})
