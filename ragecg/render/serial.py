"""Serial comparison: what changed between a prior ECG of a patient and a new one, as serial-comparison
programs report it: statements new / no longer present, global measurements whose change exceeds a
published tolerance, or "no significant change".

Works on two `Report`s (any format, from the CLI `diagnose NEW --prior OLD`, the HTTP API or saved
report.json files), so it never needs the signals and never reads patient data. Tolerances and their
sources are in `_ROWS`; a change within tolerance cannot be told from measurement error.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ragecg.values import Report

from .text import IEC_HEART_RATE, IEC_INTERVALS, heart_rate_limit_bpm

# Interval tolerances: IEC 60601-2-25:2011 201.12.4.104 accepts a program whose global intervals differ
# from the reference by up to P/PR/QRS +/-10 ms and QT +/-25 ms, so a smaller change between two
# recordings is within what one program may mis-measure. Heart rate: +/-10 % or +/-5 bpm, the greater
# (IEC 60601-2-27:2011 201.12.1.101.2), of the prior value. QTc: ICH E14 (2005) categorical analysis
# flags a QTc increase from baseline of more than 30 ms (and > 60 ms as clearly significant, also the
# AHA/ACCF 2010 scientific statement on preventing torsade de pointes, Drew et al., Circulation
# 2010;121:1047-1060). Frontal QRS axis: no standard tolerance in degrees; a change is reported as
# significant when the axis moves between the AHA/ACCF/HRS 2009 Part III categories (normal -30..+90,
# left < -30, right > +90; Surawicz et al., Circulation 2009;119:e235-e240), the degrees are shown.
ICH_E14 = "ICH E14 (2005) categorical QTc change > 30 ms (> 60 ms: Drew et al. 2010)"
AHA_AXIS = "AHA/ACCF/HRS 2009 Part III axis categories (normal -30 to +90 degrees)"
# (label, measurement key, unit, tolerance: number, "hr" or "axis", source)
_ROWS: list[tuple[str, str, str, float | str, str]] = [
    ("Heart rate", "heart_rate_bpm", "bpm", "hr", IEC_HEART_RATE),
    ("P duration", "p_duration_ms", "ms", 10.0, IEC_INTERVALS),
    ("PR interval", "pr_interval_ms", "ms", 10.0, IEC_INTERVALS),
    ("QRS duration", "qrs_duration_ms", "ms", 10.0, IEC_INTERVALS),
    ("QT interval", "qt_interval_ms", "ms", 25.0, IEC_INTERVALS + " (QT)"),
    ("QTc (Bazett)", "qtc_bazett_ms", "ms", 30.0, ICH_E14),
    ("QRS axis", "qrs_axis_deg", "°", "axis", AHA_AXIS),
]


class StatementChange(BaseModel):
    code: str
    description: str
    change: Literal["new", "no longer present", "unchanged"]
    confidence_new: float | None = None
    confidence_prior: float | None = None
    category: str | None = None          # the statement's category in the report that has it, when given


class MeasurementChange(BaseModel):
    label: str
    key: str
    unit: str
    prior: float | None = None
    new: float | None = None
    change: float | None = None          # new - prior (axes: the shorter way round the circle)
    tolerance: float | None = None       # +/- in `unit` (None for the axis: category-based)
    significant: bool | None = None      # None: one of the two values is missing
    note: str = ""
    source: str


class SerialComparison(BaseModel):
    new_source: str
    prior_source: str
    statements: list[StatementChange] = Field(default_factory=list)
    measurements: list[MeasurementChange] = Field(default_factory=list)
    significant_change: bool
    summary: str
    caveats: list[str] = Field(default_factory=list)

    def new_codes(self) -> list[str]:
        return [s.code for s in self.statements if s.change == "new"]

    def gone_codes(self) -> list[str]:
        return [s.code for s in self.statements if s.change == "no longer present"]


def axis_category(deg: float | None) -> str | None:
    """AHA/ACCF/HRS 2009 Part III: normal -30..+90, left < -30 (to -90), right > +90 (to +180); -90..-180
    is the indeterminate ("northwest") axis."""
    if deg is None:
        return None
    d = (float(deg) + 180.0) % 360.0 - 180.0
    if -30.0 <= d <= 90.0:
        return "normal"
    if -90.0 <= d < -30.0:
        return "left axis deviation"
    if 90.0 < d <= 180.0:
        return "right axis deviation"
    return "indeterminate axis"


def _codes(r: Report) -> dict:
    return {c.code: c for c in r.diagnosis.codes}


def _measurement_change(label, key, unit, tol, source, prior: Report, new: Report) -> MeasurementChange:
    pv, nv = getattr(prior.measurements, key, None), getattr(new.measurements, key, None)
    row = MeasurementChange(label=label, key=key, unit=unit, source=source,
                            prior=None if pv is None else float(pv), new=None if nv is None else float(nv))
    if pv is None or nv is None:
        row.note = "not measurable in " + ("both" if pv is None and nv is None else "the prior" if pv is None
                                            else "the new") + " ECG"
        return row
    diff = float(nv) - float(pv)
    if tol == "axis":
        diff = (diff + 180.0) % 360.0 - 180.0
        pc, nc = axis_category(pv), axis_category(nv)
        row.change, row.significant = diff, pc != nc
        row.note = f"{pc} → {nc}" if pc != nc else pc or ""
        return row
    limit = heart_rate_limit_bpm(float(pv)) if tol == "hr" else float(tol)
    row.change, row.tolerance, row.significant = diff, limit, abs(diff) > limit + 1e-9
    if row.significant:
        row.note = "increased" if diff > 0 else "decreased"
    return row


def compare_reports(new: Report, prior: Report) -> SerialComparison:
    """What changed from `prior` to `new` (two reports of the same patient: the caller's responsibility,
    since no identifier is read from the files)."""
    nc, pc = _codes(new), _codes(prior)
    statements: list[StatementChange] = []
    for code, c in nc.items():
        p = pc.get(code)
        statements.append(StatementChange(code=code, description=c.description,
                                          change="unchanged" if p else "new", confidence_new=c.confidence,
                                          confidence_prior=p.confidence if p else None,
                                          category=getattr(c, "category", None)))
    for code, p in pc.items():
        if code not in nc:
            statements.append(StatementChange(code=code, description=p.description, change="no longer present",
                                              confidence_prior=p.confidence, category=getattr(p, "category", None)))
    measurements = [_measurement_change(*row, prior=prior, new=new) for row in _ROWS]
    changed_statements = [s for s in statements if s.change != "unchanged"]
    changed_values = [m for m in measurements if m.significant]
    caveats = []
    for name, r in (("prior", prior), ("new", new)):
        if r.quality.verdict != "usable":
            caveats.append(f"the {name} ECG's signal quality is {r.quality.verdict}: changes may reflect noise")
    if abs(new.sampling_rate_hz - prior.sampling_rate_hz) > 1e-6:
        caveats.append(f"recorded at different sampling rates ({prior.sampling_rate_hz:g} and "
                       f"{new.sampling_rate_hz:g} Hz)")
    significant = bool(changed_statements or changed_values)
    if not significant:
        summary = "No significant change since the prior ECG."
    else:
        parts = []
        new_s = [s.description for s in changed_statements if s.change == "new"]
        gone_s = [s.description for s in changed_statements if s.change == "no longer present"]
        if new_s:
            parts.append("new: " + "; ".join(new_s))
        if gone_s:
            parts.append("no longer present: " + "; ".join(gone_s))
        for m in changed_values:
            if m.unit == "°":
                parts.append(f"{m.label} {m.note} ({m.change:+.0f}°)")
            else:
                parts.append(f"{m.label} {m.note} by {abs(m.change):.0f} {m.unit}")
        summary = "Changed since the prior ECG: " + "; ".join(parts) + "."
    return SerialComparison(new_source=new.source, prior_source=prior.source, statements=statements,
                            measurements=measurements, significant_change=significant, summary=summary,
                            caveats=caveats)


def render_comparison_markdown(c: SerialComparison) -> str:
    """The comparison as a Markdown section (appended to the new ECG's report)."""
    lines = [f"## Comparison with the prior ECG ({c.prior_source})", "", f"**{c.summary}**", ""]
    lines += [f"*Caveat: {x}.*" for x in c.caveats] + ([""] if c.caveats else [])
    rows = [s for s in c.statements if s.change != "unchanged"]
    if rows:
        lines += ["| statement | change |", "|---|---|"]
        lines += [f"| {s.code} ({s.description}) | {s.change} |" for s in rows]
        lines.append("")
    same = [s.code for s in c.statements if s.change == "unchanged"]
    if same:
        lines += [f"Unchanged: {', '.join(same)}.", ""]
    lines += ["| measurement | prior | new | change | tolerance | significant | source |",
              "|---|---|---|---|---|---|---|"]
    for m in c.measurements:
        def v(x):
            return "—" if x is None else f"{x:.0f} {m.unit}"
        tol = "axis category" if m.unit == "°" else ("—" if m.tolerance is None else f"±{m.tolerance:.0f} {m.unit}")
        sig = {True: "**yes**", False: "no", None: "—"}[m.significant]
        note = f" ({m.note})" if m.note and m.significant is not False else ""
        lines.append(f"| {m.label} | {v(m.prior)} | {v(m.new)} | "
                     f"{'—' if m.change is None else f'{m.change:+.0f} {m.unit}'} | {tol} | {sig}{note} | {m.source} |")
    return "\n".join(lines)


def with_comparison_html(page: str, c: SerialComparison) -> str:
    """A report's HTML page with the comparison section before </body> (text escaped, tables kept)."""
    import markdown
    safe = render_comparison_markdown(c).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    section = f'<section id="serial-comparison">{markdown.markdown(safe, extensions=["tables"])}</section>'
    return page.replace("</body>", section + "</body>")
