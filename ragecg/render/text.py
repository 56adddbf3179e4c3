"""The report as Markdown/text (also the body of the HTML and PDF), the device-vs-ragecg comparison,
the measurement table and the report's published JSON Schema."""
from __future__ import annotations

import re
from itertools import zip_longest

from pydantic import BaseModel

from ragecg.values import Measurements, Quality, Report

# ------------------------------------------------------------------ device vs ragecg
# Difference = ragecg - device, judged against published limits. Intervals: IEC 60601-2-25:2011 clause
# 201.12.4.104, limits on the mean difference of global durations/intervals from the reference (P +/-10 ms,
# PR +/-10 ms, QRS +/-10 ms, QT +/-25 ms; the same limits bench/ludb.py uses). QTc gets the QT limit: it is
# QT scaled by RR and the standard sets no separate one. Heart rate: +/-10 % or +/-5 bpm, the greater
# (IEC 60601-2-27:2011, 201.12.1.101.2, heart-rate meter accuracy). Axes: no standard limit, not judged.
# The standard's limits apply to the mean over a test set; one record's difference is only indicative.
IEC_INTERVALS = "IEC 60601-2-25:2011 201.12.4.104"
IEC_HEART_RATE = "IEC 60601-2-27:2011 201.12.1.101.2"
# (label, device key, ragecg key, unit, limit: ms (None: not judged) or "hr", source)
_DEVICE_ROWS = [
    ("Heart rate", "heart_rate_bpm", "heart_rate_bpm", "bpm", "hr", IEC_HEART_RATE),
    ("P duration", "p_duration_ms", "p_duration_ms", "ms", 10.0, IEC_INTERVALS),
    ("PR interval", "pr_interval_ms", "pr_interval_ms", "ms", 10.0, IEC_INTERVALS),
    ("QRS duration", "qrs_duration_ms", "qrs_duration_ms", "ms", 10.0, IEC_INTERVALS),
    ("QT interval", "qt_interval_ms", "qt_interval_ms", "ms", 25.0, IEC_INTERVALS + " (QT)"),
    ("QTc (Bazett)", "qtc_bazett_ms", "qtc_bazett_ms", "ms", 25.0, IEC_INTERVALS + " (QT)"),
    ("QTc (Fridericia)", "qtc_fridericia_ms", "qtc_fridericia_ms", "ms", 25.0, IEC_INTERVALS + " (QT)"),
    ("QTc (device: correction not stated; ragecg: Bazett)", "qtc_ms", "qtc_bazett_ms", "ms", 25.0,
     IEC_INTERVALS + " (QT)"),
    ("P axis", "p_axis_deg", "p_axis_deg", "°", None, "no standard limit"),
    ("QRS axis", "qrs_axis_deg", "qrs_axis_deg", "°", None, "no standard limit"),
    ("T axis", "t_axis_deg", "t_axis_deg", "°", None, "no standard limit"),
]


class DeviceComparison(BaseModel):
    label: str
    device_key: str
    ragecg_key: str
    unit: str
    device_value: float
    ragecg_value: float | None = None
    difference: float | None = None          # ragecg - device, in `unit`
    limit: float | None = None               # +/- limit in `unit` for this device value
    within_limit: bool | None = None         # None: not judged (no value or no standard limit)
    source: str


def heart_rate_limit_bpm(device_bpm: float) -> float:
    """+/-10 % or +/-5 bpm, the greater (IEC 60601-2-27:2011, 201.12.1.101.2)."""
    return max(5.0, 0.10 * abs(device_bpm))


def device_comparison(r: Report) -> list[DeviceComparison]:
    """One row per global value the device stored: its value, ragecg's, the difference and the limit."""
    rows = []
    for label, dkey, rkey, unit, limit, source in _DEVICE_ROWS:
        if dkey not in r.device_measurements:
            continue
        dv = float(r.device_measurements[dkey])
        rv = getattr(r.measurements, rkey, None)
        lim = heart_rate_limit_bpm(dv) if limit == "hr" else limit
        diff = None if rv is None else float(rv) - dv
        if diff is not None and unit == "°":
            diff = (diff + 180.0) % 360.0 - 180.0      # axes: the shorter way round the circle
        within = None if diff is None or lim is None else abs(diff) <= lim + 1e-9
        rows.append(DeviceComparison(label=label, device_key=dkey, ragecg_key=rkey, unit=unit, device_value=dv,
                                     ragecg_value=None if rv is None else float(rv), difference=diff, limit=lim,
                                     within_limit=within, source=source))
    return rows


