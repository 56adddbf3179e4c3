"""The self-contained HTML report: the Markdown report converted (raw HTML escaped, no links) with the
12-lead plot embedded as a PNG when the signal is given."""
from __future__ import annotations

import base64
import html

from ragecg.values import Ecg

from .text import render_markdown
from .plot import PLOT_OMITTED, plot_12lead_png


def render_html(report, ecg: Ecg | None = None) -> str:
    """Self-contained HTML: the plot (when the signal is given), codes, narrative with citations,
    measurements, quality per lead, evidence and versions."""
    import markdown

    md = markdown.Markdown(extensions=["tables"])
    # Text from files and from the LLM is shown, never run: raw HTML is escaped and links are not made.
    md.preprocessors.deregister("html_block")
    for name in ("html", "link", "image_link", "reference", "image_reference", "short_reference", "short_image_ref",
                 "autolink", "automail"):
        if name in md.inlinePatterns:
            md.inlinePatterns.deregister(name)
    body = md.convert(_markdown_without_title(report))
    plot = f'<p id="ecg-plot-omitted"><em>{html.escape(PLOT_OMITTED)}</em></p>'
    if ecg is not None:
        png = base64.b64encode(plot_12lead_png(ecg)).decode("ascii")
        plot = (f'<figure id="ecg-plot"><img alt="12-lead ECG, 25 mm/s, 10 mm/mV" style="max-width:100%" '
                f'src="data:image/png;base64,{png}"/><figcaption>Standard 3x4 layout with lead II rhythm strip; '
                f'25 mm/s, 10 mm/mV.</figcaption></figure>')
    qrows = "".join(f"<tr><td>{ld}</td><td>{q.state}</td><td>{html.escape(q.reason or '')}</td></tr>"
                    for ld, q in report.quality.leads.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ECG report: {html.escape(report.source)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}</style></head>
<body><h1>ECG report: {html.escape(report.source)}</h1>
{plot}
{body}
<h2>Signal quality per lead</h2><table id="quality"><tr><th>lead</th><th>state</th><th>reason</th></tr>{qrows}</table>
</body></html>"""


def _markdown_without_title(report) -> str:
    text = render_markdown(report)
    return text.split("\n", 1)[1] if text.startswith("# ") else text
