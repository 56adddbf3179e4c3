"""Codes an electrode finding makes unreliable: after the criteria, the codes are re-scored without the
rules that read limb leads or the frontal axes (LA/RA reversal) or any lead's polarity (inverted
polarity), and the codes so withheld are named in the `Quality`. See docs/reliability.md."""
from __future__ import annotations

from ragecg.values import FIRE_THRESHOLD, LIMB_LEADS, Measurements, Quality

from .evaluate import evaluate_criteria


# ------------------------------------------------------------------ codes an electrode finding makes unreliable
# Global measures computed from limb leads: the frontal-plane axes (from I and aVF), the Cornell voltage
# (R in aVL) and the limb-lead QRS maximum (low voltage).
LIMB_LEAD_MEASURES = ("qrs_axis_deg", "p_axis_deg", "t_axis_deg", "cornell_voltage_mv", "limb_lead_qrs_max_mv")
# With every lead inverted, every per-lead amplitude, and so every lead's polarity, is unreliable as well.
POLARITY_MEASURES = LIMB_LEAD_MEASURES + ("sokolow_lyon_mv",)
WITHHELD_BECAUSE = {"limb_lead_reversal": "limb-lead reversal suspected: their criteria read limb leads or the "
                                          "frontal axis",
                    "inverted_polarity": "inverted polarity suspected: their criteria read lead polarities"}


def rule_is_unreliable(rule, finding: str) -> bool:
    """True when `rule` reads a lead or a measure that `finding` ("limb_lead_reversal" or
    "inverted_polarity") makes unreliable."""
    for c in rule.conditions:
        if finding == "inverted_polarity":
            if c.leads or c.measure in POLARITY_MEASURES:
                return True
        elif c.measure in LIMB_LEAD_MEASURES or any(ld in LIMB_LEADS for ld in (c.leads or ())):
            return True
    return False


def withhold_unreliable_codes(candidates, m: Measurements, quality: Quality, docs: list, sex: str | None):
    """(candidates, quality) with the codes re-scored without the rules an electrode finding makes
    unreliable (a code left with no rule scores 0; NORM reads the axis, so it is withheld too); the codes
    that fired before and no longer do are listed in `quality.withheld_codes` and named in its reasons."""
    if not quality.electrode_findings:
        return candidates, quality
    findings = quality.electrode_findings
    kept = [d.model_copy(update={"criteria": [r for r in d.criteria
                                              if not any(rule_is_unreliable(r, f) for f in findings)]})
            for d in docs]
    rescored = evaluate_criteria(m, kept, sex=sex)
    withheld = sorted(c.code for c in candidates.fired() if rescored.scores.get(c.code, 0.0) < FIRE_THRESHOLD)
    why = "; ".join(WITHHELD_BECAUSE[f] for f in quality.electrode_findings)
    note = (f"codes withheld ({why}): {', '.join(withheld)}" if withheld
            else f"no code withheld, none fired on such criteria ({why})")
    return rescored, quality.model_copy(update={"withheld_codes": withheld, "reasons": [*quality.reasons, note]})
