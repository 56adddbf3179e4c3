"""Beats of a 12-lead record: filtering, multi-lead QRS detection, beat alignment, median beats.

Used by `ragecg.measure`. Every lead is processed at one internal rate (500 Hz): records at
other rates are resampled first (polyphase, zero phase), so that median beats of a 100 Hz record
are aligned with sub-sample precision and all durations use the same sample grid.

Constants and their sources:

* Baseline: zero-phase high-pass at 0.67 Hz (AHA/ACCF/HRS 2007, Kligfield et al., Part I:
  0.67 Hz is acceptable for bidirectional/linear-phase filters; it does not distort the ST segment).
* Diagnostic bandwidth: low-pass at 150 Hz (same statement, adults) where the rate allows it.
* QRS detection band 5-25 Hz: the QRS energy band (Pan & Tompkins 1985 use 5-15 Hz; Thakor et al.
  1984 show QRS power peaks near 10 Hz and extends to ~25 Hz); the multi-lead detection signal is
  the root-sum-square of the band-passed usable leads (spatial magnitude, as multi-lead detectors
  such as Laguna et al. 1994 combine leads), peaks found with NeuroKit2's gradient detector.
* Dominant beats: a beat joins the median when its QRS correlates with the provisional median
  QRS at r >= 0.90 over all usable leads (template-matching threshold used for beat classification
  by Hamilton & Tompkins' open-source analysis software, EP Limited, and in Glasgow-style
  dominant-beat selection); ectopic/aberrant beats therefore do not distort the median.
* Median beat: sample-by-sample median of the aligned dominant beats (the representative-beat
  method of GE 12SL and the Glasgow program; IEC 60601-2-25 measures on representative complexes).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps

INTERNAL_FS = 500.0
HIGHPASS_HZ = 0.67
LOWPASS_HZ = 150.0
QRS_BAND_HZ = (5.0, 25.0)
DOMINANT_CORRELATION = 0.90
ALIGN_MAX_SHIFT_S = 0.012      # beats re-aligned on the template by at most +/-12 ms
QRS_TEMPLATE_HALF_S = 0.06     # +/-60 ms around the fiducial: the QRS for matching (QRS <= 120 ms typical)
MIN_BEATS = 1


@dataclass
class BeatSet:
    """Median beats of the usable leads at INTERNAL_FS and the beat-level facts behind them."""

    fs: float
    leads: list[str]                 # lead names of the rows of `median` (usable leads, standard order)
    median: np.ndarray               # n_leads x n_window, mV, baseline-corrected, 0.67-150 Hz
    fiducial: int                    # index of the alignment point inside the window
    peaks: np.ndarray                # fiducial sample of every detected beat (internal rate)
    dominant: np.ndarray             # bool per beat: used in the median
    rr_s: np.ndarray                 # RR intervals between consecutive detected beats, s
    beats: np.ndarray                # n_dominant x n_leads x n_window (aligned dominant beats)
    signals: np.ndarray              # n_samples x n_leads, filtered, internal rate


def resample_to_internal(x: np.ndarray, fs: float) -> np.ndarray:
    """Columns of `x` resampled from `fs` to INTERNAL_FS (polyphase FIR, zero phase)."""
    if abs(fs - INTERNAL_FS) < 1e-9:
        return x
    ratio = Fraction(INTERNAL_FS / fs).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=0)


def filtered(x: np.ndarray, fs: float, source_fs: float) -> np.ndarray:
    """Baseline-free (0.67 Hz) and, where the source rate allows, 150 Hz low-passed signals."""
    nyq = fs / 2
    hi = min(LOWPASS_HZ, 0.9 * source_fs / 2, 0.9 * nyq)
    sos = sps.butter(2, [HIGHPASS_HZ / nyq, hi / nyq], btype="band", output="sos")
    return sps.sosfiltfilt(sos, x, axis=0)


def detection_signal(x: np.ndarray, fs: float) -> np.ndarray:
    """Root-sum-square over leads of the QRS band (5-25 Hz): one positive multi-lead QRS signal."""
    nyq = fs / 2
    sos = sps.butter(2, [QRS_BAND_HZ[0] / nyq, QRS_BAND_HZ[1] / nyq], btype="band", output="sos")
    band = sps.sosfiltfilt(sos, x, axis=0)
    return np.sqrt(np.sum(band ** 2, axis=1))


def detect_beats(x: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of QRS complexes (peak of the multi-lead QRS-band magnitude)."""
    import neurokit2 as nk

    det = detection_signal(x, fs)
    if not np.isfinite(det).all() or np.max(det) <= 0:
        return np.array([], dtype=int)
    peaks = np.asarray(nk.ecg_findpeaks(det, sampling_rate=int(fs), method="neurokit")["ECG_R_Peaks"], dtype=int)
    if peaks.size == 0:
        return peaks
    # Refine on the magnitude maximum within +/-50 ms (the detector picks the most prominent local max).
    half = int(0.05 * fs)
    out = []
    for p in peaks:
        lo, hi = max(0, p - half), min(len(det), p + half + 1)
        out.append(lo + int(np.argmax(det[lo:hi])))
    return np.unique(np.asarray(out, dtype=int))


