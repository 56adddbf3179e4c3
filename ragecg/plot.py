"""The 12-lead plot (standard 3x4 layout + lead II rhythm strip on a 25 mm/s, 10 mm/mV grid) and
the self-contained HTML report."""
from __future__ import annotations

import base64
import html
import io

import numpy as np

from .record import Ecg

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 30.0  # 3 mV per row
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))


def plot_12lead_png(ecg: Ecg, dpi: int = 110) -> bytes:
    """PNG of the standard layout: 4 columns of 2.5 s, 3 rows, then 10 s of lead II."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fs = ecg.sampling_rate_hz
    seconds = min(10.0, ecg.duration_s)
    width_mm, height_mm = seconds * MM_PER_S, ROW_MM * 4
    fig = plt.figure(figsize=(width_mm / 25.4 * 1.6, height_mm / 25.4 * 1.6), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    for x in np.arange(0, width_mm + 0.01, 1.0):
        major = abs(x / 5 - round(x / 5)) < 1e-6
        ax.axvline(x, color="#f4a6a6" if major else "#fbdcdc", lw=0.6 if major else 0.3, zorder=0)
    for y in np.arange(0, height_mm + 0.01, 1.0):
        major = abs(y / 5 - round(y / 5)) < 1e-6
        ax.axhline(y, color="#f4a6a6" if major else "#fbdcdc", lw=0.6 if major else 0.3, zorder=0)
    col_s = seconds / 4
    for r, row in enumerate(LAYOUT):
        base_mm = height_mm - ROW_MM * (r + 0.5)
        for c, lead in enumerate(row):
            i0, i1 = int(c * col_s * fs), int((c + 1) * col_s * fs)
            y = ecg.lead(lead)[i0:i1].astype(float)
            y = y - np.nanmedian(y) if np.isfinite(y).any() else y
            t = np.arange(i0, i1) / fs
            ax.plot(t * MM_PER_S, base_mm + y * MM_PER_MV, color="black", lw=0.7)
            ax.text(c * col_s * MM_PER_S + 1.5, base_mm + 8, lead, fontsize=9, weight="bold")
            if c:
                ax.plot([c * col_s * MM_PER_S] * 2, [base_mm - 3, base_mm + 3], color="black", lw=0.8)
    n = int(seconds * fs)
    y = ecg.lead("II")[:n].astype(float)
    y = y - np.nanmedian(y) if np.isfinite(y).any() else y
    ax.plot(np.arange(n) / fs * MM_PER_S, ROW_MM * 0.5 + y * MM_PER_MV, color="black", lw=0.7)
    ax.text(1.5, ROW_MM * 0.5 + 8, "II (rhythm)", fontsize=9, weight="bold")
    ax.text(width_mm - 2, 1.5, "25 mm/s, 10 mm/mV", fontsize=8, ha="right")
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def render_html(report, ecg: Ecg | None = None) -> str:
    """Self-contained HTML: the plot (when the signal is given), codes, narrative with citations,
    measurements, quality per lead, evidence and versions."""
    import markdown

    body = markdown.markdown(_markdown_without_title(report), extensions=["tables"])
    plot = ""
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
    from .report import render_markdown
    text = render_markdown(report)
    return text.split("\n", 1)[1] if text.startswith("# ") else text
