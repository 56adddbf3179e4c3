"""Criteria — candidate codes from measurements against the cited criteria of the knowledge base.

Score of one condition (documented, not fitted): the signed margin by which the measured value is
past its threshold, divided by the measurement's tolerance scale, through a logistic:

    s = 1 / (1 + exp(-margin / scale))        s = 0.5 exactly at the threshold

Default scales are the measurement tolerances of IEC 60601-2-25 for intervals (10 ms), a typical
amplitude resolution for voltages (0.05 mV), 5 bpm for rates, 15 degrees for axes, 0.1 for ratios
(see `UNIT_SCALES`). A value exactly at a strict threshold (">", "<") is not past it and scores just
below 0.5. A condition over `leads` with `min_leads = k` takes the k-th highest per-lead
score; in a rule with `same_leads`, the conditions over one lead list are combined per lead first (the
lowest of their scores in that lead), so they must hold in the same k leads. A rule with `match: all` takes the minimum of its conditions (fuzzy AND), `match: any` the
maximum. A code's score is the maximum over its rules. A code fires when its score >= 0.5, i.e.
when the measured values are past every published threshold. A condition whose measurement is
missing scores 0 (the finding is not supported), and the reason is kept.

NORM is scored as 1 - max(score of every diagnostic code of MI/STTC/CD/HYP), times the score of
its own rules (normal rate and intervals), so that NORM and any abnormality rank inversely.
"""
from __future__ import annotations

import math

from ragecg.values import (FIRE_THRESHOLD, Candidates, CodeCandidate, Condition, ConditionResult, KnowledgeDoc,
                           Measurements, Rule, scp_codes)

UNIT_SCALES = {"_ms": 10.0, "_mv": 0.05, "_bpm": 5.0, "_deg": 15.0}
DEFAULT_SCALE = 0.1  # ratios and counts
# "P > 120 ms" is not met by 120 ms: a value exactly at a strict threshold scores just under FIRE_THRESHOLD
# (0.4999 stays under it after the 6-decimal rounding of the candidate scores)
AT_STRICT_THRESHOLD = 0.4999


def _scale_for(cond: Condition) -> float:
    if cond.scale:
        return float(cond.scale)
    for suffix, scale in UNIT_SCALES.items():
        if cond.measure.endswith(suffix):
            return scale
    return DEFAULT_SCALE


def _logistic(x: float) -> float:
    if x > 50:
        return 1.0
    if x < -50:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))


def score_value(value, cond: Condition) -> float | None:
    """Soft score of one measured value against one condition; None when not measured."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(cond.value, bool) or isinstance(value, bool):
        truth = {"==": bool(value) == bool(cond.value), "!=": bool(value) != bool(cond.value)}.get(cond.op)
        return None if truth is None else float(truth)
    v, t, scale = float(value), float(cond.value), _scale_for(cond)
    if v == t and cond.op in (">", "<"):
        return AT_STRICT_THRESHOLD
    if cond.op in (">", ">="):
        return _logistic((v - t) / scale)
    if cond.op in ("<", "<="):
        return _logistic((t - v) / scale)
    if cond.op == "==":
        return _logistic((scale - abs(v - t)) / scale)
    return _logistic((abs(v - t) - scale) / scale)


def evaluate_condition(cond: Condition, m: Measurements, sex: str | None) -> ConditionResult | None:
    """None when the condition does not apply (a sex-specific threshold for the other sex)."""
    if cond.sex is not None and sex is not None and cond.sex != sex:
        return None
    if not cond.leads:
        value = m.get(cond.measure)
        s = score_value(value, cond)
        note = m.not_measurable.get(cond.measure) if s is None else None
        s = 0.0 if s is None else s
        return ConditionResult(measure=cond.measure, op=cond.op, threshold=cond.value, value=value, score=s,
                               met=s >= FIRE_THRESHOLD, source=cond.source, note=note or ("not measured" if value is None else None))
    per_lead = []
    for lead in cond.leads:
        value = m.get(f"{cond.measure}[{lead}]")
        s = score_value(value, cond)
        per_lead.append((0.0 if s is None else s, lead, value))
    per_lead.sort(key=lambda t: -t[0])
    k = min(max(cond.min_leads, 1), len(per_lead))
    s, lead, value = per_lead[k - 1]
    return ConditionResult(measure=cond.measure, op=cond.op, threshold=cond.value, value=value, lead=lead,
                           leads_met=[ld for sc, ld, _ in per_lead if sc >= FIRE_THRESHOLD], score=s,
                           met=s >= FIRE_THRESHOLD, source=cond.source,
                           note=None if value is not None else "not measured")


def _same_lead_results(conds: list[Condition], m: Measurements) -> list[ConditionResult]:
    """Conditions over one lead list, met in the same leads: each lead scores the lowest of its conditions'
    scores; the k-th best lead (k = min_leads) gives every condition's value and score."""
    leads, k = conds[0].leads or [], min(max(conds[0].min_leads, 1), len(conds[0].leads or [1]))
    per_lead = []
    for lead in leads:
        values = [m.get(f"{c.measure}[{lead}]") for c in conds]
        scores = [score_value(v, c) for v, c in zip(values, conds)]
        per_lead.append((min(0.0 if s is None else s for s in scores), lead, values, scores))
    per_lead.sort(key=lambda t: -t[0])
    met_leads = [ld for sc, ld, _, _ in per_lead if sc >= FIRE_THRESHOLD]
    _, lead, values, scores = per_lead[k - 1]
    return [ConditionResult(measure=c.measure, op=c.op, threshold=c.value, value=v, lead=lead, leads_met=met_leads,
                            score=0.0 if s is None else s, met=(s or 0.0) >= FIRE_THRESHOLD, source=c.source,
                            note=None if v is not None else "not measured")
            for c, v, s in zip(conds, values, scores)]