def render_device_comparison(r: Report) -> list[str]:
    """Markdown lines of the "Device vs ragecg" section ([] when the file had no device values)."""
    if not r.device_measurements and not r.device_statements:
        return []
    lines = ["## Device vs ragecg", ""]
    rows = device_comparison(r)
    if rows:
        lines += ["Global values stored in the file by the recording device, beside ragecg's; difference = "
                  "ragecg − device. Limits are published limits on the *mean* difference over a test set, so "
                  "for one record they are indicative only.", "",
                  "| measurement | device | ragecg | difference | within limit | limit (source) |",
                  "|---|---|---|---|---|---|"]
        for c in rows:
            verdict = {True: "yes", False: "**no**", None: "—"}[c.within_limit]
            lim = f"±{c.limit:g} {c.unit} ({c.source})" if c.limit is not None else c.source
            diff = "—" if c.difference is None else f"{round(c.difference):+d} {c.unit}"
            lines.append(f"| {c.label} | {c.device_value:.0f} {c.unit} | {format_number(c.ragecg_value, c.unit)} | {diff} | "
                         f"{verdict} | {lim} |")
        lines.append("")
    codes = [f"{c.code} ({c.description})" for c in r.diagnosis.codes]
    if r.device_statements or codes:
        lines += ["| device statements (from the file) | ragecg codes |", "|---|---|"]
        for dev, own in zip_longest(r.device_statements, codes, fillvalue=""):
            lines.append(f"| {_cell(dev)} | {_cell(own)} |")
    return lines


def _cell(text: str) -> str:
    """Text from a file as one Markdown table cell: no table break, no emphasis (raw HTML is escaped by
    `plot.render_html`)."""
    return re.sub(r"([|*_`\\\[\]])", r"\\\1", re.sub(r"\s+", " ", str(text)))


def report_json_schema() -> dict:
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ragecg.invalid/schema/report-v1.json"
    return schema


# ------------------------------------------------------------------ rendering
def format_number(v, unit: str = "", nd: int = 0) -> str:
    if v is None:
        return "not measurable"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.{nd}f}{(' ' + unit) if unit else ''}"


_INTERVAL_ROWS = [
    ("Heart rate", "heart_rate_bpm", "bpm", 0), ("RR mean", "rr_mean_ms", "ms", 0),
    ("RR variability (CV)", "rr_cv", "", 3), ("P waves present", "p_present", "", 0),
    ("P duration", "p_duration_ms", "ms", 0), ("P duration, lead II", "p_duration_ms[II]", "ms", 0),
    ("P terminal force, V1", "p_terminal_force_mv_ms[V1]", "mV·ms", 1),
    ("PR interval", "pr_interval_ms", "ms", 0), ("QRS duration", "qrs_duration_ms", "ms", 0),
    ("QT interval", "qt_interval_ms", "ms", 0),
    ("QTc (Bazett)", "qtc_bazett_ms", "ms", 0), ("QTc (Fridericia)", "qtc_fridericia_ms", "ms", 0),
    ("P axis", "p_axis_deg", "°", 0), ("QRS axis", "qrs_axis_deg", "°", 0), ("T axis", "t_axis_deg", "°", 0),
    ("Sokolow-Lyon voltage", "sokolow_lyon_mv", "mV", 2), ("Cornell voltage", "cornell_voltage_mv", "mV", 2),
]


def measurement_rows(m: Measurements) -> list[tuple[str, str, str]]:
    rows = []
    for label, key, unit, nd in _INTERVAL_ROWS:
        v = m.get(key)
        text = format_number(v, unit, nd)
        if v is not None and key in m.uncertainty:     # beat-to-beat spread (robust SD over the beats)
            text = f"{v:.{nd}f} ± {m.uncertainty[key]:.{nd}f}{(' ' + unit) if unit else ''}"
        note = key if v is not None else m.not_measurable.get(key, "")
        if v is not None and key in m.uncertain:
            note += f" (uncertain: {m.uncertain[key]})"
        rows.append((label, text, note))
    return rows


