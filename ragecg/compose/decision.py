"""Stage 5 — the decision layer: which statements a report states, definite or borderline, which the
statement logic removes, and the overall category (Normal / Otherwise normal / Borderline / Abnormal ECG).

* Definite vs borderline. A statement whose criteria are met (criteria score >= 0.5) is *definite* when
  every deciding value is past its threshold by at least the value's uncertainty, *borderline* when
  one of them is past it by less. The uncertainty of a key is `Measurements.uncertainty[key]`
  when the measurement stage gives one (e.g. its beat-to-beat spread in this record, never below one
  source sample period / sqrt(12)), otherwise the measurement tolerance of the standards
  (`fallback_uncertainty`). Durations do not move in 10 ms steps at 100 Hz: they are measured on the
  internal 500 Hz grid, on a median beat of beats sampled at different phases of the 100 Hz grid (LUDB
  1-100: the PR changes by 0.5 ms RMS with the phase, and PR(100 Hz) - PR(500 Hz) lies within the
  100 Hz uncertainty in 86 % of the records; bench/ludb_pr.py). Borderline statements are printed
  as such ("borderline first degree AV block") and are not chosen codes.
* Statement logic (knowledge/statement_logic.yaml, cited): a definite statement removes the statements
  it subsumes or excludes (complete LBBB subsumes IVCD and secondary ST-T; AF excludes sinus rhythm
  and PR/P-wave statements; a paced rhythm suppresses morphology statements).
* Category: Abnormal ECG when a definite statement other than the normal and minor ones
  (statement_logic.yaml) is stated, or a normal limit (the NORM rule: rate, PR, QRS, QTc, axis) is
  failed by more than its uncertainty; Borderline ECG when only borderline statements (or voltage alone,
  or limits that could not be measured) stand against normality — a value outside a normal limit by no
  more than its uncertainty is compatible with normal; Otherwise normal ECG when only
  minor statements (sinus bradycardia/tachycardia, isolated premature complexes) are stated (a stated
  sinus bradycardia/tachycardia is not counted a second time by the rate limits); Normal ECG
  when rhythm, rate, intervals, axis, voltages and repolarisation are all within normal limits.
  NORM is a chosen code exactly when the category is Normal or Otherwise normal ECG.
"""
from __future__ import annotations

import math
from typing import Literal

from ragecg.values import (FIRE_THRESHOLD, Candidates, Category, CodeCandidate, ConditionResult, ConditionStatus,
                           Decisions, Measurements, Statement, StatementLogic, Suppressed, scp_codes)

# Fallback uncertainties (a key's own unit), used when Measurements.uncertainty has none for the key.
# Global durations: IEC 60601-2-25:2011 201.12.4.104, the limits on the mean difference from the
# reference (P, PR, QRS +/-10 ms; QT +/-25 ms; QTc takes the QT limit). Wave durations of one lead and
# the R-peak time take the QRS limit (10 ms). Amplitudes: IEC 60601-2-25:2011 201.12.4.105, +/-25 uV for
# amplitudes up to 500 uV and +/-5 % above. Heart rate: IEC 60601-2-27:2011 201.12.1.101.2, +/-10 % or
# +/-5 bpm, the greater. Axes: no standard limit; the 15 degree scale of the criteria (criteria.UNIT_SCALES).
# Counts, booleans and ratios of this record (premature beats, P present, RR irregularity) are exact.
DURATION_TOLERANCE_MS = {"p_duration_ms": 10.0, "pr_interval_ms": 10.0, "qrs_duration_ms": 10.0,
                         "qt_interval_ms": 25.0, "qtc_bazett_ms": 25.0, "qtc_fridericia_ms": 25.0,
                         "qtc_framingham_ms": 25.0, "qtc_hodges_ms": 25.0}
OTHER_DURATION_TOLERANCE_MS = 10.0
AMPLITUDE_TOLERANCE_MV = 0.025
AMPLITUDE_TOLERANCE_FRACTION = 0.05
HEART_RATE_TOLERANCE_BPM = 5.0
HEART_RATE_TOLERANCE_FRACTION = 0.10
AXIS_TOLERANCE_DEG = 15.0
EXACT_PREFIXES = ("rr_", "nn_", "beat_count", "premature", "pvc", "pac", "bigeminy", "trigeminy", "pause",
                  "p_waves_per_qrs", "atrial_organization", "qrs_notch_count")

Status = Literal["definite", "borderline"]


