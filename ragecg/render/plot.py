"""The 12-lead plot: standard 3x4 layout + lead II rhythm strip on a 25 mm/s, 10 mm/mV grid."""
from __future__ import annotations

import io

import numpy as np

from ragecg.values import Ecg

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 30.0  # 3 mV per row
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))


def layout_size_mm(ecg: Ecg) -> tuple[float, float]:
    """Width and height of the standard layout in mm at 25 mm/s and 10 mm/mV (at most 10 s wide)."""
    return min(10.0, ecg.duration_s) * MM_PER_S, ROW_MM * 4


def draw_12lead(ax, ecg: Ecg) -> None:
    """Draw the 3x4 layout + lead II rhythm strip on `ax` in mm (x: 0..width, y: 0..height): 1 mm grid,
    5 mm major lines, 25 mm/s, 10 mm/mV. Whoever sizes the axes decides the printed scale."""
    fs = ecg.sampling_rate_hz
    width_mm, height_mm = layout_size_mm(ecg)
    seconds = width_mm / MM_PER_S
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    for axis_line, extent in ((ax.vlines, (0, height_mm, width_mm)), (ax.hlines, (0, width_mm, height_mm))):
        lo, hi, size = extent
        ticks = np.arange(0, size + 0.01, 1.0)
        major = np.isclose(ticks % 5, 0) | np.isclose(ticks % 5, 5)
        axis_line(ticks[~major], lo, hi, color="#fbdcdc", lw=0.3, zorder=0)
        axis_line(ticks[major], lo, hi, color="#f4a6a6", lw=0.6, zorder=0)
    col_s = seconds / 4
    for r, row in enumerate(LAYOUT):
        base_mm = height_mm - ROW_MM * (r + 0.5)
        for c, lead in enumerate(row):
            i0, i1 = int(c * col_s * fs), int((c + 1) * col_s * fs)
            y = _centred(ecg.lead(lead)[i0:i1])
            t = np.arange(i0, i1) / fs
            ax.plot(t * MM_PER_S, base_mm + y * MM_PER_MV, color="black", lw=0.7)
            ax.text(c * col_s * MM_PER_S + 1.5, base_mm + 8, lead, fontsize=9, weight="bold")
            if c:
                ax.plot([c * col_s * MM_PER_S] * 2, [base_mm - 3, base_mm + 3], color="black", lw=0.8)
    n = int(seconds * fs)
    y = _centred(ecg.lead("II")[:n])
    ax.plot(np.arange(n) / fs * MM_PER_S, ROW_MM * 0.5 + y * MM_PER_MV, color="black", lw=0.7)
    ax.text(1.5, ROW_MM * 0.5 + 8, "II (rhythm)", fontsize=9, weight="bold")
    ax.text(width_mm - 2, 1.5, "25 mm/s, 10 mm/mV", fontsize=8, ha="right")
    ax.axis("off")


def _centred(values: np.ndarray) -> np.ndarray:
    y = values.astype(float)
    return y - np.nanmedian(y) if np.isfinite(y).any() else y


def plot_12lead_png(ecg: Ecg, dpi: int = 110) -> bytes:
    """PNG of the standard layout: 4 columns of 2.5 s, 3 rows, then 10 s of lead II."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width_mm, height_mm = layout_size_mm(ecg)
    fig = plt.figure(figsize=(width_mm / 25.4 * 1.6, height_mm / 25.4 * 1.6), dpi=dpi)
    draw_12lead(fig.add_axes([0, 0, 1, 1]), ecg)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


PLOT_OMITTED = ("The 12-lead plot is omitted: this report was rendered from a saved report.json without the "
                "signal (re-render with `ragecg export REPORT.json --record PATH` to include it).")
