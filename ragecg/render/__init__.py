"""Render stage: a `Report` as text/Markdown, self-contained HTML (with the 12-lead plot when the signal
is given), JSON (published schema), a FHIR R4 Bundle or a printable PDF, all through `render`."""
from __future__ import annotations

import json

from ragecg.values import Ecg, Report

from .fhir import report_to_fhir, validate_bundle
from .html import render_html
from .pdf import report_to_pdf
from .serial import SerialComparison, compare_reports, render_comparison_markdown, with_comparison_html
from .text import device_comparison, render_markdown, render_measurements, render_text, report_json_schema

FORMATS = ("text", "md", "html", "json", "fhir", "pdf")


def render(report: Report, fmt: str = "text", ecg: Ecg | None = None, *, compact: bool = False,
           paper: str = "a4") -> str | bytes:
    """The report in `fmt`: text, md, html (with the plot when `ecg` is given), json, fhir (a FHIR R4
    Bundle, checked with the fhir.resources models) as text; pdf as bytes."""
    if fmt == "json":
        return report.model_dump_json(indent=None if compact else 2)
    if fmt == "fhir":
        bundle = report_to_fhir(report)
        validate_bundle(bundle)
        return json.dumps(bundle, indent=None if compact else 2, ensure_ascii=False)
    if fmt == "pdf":
        return report_to_pdf(report, ecg, paper)
    if fmt == "html":
        return render_html(report, ecg)
    return render_markdown(report) if fmt == "md" else render_text(report)


__all__ = ["FORMATS", "SerialComparison", "compare_reports", "device_comparison", "render", "render_comparison_markdown",
           "render_measurements", "report_json_schema", "with_comparison_html"]