def fallback_uncertainty(key: str, value: float) -> float:
    """The cited measurement tolerance of a key (see the constants above)."""
    name = key.split("[", 1)[0]
    if name.startswith(EXACT_PREFIXES):
        return 0.0
    if name in DURATION_TOLERANCE_MS:
        return DURATION_TOLERANCE_MS[name]
    if name.endswith("_ms"):
        return OTHER_DURATION_TOLERANCE_MS
    if name.endswith("_mv"):
        return max(AMPLITUDE_TOLERANCE_MV, AMPLITUDE_TOLERANCE_FRACTION * abs(value))
    if name == "heart_rate_bpm":
        return max(HEART_RATE_TOLERANCE_BPM, HEART_RATE_TOLERANCE_FRACTION * abs(value))
    if name.endswith("_deg"):
        return AXIS_TOLERANCE_DEG
    return 0.0


def uncertainty_of(key: str, value: float, m: Measurements | None) -> float:
    own = None if m is None else m.uncertainty.get(key)
    if own is not None and math.isfinite(own) and own >= 0:
        return float(own)
    return fallback_uncertainty(key, value)




def condition_status(r: ConditionResult, m: Measurements | None) -> ConditionStatus:
    key = r.evidence_key
    base = dict(key=key, value=r.value, threshold=r.threshold, op=r.op)
    if r.value is None or not r.met:
        return ConditionStatus(**base, margin=None, uncertainty=0.0, status="not met")
    if isinstance(r.value, bool) or isinstance(r.threshold, bool) or r.op not in (">", ">=", "<", "<="):
        return ConditionStatus(**base, margin=None, uncertainty=0.0, status="definite")
    v, t = float(r.value), float(r.threshold)
    margin = v - t if r.op in (">", ">=") else t - v
    u = uncertainty_of(key, v, m)
    return ConditionStatus(**base, margin=round(margin, 4), uncertainty=round(u, 4),
                           status="definite" if margin >= u and (margin > 0 or u == 0) else "borderline")


def statement_status(c: CodeCandidate, m: Measurements | None, match: str = "all") -> Status | None:
    """Definite / borderline for a candidate whose criteria are met (None: not met). The deciding rule's
    conditions are `c.conditions`; for a rule that needs all of them the weakest decides, for `any` the
    strongest."""
    if c.score < FIRE_THRESHOLD:
        return None
    states = [condition_status(r, m).status for r in c.conditions]
    met = [s for s in states if s != "not met"]
    if not met:
        return "definite" if not states else None
    if match == "any":
        return "definite" if "definite" in met else "borderline"
    if len(met) < len(states):    # an "all" rule with a failed condition cannot have fired; be safe
        return None
    return "borderline" if "borderline" in met else "definite"










def _rule_match(code: str, docs) -> str:
    for d in docs or ():
        for r in d.criteria:
            if r.code == code:
                return r.match
    return "all"


def apply_logic(statements: dict[str, Statement], logic: StatementLogic | None) -> list[Suppressed]:
    """Remove (in place) the statements that a definite statement subsumes or excludes, rule by rule."""
    out: list[Suppressed] = []
    if logic is None:
        return out
    for rule in logic.rules:
        s = statements.get(rule.by)
        if s is None or s.status != "definite":
            continue
        for code in rule.suppresses:
            if code in statements:
                del statements[code]
                out.append(Suppressed(code=code, by=rule.by, relation=rule.relation, why=rule.why, source=rule.source))
    return out


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return f"{float(v):.3g}" if isinstance(v, float) and abs(v) < 10 else f"{v:g}" if isinstance(v, float) else str(v)


def normal_limits(candidates: Candidates, m: Measurements | None,
                  rate_stated: bool = False) -> tuple[list[str], bool]:
    """The NORM rule's limits (rate, PR, QRS, QTc, axis, P present) that stand against a normal ECG:
    (findings, any failed beyond its uncertainty). A value outside a limit by no more than its uncertainty is
    compatible with normal and is not a finding; a limit whose value was not measured is one (normality
    cannot be shown). A median beat without a P wave does not count when a repeating P wave precedes most
    beats (`p_wave_beat_fraction` >= 0.5, rhythm.py). With `rate_stated` (sinus bradycardia or tachycardia is
    stated) the rate limits are not findings: the rate statement says it, and it is a minor statement."""
    norm = next((c for c in candidates.candidates if c.code == "NORM"), None)
    if norm is None:
        return ["normal limits not evaluated"], False
    findings, beyond = [], False
    pbf = None if m is None else m.p_wave_beat_fraction
    for r in norm.conditions:
        if r.met:
            continue
        key = r.evidence_key
        if rate_stated and key == "heart_rate_bpm":
            continue
        if r.value is None:
            findings.append(f"{key} not measured")
            continue
        if isinstance(r.value, bool) or isinstance(r.threshold, bool):
            if key == "p_present" and pbf is not None and pbf >= 0.5:
                continue
            findings.append(f"{key} {_fmt(r.value)} (normal {r.op} {_fmt(r.threshold)})")
            continue          # no P wave found: rhythm not shown to be sinus (borderline, not abnormal)
        v, t = float(r.value), float(r.threshold)
        miss = t - v if r.op in (">", ">=") else v - t
        if miss <= uncertainty_of(key, v, m):
            continue
        findings.append(f"{key} {_fmt(r.value)} (normal {r.op} {_fmt(r.threshold)})")
        beyond = True
    return list(dict.fromkeys(findings)), beyond