def _windows(x: np.ndarray, centres: np.ndarray, pre: int, post: int) -> np.ndarray:
    """beats x leads x window, NaN outside the record."""
    n = x.shape[0]
    idx = centres[:, None] + np.arange(-pre, post)[None, :]
    valid = (idx >= 0) & (idx < n)
    out = x[np.clip(idx, 0, n - 1)]                      # beats x window x leads
    out[~valid] = np.nan
    return np.transpose(out, (0, 2, 1))


def _corr_rows(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pearson r of each beat (flattened over leads x window) with template t; NaN-safe."""
    a = a.reshape(a.shape[0], -1)
    t = t.reshape(-1)
    ok = np.isfinite(a) & np.isfinite(t)[None, :]
    r = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        m = ok[i]
        if m.sum() < 10:
            continue
        u = a[i, m] - a[i, m].mean()
        v = t[m] - t[m].mean()
        den = np.sqrt((u * u).sum() * (v * v).sum())
        r[i] = (u * v).sum() / den if den > 0 else np.nan
    return r


def build_beats(signals_mv: np.ndarray, fs: float, lead_names: list[str]) -> BeatSet | None:
    """Median beats of the given leads (columns of `signals_mv`, source rate `fs`); None if no beat."""
    x = np.asarray(signals_mv, dtype=np.float64)
    x = resample_to_internal(x, fs)
    x = filtered(x, INTERNAL_FS, fs)
    f = INTERNAL_FS
    peaks = detect_beats(x, f)
    if peaks.size == 0:
        return None
    rr = np.diff(peaks) / f
    rr_med = float(np.median(rr)) if rr.size else 1.0
    # Window: enough before the fiducial for a long PR (P onset up to ~0.35 s before R) and after it
    # for the T wave (QT up to ~0.6 s), bounded by the RR so that neighbouring beats are not included.
    pre = int(round(min(0.45, max(0.25, 0.45 * rr_med)) * f))
    post = int(round(min(0.75, max(0.40, 0.85 * rr_med)) * f))
    w = _windows(x, peaks, pre, post)

    # Re-align every beat on the provisional median QRS (cross-correlation, +/-12 ms).
    half = int(QRS_TEMPLATE_HALF_S * f)
    qwin = slice(pre - half, pre + half)
    template = np.nanmedian(w[:, :, qwin], axis=0)
    max_shift = int(ALIGN_MAX_SHIFT_S * f)
    shifts = np.zeros(len(peaks), dtype=int)
    if len(peaks) >= 3:
        tq = template - np.nanmean(template, axis=1, keepdims=True)
        best = np.full(len(peaks), -np.inf)
        for s in range(-max_shift, max_shift + 1):
            seg = _windows(x, peaks + s, half, half)     # beats x leads x 2*half
            seg = seg - np.nanmean(seg, axis=2, keepdims=True)
            score = np.nansum(seg * tq[None], axis=(1, 2))
            better = score > best
            best[better] = score[better]
            shifts[better] = s
        peaks = peaks + shifts
        w = _windows(x, peaks, pre, post)
        template = np.nanmedian(w[:, :, qwin], axis=0)
    r = _corr_rows(w[:, :, qwin], template)
    dominant = r >= DOMINANT_CORRELATION
    if dominant.sum() < max(MIN_BEATS, min(3, len(peaks))) and len(peaks) > 0:
        # No dominant morphology at r >= 0.90 (noisy record): keep the beats closest to the template.
        order = np.argsort(-np.nan_to_num(r, nan=-1))
        dominant = np.zeros(len(peaks), dtype=bool)
        dominant[order[: max(1, len(peaks) // 2)]] = True
    beats = w[dominant]
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(beats, axis=0)
    median = np.where(np.isfinite(median), median, 0.0)
    return BeatSet(fs=f, leads=list(lead_names), median=median, fiducial=pre, peaks=peaks, dominant=dominant,
                   rr_s=np.diff(peaks) / f, beats=beats, signals=x)


# --------------------------------------------------------------------------------------------
# Global wave boundaries on the median beats (all usable leads together)
# --------------------------------------------------------------------------------------------

DELINEATION_LOWPASS_HZ = 40.0   # slopes for QRS boundaries (Laguna et al. 1994 low-pass differentiator, ~40 Hz)
SLOW_WAVE_LOWPASS_HZ = 15.0     # P and T boundaries: their energy lies below ~15 Hz (Laguna 1994; Martinez 2004 scale 2^4)
QRS_ON_FRACTION = 0.05          # Martinez et al. 2004 (IEEE TBME 51:570) QRS onset threshold xi_QRSon = 0.05
QRS_OFF_FRACTION = 0.125        # Martinez et al. 2004 xi_QRSend = 0.125
P_ON_FRACTION = 0.5             # Martinez et al. 2004 xi_Pon = 0.5 (of the P wave's first slope maximum)
P_OFF_FRACTION = 0.9            # Martinez et al. 2004 xi_Pend = 0.9 (of the P wave's last slope maximum)
T_ON_FRACTION = 0.25            # Martinez et al. 2004 xi_Ton = 0.25 (of the T wave's first slope maximum)
T_OFF_FRACTION = 0.4            # Martinez et al. 2004 xi_Tend = 0.4 (of the T wave's last slope maximum)
MIN_PR_S = 0.04                 # P wave must end >= 40 ms... search stops 20 ms before QRS onset
MAX_PR_S = 0.40                 # P onset searched up to 400 ms before QRS onset (PR rarely > 0.40 s)


@dataclass
class Boundaries:
    """Global fiducial points (sample indices in the median-beat window) and how they were found."""

    qrs_on: int
    qrs_off: int
    t_on: int | None
    t_peak: int | None
    t_off: int | None
    p_on: int | None
    p_peak: int | None
    p_off: int | None
    notes: dict[str, str]


def _lowpass_rows(m: np.ndarray, fs: float, hz: float) -> np.ndarray:
    sos = sps.butter(2, hz / (fs / 2), btype="low", output="sos")
    return sps.sosfiltfilt(sos, m, axis=1)


def spatial_velocity(m: np.ndarray, fs: float, hz: float) -> np.ndarray:
    """sqrt(sum over leads of (d/dt of the low-passed median beat)^2), mV/s."""
    d = np.gradient(_lowpass_rows(m, fs, hz), axis=1) * fs
    return np.sqrt(np.sum(d * d, axis=0))


def _walk(v: np.ndarray, start: int, stop: int, thr: float) -> int | None:
    """First index from `start` towards `stop` (exclusive, either direction) where v < thr."""
    step = 1 if stop > start else -1
    for i in range(start, stop, step):
        if v[i] < thr:
            return i
    return None


def delineate_median(m: np.ndarray, fs: float, fiducial: int, rr_s: float) -> Boundaries:
    """QRS on/off, T peak/off, P on/peak/off of the multi-lead median beat (rows = leads)."""
    notes: dict[str, str] = {}
    n = m.shape[1]
    sv = spatial_velocity(m, fs, DELINEATION_LOWPASS_HZ)
    ms = lambda s: int(round(s * fs))  # noqa: E731

    # QRS: slope maximum near the fiducial, walk out until the slope falls below the fraction.
    lo, hi = max(1, fiducial - ms(0.06)), min(n - 1, fiducial + ms(0.06))
    pk = lo + int(np.argmax(sv[lo:hi]))
    svmax = sv[pk]
    on = _walk(sv, pk, max(0, fiducial - ms(0.20)), QRS_ON_FRACTION * svmax)
    off = _walk(sv, pk, min(n, fiducial + ms(0.24)), QRS_OFF_FRACTION * svmax)
    if on is None:
        on = max(0, fiducial - ms(0.20))
        notes["qrs_on"] = "QRS onset not reached within 200 ms before the QRS peak"
    if off is None:
        off = min(n - 1, fiducial + ms(0.24))
        notes["qrs_off"] = "QRS end not reached within 240 ms after the QRS peak"

    # T: slow-wave spatial velocity after the QRS; T peak = largest spatial magnitude after J+80 ms.
    slow = _lowpass_rows(m, fs, SLOW_WAVE_LOWPASS_HZ)
    ref_qrs = np.mean(slow[:, max(0, on - ms(0.01)):on + 1], axis=1, keepdims=True)
    t_lo = min(n - 1, off + ms(0.08))
    t_hi = min(n, fiducial + ms(min(0.70, 0.85 * rr_s)))
    t_on = t_peak = t_off = None
    if t_hi - t_lo > ms(0.06):
        mag = np.sqrt(np.sum((slow[:, t_lo:t_hi] - ref_qrs) ** 2, axis=0))
        t_peak = t_lo + int(np.argmax(mag))
        svt = np.sqrt(np.sum((np.gradient(slow, axis=1) * fs) ** 2, axis=0))
        # last slope maximum of T: the largest spatial velocity between T peak and the window end
        if t_hi - t_peak > 2:
            k = t_peak + int(np.argmax(svt[t_peak:t_hi]))
            t_off = _walk(svt, k, t_hi, T_OFF_FRACTION * svt[k])
        if t_off is None:
            notes["t_off"] = "T end not found before the next beat"
        start = off + ms(0.04)   # past the QRS tail of the slow (15 Hz) signal
        if t_peak - start > 2:
            k = start + int(np.argmax(svt[start:t_peak]))
            t_on = _walk(svt, k, off, T_ON_FRACTION * svt[k])
    else:
        notes["t_off"] = "no room for a T wave in the beat window"

    # P: before the QRS onset, after the previous T end (estimated from the RR).
    p_on = p_peak = p_off = None
    p_hi = on - ms(0.02)
    p_lo = max(1, on - ms(MAX_PR_S))
    if t_off is not None:
        p_lo = max(p_lo, t_off - ms(rr_s) + ms(0.02))
    if p_hi - p_lo > ms(0.06):
        seg = slow[:, p_lo:p_hi]
        base = np.linspace(seg[:, :1], seg[:, -1:], seg.shape[1], axis=1)[:, :, 0] if seg.shape[1] > 1 else seg
        mag = np.sqrt(np.sum((seg - ref_qrs) ** 2, axis=0))
        p_peak = p_lo + int(np.argmax(mag))
        svp = np.sqrt(np.sum((np.gradient(slow, axis=1) * fs) ** 2, axis=0))
        # first slope maximum before the peak, last after it
        if p_peak - p_lo > 2 and p_hi - p_peak > 2:
            k1 = p_lo + int(np.argmax(svp[p_lo:p_peak]))
            k2 = p_peak + int(np.argmax(svp[p_peak:p_hi]))
            p_on = _walk(svp, k1, p_lo - 1, P_ON_FRACTION * svp[k1])
            p_off = _walk(svp, k2, p_hi, P_OFF_FRACTION * svp[k2])
        del base
    return Boundaries(qrs_on=on, qrs_off=off, t_on=t_on, t_peak=t_peak, t_off=t_off, p_on=p_on, p_peak=p_peak,
                      p_off=p_off, notes=notes)
