"""A printable PDF report drawn with matplotlib (no system dependencies).

Page 1 (landscape): header, the 12-lead 3x4 layout + lead II rhythm strip printed at true scale
(25 mm/s, 10 mm/mV, 1 mm grid; `plot.draw_12lead`), key measurements and the codes. Following pages
(portrait): the narrative with its citations, the codes, signal quality, device vs ragecg, the evidence
passages cited, versions and the disclaimer. A4 by default, US Letter on request. No patient data beyond
what the report holds (file name, measurements); nothing is read from the record's header.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

from ragecg.errors import RagecgError
from ragecg.values import Report
from ragecg.version import __version__

from .text import device_comparison, format_number, measurement_rows
from .plot import PLOT_OMITTED, draw_12lead, layout_size_mm

PAPER_MM = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}    # portrait width, height
MARGIN_MM = 12.0
LINE_MM = 4.2                                                  # body line pitch (8 pt text)
WRAP_CHARS = 118                                               # characters per 8 pt body line, portrait


def _mm(fig, x_mm: float, y_mm: float) -> tuple[float, float]:
    """Figure fraction of a point given in mm from the bottom-left corner."""
    w, h = fig.get_size_inches() * 25.4
    return x_mm / w, y_mm / h


def _first_page(plt, report: Report, ecg, paper: str):
    height_mm, width_mm = PAPER_MM[paper]                       # landscape
    fig = plt.figure(figsize=(width_mm / 25.4, height_mm / 25.4))
    top = height_mm - MARGIN_MM
    fig.text(*_mm(fig, MARGIN_MM, top), f"ECG report: {report.source}", fontsize=12, weight="bold", va="top")
    d = report.diagnosis
    sub = (f"{report.source_format.upper()}, {report.sampling_rate_hz:g} Hz, {report.duration_s:g} s; "
           f"signal quality: {report.quality.verdict}; mode: {d.mode}. Machine-generated: to be over-read "
           f"by a physician (see the last page).")
    fig.text(*_mm(fig, MARGIN_MM, top - 7), sub, fontsize=7.5, va="top")
    plot_top = top - 12
    if ecg is not None:
        plot_w, plot_h = layout_size_mm(ecg)
        x0 = (width_mm - plot_w) / 2
        ax = fig.add_axes([x0 / width_mm, (plot_top - plot_h) / height_mm, plot_w / width_mm, plot_h / height_mm])
        draw_12lead(ax, ecg)                                    # 1 data mm = 1 printed mm
    else:
        plot_h = 30.0
        fig.text(*_mm(fig, MARGIN_MM, plot_top - 10), "\n".join(textwrap.wrap(PLOT_OMITTED.replace("`", ""), 150)),
                 fontsize=9, style="italic", va="top")
    y = plot_top - plot_h - 6
    m = report.measurements
    meas = [f"{label}: {value}" for label, value, _ in measurement_rows(m)
            if label not in ("RR variability (CV)", "P waves present")][:11]
    codes = [f"{c.code}  {c.description[:48]}  ({c.confidence:.2f})" for c in d.codes[:9]]
    codes += [f"{c.code}  borderline {c.description[:38]}" for c in d.borderline[:10 - len(codes)]]
    codes = codes or ["No statement reached its criteria."]
    if d.category is not None:
        codes.append(d.category.name)
    fig.text(*_mm(fig, MARGIN_MM, y), "Measurements", fontsize=9, weight="bold", va="top")
    fig.text(*_mm(fig, width_mm / 2, y), "Diagnosis (code, statement, confidence)", fontsize=9, weight="bold",
             va="top")
    for col_x, items in ((MARGIN_MM, meas), (width_mm / 2, codes)):
        rows = min(len(items), int((y - 5 - MARGIN_MM) / 3.6))
        fig.text(*_mm(fig, col_x, y - 5), "\n".join(items[:rows]), fontsize=7.5, va="top", linespacing=1.35)
    return fig


def _body_lines(report: Report) -> list[tuple[str, str]]:
    """(style, text) lines of the following pages; style is h (heading), b (bold) or t (text)."""
    out: list[tuple[str, str]] = []

    def para(text: str, style: str = "t", indent: str = "", width: int = WRAP_CHARS) -> None:
        wrapped = textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=" " * len(indent))
        out.extend((style, w) for w in wrapped or [""])

    def heading(text: str) -> None:
        out.append(("t", ""))
        para(text, "h", width=WRAP_CHARS * 8 // 10)      # 9 pt bold: wider glyphs

    d = report.diagnosis
    heading("Interpretation (citations in brackets: measurement keys and knowledge passages)")
    for s in d.narrative:
        para(s.text + (f" [{', '.join(s.evidence)}]" if s.evidence else ""), indent="- ")
    heading("Diagnosis")
    for c in d.codes:
        para(f"{c.code}: {c.description} (confidence {c.confidence:.2f}, decided by {c.decided_by})", indent="- ")
    if not d.codes:
        para("No statement reached its criteria.")
    heading(f"Signal quality: {report.quality.verdict}")
    for reason in report.quality.reasons:
        para(reason, indent="- ")
    para("Per lead: " + "; ".join(f"{ld} {q.state}" for ld, q in report.quality.leads.items()))
    rows = device_comparison(report)
    if rows or report.device_statements:
        heading("Device vs ragecg (difference = ragecg - device; limits are on the mean difference over a "
                "test set, indicative for one record)")
        for c in rows:
            verdict = {True: "within", False: "OUTSIDE", None: "not judged"}[c.within_limit]
            diff = "-" if c.difference is None else f"{round(c.difference):+d} {c.unit}"
            lim = f"+/-{c.limit:g} {c.unit}, {c.source}" if c.limit is not None else c.source
            para(f"{c.label}: device {c.device_value:.0f} {c.unit}, ragecg {format_number(c.ragecg_value, c.unit)}, "
                 f"difference {diff}: {verdict} ({lim})", indent="- ")
        if report.device_statements:
            para("Device statements: " + " / ".join(report.device_statements))
        para("ragecg codes: " + (", ".join(c.code for c in d.codes) or "none"))
    if report.evidence.passages:
        heading("Evidence (knowledge-base passages)")
        for p in report.evidence.passages:
            para(f"{p.passage_id} ({p.section}; {p.source[:140]})", indent="- ")
    v = report.versions
    heading("Versions")
    para(f"ragecg {v.package}; knowledge {v.knowledge_hash}; index {v.index_hash}; embedding {v.embedding_model}; "
         f"model {v.model or 'none'}" + (f" sha256 {v.model_sha256[:16]}" if v.model_sha256 else ""))
    heading("Disclaimer")
    para(report.disclaimer, style="b")
    return out


def _text_pages(plt, lines: list[tuple[str, str]], paper: str):
    width_mm, height_mm = PAPER_MM[paper]
    per_page = int((height_mm - 2 * MARGIN_MM - 8) / LINE_MM)
    for start in range(0, len(lines), per_page):
        fig = plt.figure(figsize=(width_mm / 25.4, height_mm / 25.4))
        for i, (style, text) in enumerate(lines[start:start + per_page]):
            y = height_mm - MARGIN_MM - i * LINE_MM
            fig.text(*_mm(fig, MARGIN_MM, y), text, fontsize=9 if style == "h" else 8, va="top",
                     weight="bold" if style in ("h", "b") else "normal")
        page = start // per_page + 2
        fig.text(*_mm(fig, width_mm - MARGIN_MM, MARGIN_MM / 2), f"page {page}", fontsize=7, ha="right")
        yield fig


def report_to_pdf(report: Report, ecg=None, paper: str = "a4") -> bytes:
    """The PDF as bytes. `ecg` (the signal) adds the 12-lead plot; without it page 1 says it is omitted."""
    paper = paper.lower()
    if paper not in PAPER_MM:
        raise RagecgError(f"--paper must be one of {', '.join(PAPER_MM)} (got {paper!r})")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    # Text is drawn as given: file names and device statements may hold `$`, `^` or `\\` (mathtext markup)
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}), \
            PdfPages(buf, metadata={"Title": "ECG report (machine-generated)", "Creator": f"ragecg {__version__}"}) as pdf:
        for fig in [_first_page(plt, report, ecg, paper), *_text_pages(plt, _body_lines(report), paper)]:
            pdf.savefig(fig)
            plt.close(fig)
    return buf.getvalue()


def write_pdf(report: Report, path: str | Path, ecg=None, paper: str = "a4") -> Path:
    path = Path(path)
    path.write_bytes(report_to_pdf(report, ecg, paper))
    return path