def categorise(definite: list[str], borderline: list[str], limits: list[str], limits_beyond: bool,
               logic: StatementLogic | None) -> Category:
    normal = set(logic.normal_statements) if logic else {"SR", "SARRH", "NORM"}
    minor = set(logic.minor_statements) if logic else set()
    weak_kind = set(logic.borderline_statements) if logic else set()
    abnormal = [c for c in definite if c not in normal and c not in minor and c not in weak_kind]
    if abnormal:
        return Category(name="Abnormal ECG", because=abnormal + (limits if limits_beyond else []))
    if limits_beyond:
        return Category(name="Abnormal ECG", because=limits)
    weak = [c for c in definite if c in weak_kind]
    weak += [f"borderline {c}" for c in borderline if c not in normal and c not in minor]
    if weak or limits:
        return Category(name="Borderline ECG", because=weak + limits)
    minor_stated = [c for c in definite if c in minor]
    if minor_stated:
        return Category(name="Otherwise normal ECG", because=minor_stated)
    return Category(name="Normal ECG", because=[c for c in definite if c in normal])


# The sinus rate statements (minor: "sinus tachycardia, otherwise normal ECG"): when one is stated, the rate limits of
# the NORM rule are not counted again against normality (statement_logic.yaml minor_statements, mason2007).
SINUS_RATE_STATEMENTS = ("SBRAD", "STACH")

# Normal limits are adult limits. Children's rate, axis, intervals and voltages differ with age (Rijnbeek PR,
# Witsenburg M, Schrama E, Hess J, Kors JA. New normal limits for the paediatric electrocardiogram. Eur Heart J
# 2001;22:702-711, ages 0-16 years), so a child's ECG is not called normal against them.
ADULT_AGE_YEARS = 16.0


def decide(candidates: Candidates, m: Measurements | None = None, logic: StatementLogic | None = None,
           docs=None, paced: bool | None = None, age_years: float | None = None) -> Decisions:
    """The decisions of one record from its criteria candidates (see the module docstring)."""
    table = scp_codes()
    statements: dict[str, Statement] = {}
    for c in candidates.candidates:
        if c.code == "NORM":
            continue
        status = statement_status(c, m, _rule_match(c.code, docs))
        if status is None:
            continue
        if logic is not None and c.code in logic.exact_statements:
            status = "definite"
        statements[c.code] = Statement(code=c.code, description=c.description, superclass=c.superclass,
                                       status=status, conditions=[condition_status(r, m) for r in c.conditions])
    if paced and "PACE" not in statements:        # a pacing flag from the input stage, when it gives one
        row = table.get("PACE", {})
        statements["PACE"] = Statement(code="PACE", description=row.get("description", "PACE"), status="definite")
    suppressed = apply_logic(statements, logic)
    rate_stated = any(statements.get(c) is not None and statements[c].status == "definite" for c in SINUS_RATE_STATEMENTS)
    limits, beyond = normal_limits(candidates, m, rate_stated)
    if age_years is not None and age_years < ADULT_AGE_YEARS:
        limits.append(f"age under {ADULT_AGE_YEARS:g} years: adult normal limits do not apply")
    kept = list(statements.values())
    kept.sort(key=lambda s: (0 if "rhythm" in (table.get(s.code, {}).get("kinds") or []) else 1,
                             0 if s.status == "definite" else 1, s.code))
    definite = [s.code for s in kept if s.status == "definite"]
    borderline = [s.code for s in kept if s.status == "borderline"]
    if "PACE" in definite:        # a paced rhythm is abnormal whatever the limits say
        limits, beyond = [], False
    return Decisions(statements=kept, suppressed=suppressed, normal_limits=limits, normal_limits_definite=beyond,
                     category=categorise(definite, borderline, limits, beyond, logic))


def without(decisions: Decisions, removed: set[str], logic: StatementLogic | None) -> Decisions:
    """The decisions with statements removed (by the LLM), the category recomputed."""
    kept = [s for s in decisions.statements if s.code not in removed]
    definite = [s.code for s in kept if s.status == "definite"]
    borderline = [s.code for s in kept if s.status == "borderline"]
    return decisions.model_copy(update={
        "statements": kept,
        "category": categorise(definite, borderline, decisions.normal_limits, decisions.normal_limits_definite, logic)})