def evaluate_rule(rule: Rule, m: Measurements, sex: str | None) -> tuple[float, list[ConditionResult]]:
    if rule.same_leads and rule.match == "all":
        groups: dict[tuple, list[Condition]] = {}
        for c in rule.conditions:
            if c.leads and c.sex is None:
                groups.setdefault((tuple(c.leads), c.min_leads), []).append(c)
        joined = {id(c): r for conds in groups.values() if len(conds) > 1
                  for c, r in zip(conds, _same_lead_results(conds, m))}
        results = [joined[id(c)] if id(c) in joined else evaluate_condition(c, m, sex) for c in rule.conditions]
        results = [r for r in results if r is not None]
    else:
        results = [r for c in rule.conditions if (r := evaluate_condition(c, m, sex)) is not None]
    if not results:
        return 0.0, []
    # Sex-specific alternatives for a record of unknown sex: keep the first of each measure/op pair.
    if sex is None:
        seen, kept = set(), []
        for cond, res in zip([c for c in rule.conditions], results):
            key = (cond.measure, cond.op, tuple(cond.leads or ()))
            if cond.sex is not None and key in seen:
                continue
            seen.add(key)
            kept.append(res)
        results = kept
    scores = [r.score for r in results]
    return (min(scores) if rule.match == "all" else max(scores)), results


def evaluate_criteria(m: Measurements, docs: list[KnowledgeDoc], sex: str | None = None) -> Candidates:
    """Score every known code from the knowledge base's rules."""
    table = scp_codes()
    best: dict[str, tuple[float, list[ConditionResult], list[str]]] = {}
    for doc in docs:
        for rule in doc.criteria:
            score, results = evaluate_rule(rule, m, sex)
            prev = best.get(rule.code)
            doc_ids = sorted(set((prev[2] if prev else []) + [doc.id]))
            if prev is None or score > prev[0]:
                best[rule.code] = (score, results, doc_ids)
            else:
                best[rule.code] = (prev[0], prev[1], doc_ids)

    abnormal = [s for code, (s, _, _) in best.items()
                if table.get(code, {}).get("superclass") in ("MI", "STTC", "CD", "HYP")]
    if "NORM" in best:
        own, results, ids = best["NORM"]
        best["NORM"] = (own * (1.0 - max(abnormal, default=0.0)), results, ids)

    scores = {code: 0.0 for code in table}
    candidates = []
    for code, (score, results, ids) in best.items():
        scores[code] = round(score, 6)
        row = table.get(code, {})
        candidates.append(CodeCandidate(code=code, description=row.get("description", code),
                                        superclass=row.get("superclass"), score=round(score, 6),
                                        fired=score >= FIRE_THRESHOLD, doc_ids=ids, conditions=results))
    candidates.sort(key=lambda c: (-c.score, c.code))
    return Candidates(scores=scores, candidates=candidates)
