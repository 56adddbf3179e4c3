"""Stage 7 — the report: one pydantic value, rendered as JSON (published schema), Markdown or HTML."""
from __future__ import annotations

from pydantic import BaseModel, Field

from .compose import Diagnosis
from .criteria import CodeCandidate
from .measure import Measurements
from .quality import Quality
from .retrieve import Evidence

DISCLAIMER = ("Machine-generated interpretation (ragecg). Not a diagnosis: it must be over-read and "
              "confirmed by a qualified physician before any clinical use.")
SCHEMA_VERSION = "1"


class VersionInfo(BaseModel):
    package: str
    knowledge_hash: str | None = None
    index_hash: str | None = None
    embedding_model: str | None = None
    model: str | None = None
    model_sha256: str | None = None


class Report(BaseModel):
    schema_version: str = SCHEMA_VERSION
    source: str                                  # file name only (no directories, no patient data)
    source_format: str
    sampling_rate_hz: float
    duration_s: float
    derived_leads: list[str] = Field(default_factory=list)
    measurements: Measurements
    quality: Quality
    candidate_scores: dict[str, float]           # criteria score of every known code
    criteria: list[CodeCandidate]                # candidates with score >= 0.1 and their conditions
    diagnosis: Diagnosis
    evidence: Evidence
    versions: VersionInfo
    timings_s: dict[str, float] = Field(default_factory=dict)
    device_statements: list[str] = Field(default_factory=list)
    disclaimer: str = DISCLAIMER


def report_json_schema() -> dict:
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ragecg.invalid/schema/report-v1.json"
    return schema


# ------------------------------------------------------------------ rendering
def _fmt(v, unit: str = "", nd: int = 0) -> str:
    if v is None:
        return "not measurable"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.{nd}f}{(' ' + unit) if unit else ''}"


_INTERVAL_ROWS = [
    ("Heart rate", "heart_rate_bpm", "bpm", 0), ("RR mean", "rr_mean_ms", "ms", 0),
    ("RR variability (CV)", "rr_cv", "", 3), ("P waves present", "p_present", "", 0),
    ("P duration", "p_duration_ms", "ms", 0), ("PR interval", "pr_interval_ms", "ms", 0),
    ("QRS duration", "qrs_duration_ms", "ms", 0), ("QT interval", "qt_interval_ms", "ms", 0),
    ("QTc (Bazett)", "qtc_bazett_ms", "ms", 0), ("QTc (Fridericia)", "qtc_fridericia_ms", "ms", 0),
    ("P axis", "p_axis_deg", "°", 0), ("QRS axis", "qrs_axis_deg", "°", 0), ("T axis", "t_axis_deg", "°", 0),
    ("Sokolow-Lyon voltage", "sokolow_lyon_mv", "mV", 2), ("Cornell voltage", "cornell_voltage_mv", "mV", 2),
]


def _measurement_rows(m: Measurements) -> list[tuple[str, str, str]]:
    rows = []
    for label, key, unit, nd in _INTERVAL_ROWS:
        v = getattr(m, key, None)
        rows.append((label, _fmt(v, unit, nd), key if v is not None else m.not_measurable.get(key, "")))
    return rows


def render_measurements(name: str, m: Measurements, quality: Quality) -> str:
    lines = [f"# Measurements: {name}", "", f"Signal quality: {quality.verdict}"]
    lines += [f"  - {r}" for r in quality.reasons[:12]]
    lines += ["", "| measurement | value | key / note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _measurement_rows(m)]
    lines += ["", "| lead | R (mV) | S (mV) | Q (mV) | Q (ms) | ST J+60 (mV) | T (mV) |", "|---|---|---|---|---|---|---|"]
    for lead, lm in m.leads.items():
        lines.append(f"| {lead} | {_fmt(lm.r_amplitude_mv, '', 2)} | {_fmt(lm.s_amplitude_mv, '', 2)} | "
                     f"{_fmt(lm.q_amplitude_mv, '', 2)} | {_fmt(lm.q_duration_ms)} | {_fmt(lm.st_j60_mv, '', 2)} | "
                     f"{_fmt(lm.t_amplitude_mv, '', 2)} |")
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
    if d.codes:
        lines += ["| code | statement | confidence | decided by |", "|---|---|---|---|"]
        lines += [f"| {c.code} | {c.description} | {c.confidence:.2f} | {c.decided_by} |" for c in d.codes]
    else:
        lines.append("No statement reached its criteria.")
    lines += ["", "## Interpretation", ""]
    for s in d.narrative:
        cites = f" [{', '.join(s.evidence)}]" if s.evidence else ""
        lines.append(f"- {s.text}{cites}")
    lines += ["", "## Measurements", "", "| measurement | value | key / note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _measurement_rows(r.measurements)]
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
    if r.device_statements:
        lines += ["", "## Device statements (from the file)", ""] + [f"- {s}" for s in r.device_statements]
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


def render(r: Report, fmt: str = "text", ecg=None) -> str:
    """Text/Markdown, or self-contained HTML (with the 12-lead plot when `ecg` is given)."""
    if fmt == "html":
        from .plot import render_html
        return render_html(r, ecg)
    return render_markdown(r) if fmt == "md" else render_text(r)