def render_measurements(name: str, m: Measurements, quality: Quality) -> str:
    lines = [f"# Measurements: {name}", "", f"Signal quality: {quality.verdict}"]
    lines += [f"  - {r}" for r in quality.reasons[:12]]
    lines += ["", "| measurement | value | key / note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in measurement_rows(m)]
    lines += ["", "| lead | R (mV) | S (mV) | Q (mV) | Q (ms) | ST J+60 (mV) | T (mV) |", "|---|---|---|---|---|---|---|"]
    for lead, lm in m.leads.items():
        lines.append(f"| {lead} | {format_number(lm.r_amplitude_mv, '', 2)} | {format_number(lm.s_amplitude_mv, '', 2)} | "
                     f"{format_number(lm.q_amplitude_mv, '', 2)} | {format_number(lm.q_duration_ms)} | {format_number(lm.st_j60_mv, '', 2)} | "
                     f"{format_number(lm.t_amplitude_mv, '', 2)} |")
    return "\n".join(lines)


def render_markdown(r: Report) -> str:
    d = r.diagnosis
    lines = [f"# ECG report: {r.source}", "",
             f"*{r.source_format.upper()}, {r.sampling_rate_hz:g} Hz, {r.duration_s:g} s; signal quality: "
             f"{r.quality.verdict}; mode: {d.mode}"
             + (f" (LLM {d.llm.status})" if d.mode == "llm" or d.llm.status not in ("disabled", "ok") else "") + "*", ""]
    if r.derived_leads:
        lines += [f"Leads {', '.join(r.derived_leads)} were derived from I and II (not stored in the file).", ""]
    lines += ["## Diagnosis", ""]
    if d.codes or d.borderline:
        lines += ["| code | statement | confidence | decided by |", "|---|---|---|---|"]
        lines += [f"| {c.code} | {c.description} | {c.confidence:.2f} | {c.decided_by} |" for c in d.codes]
        lines += [f"| {c.code} | borderline {c.description} (not a definite statement) | {c.confidence:.2f} | "
                  f"{c.decided_by} |" for c in d.borderline]
    else:
        lines.append("No statement reached its criteria.")
    if d.suppressed:
        lines += ["", "Not stated (statement logic): " + "; ".join(
            f"{s.code} ({s.relation.replace('es', 'ed', 1) if s.relation == 'excludes' else 'subsumed'} by {s.by})"
            for s in d.suppressed) + "."]
    if d.category is not None:
        lines += ["", f"**{d.category.text}**"]
    lines += ["", "## Interpretation", ""]
    for s in d.narrative:
        cites = f" [{', '.join(s.evidence)}]" if s.evidence else ""
        lines.append(f"- {s.text}{cites}")
    lines += ["", "## Measurements", "", "| measurement | value | key / note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in measurement_rows(r.measurements)]
    device = render_device_comparison(r)
    if device:
        lines += [""] + device
    if r.quality.reasons:
        lines += ["", "## Signal quality", ""] + [f"- {x}" for x in r.quality.reasons]
    if r.criteria:
        lines += ["", "## Criteria evaluated (score >= 0.1)", "", "| code | score | condition | value | threshold | source |",
                  "|---|---|---|---|---|---|"]
        for c in r.criteria[:15]:
            for cond in c.conditions:
                lines.append(f"| {c.code} | {c.score:.2f} | {cond.evidence_key} {cond.op} | {cond.value} | "
                             f"{cond.threshold} | {cond.source} |")
    if r.evidence.passages:
        lines += ["", "## Evidence (knowledge base)", ""]
        for p in r.evidence.passages:
            lines.append(f"- **{p.passage_id}** ({p.section}; {p.source[:120]}): {p.text[:300].strip()}…")
    if d.stripped_keys or d.stripped_codes:
        lines += ["", f"*Removed from the LLM output: {len(d.stripped_codes)} invented code(s), "
                      f"{len(d.stripped_keys)} unknown evidence key(s).*"]
    v = r.versions
    lines += ["", "---", f"ragecg {v.package}; knowledge {v.knowledge_hash}; index {v.index_hash}; "
              f"model {v.model or 'none'} {('sha256 ' + v.model_sha256[:12]) if v.model_sha256 else ''}".rstrip(),
              "", f"**{r.disclaimer}**"]
    return "\n".join(lines)


def render_text(r: Report) -> str:
    return render_markdown(r)
