"""Beats of a 12-lead record: filtering, multi-lead QRS detection, beat alignment, median beats.

Used by `ragecg.signal.measure`. Every lead is processed at one internal rate (500 Hz): records at
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
* Dominant beats: a beat joins the median when its QRS (fiducial +/- 60 ms, all usable leads)
  correlates with the provisional median QRS at r >= 0.90, the upper band of a "very strong"
  Pearson correlation (Evans 1996); ectopic/aberrant beats therefore do not distort the median.
* Median beat: sample-by-sample median of the aligned dominant beats (the representative-beat
  method of GE 12SL and the Glasgow program; IEC 60601-2-25 measures on representative complexes).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from .nk_findpeaks import ecg_findpeaks     # NeuroKit2's detector without NeuroKit2's package import

INTERNAL_FS = 500.0
HIGHPASS_HZ = 0.67
LOWPASS_HZ = 150.0
QRS_BAND_HZ = (5.0, 25.0)
PT_THRESHOLD_FRACTION = 0.25   # Pan & Tompkins 1985: THRESHOLD = NPK + 0.25 (SPK - NPK)
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


@lru_cache(maxsize=64)
def butter_sos(order: int, wn: tuple[float, ...] | float, btype: str) -> np.ndarray:
    """`scipy.signal.butter(..., output="sos")`, designed once per (order, band, type): the same few filters
    run on every lead of every record. The array is shared: do not change it."""
    return sps.butter(order, wn, btype=btype, output="sos")


@lru_cache(maxsize=16)
def butter_ba(order: int, wn: float, btype: str) -> tuple[np.ndarray, np.ndarray]:
    """`scipy.signal.butter(...)` as (b, a), designed once (see `butter_sos`)."""
    return sps.butter(order, wn, btype=btype)


def nan_median(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Median along `axis`, ignoring NaN (padding outside the record; NaN where all are NaN). When nothing
    is missing, without NumPy's masked-array path that `np.nanmedian` takes for short rows."""
    n = a.shape[axis]
    if n and not np.isnan(a).any():
        # np.median's value (the middle one, or the mean of the two middle ones) from a sort, which is
        # several times faster than its partition along a leading axis
        s = np.sort(a, axis=axis)
        h = n // 2
        return np.take(s, h, axis=axis) if n % 2 else (np.take(s, h - 1, axis=axis) + np.take(s, h, axis=axis)) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def median_of(values) -> float:
    """Median of a short run of finite numbers (`np.median`'s value: the middle one, or the mean of the two
    middle ones), without NumPy's per-call overhead: the per-beat and per-lead medians are many and short."""
    s = sorted(values.tolist() if isinstance(values, np.ndarray) else values)
    h = len(s) // 2
    return float(s[h]) if len(s) % 2 else (s[h - 1] + s[h]) / 2


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
    sos = butter_sos(2, (HIGHPASS_HZ / nyq, hi / nyq), "band")
    return sps.sosfiltfilt(sos, x, axis=0)


def qrs_band(x: np.ndarray, fs: float) -> np.ndarray:
    """Each lead (column) in the QRS band (5-25 Hz)."""
    nyq = fs / 2
    return sps.sosfiltfilt(butter_sos(2, (QRS_BAND_HZ[0] / nyq, QRS_BAND_HZ[1] / nyq), "band"), x, axis=0)


def detection_signal(x: np.ndarray, fs: float) -> np.ndarray:
    """Root-sum-square over leads of the QRS band (5-25 Hz): one positive multi-lead QRS signal."""
    return np.sqrt(np.sum(qrs_band(x, fs) ** 2, axis=1))


def detect_beats(x: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of QRS complexes (peak of the multi-lead QRS-band magnitude)."""
    return beats_in_detection_signal(detection_signal(x, fs), fs)


def beats_in_detection_signal(det: np.ndarray, fs: float) -> np.ndarray:
    """`detect_beats` on a detection signal (`detection_signal`, or the root-sum-square of some leads' `qrs_band`)."""
    if not np.isfinite(det).all() or np.max(det) <= 0:
        return np.array([], dtype=int)
    peaks = np.asarray(ecg_findpeaks(det, sampling_rate=int(fs), method="neurokit")["ECG_R_Peaks"], dtype=int)
    if peaks.size == 0:
        return peaks
    # Refine on the magnitude maximum within +/-50 ms (the detector picks the most prominent local max).
    half = int(0.05 * fs)
    out = []
    for p in peaks:
        lo, hi = max(0, p - half), min(len(det), p + half + 1)
        out.append(lo + int(np.argmax(det[lo:hi])))
    peaks = np.unique(np.asarray(out, dtype=int))
    # Pan & Tompkins (1985) threshold: a QRS rises above noise + 0.25 x (signal level - noise level);
    # the gradient detector alone also fires on flat stretches between slow beats.
    noise, level = float(np.median(det)), float(np.median(det[peaks]))
    return peaks[det[peaks] >= noise + PT_THRESHOLD_FRACTION * (level - noise)]


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
    template = nan_median(w[:, :, qwin])
    max_shift = int(ALIGN_MAX_SHIFT_S * f)
    shifts = np.zeros(len(peaks), dtype=int)
    if len(peaks) >= 3:
        tq = template - np.nanmean(template, axis=1, keepdims=True)
        best = np.full(len(peaks), -np.inf)
        wide = _windows(x, peaks, half + max_shift, half + max_shift)
        # NaN only where a window leaves the record: without any, the plain mean and sum (the same values)
        mean, total = (np.nanmean, np.nansum) if np.isnan(wide).any() or np.isnan(tq).any() else (np.mean, np.sum)
        for s in range(-max_shift, max_shift + 1):
            seg = wide[:, :, max_shift + s:max_shift + s + 2 * half]     # beats x leads x 2*half, shifted by s
            seg = seg - mean(seg, axis=2, keepdims=True)
            score = total(seg * tq[None], axis=(1, 2))
            better = score > best
            best[better] = score[better]
            shifts[better] = s
        peaks = peaks + shifts
        w = _windows(x, peaks, pre, post)
        template = nan_median(w[:, :, qwin])
    r = _corr_rows(w[:, :, qwin], template)
    dominant = r >= DOMINANT_CORRELATION
    if dominant.sum() < max(MIN_BEATS, min(3, len(peaks))) and len(peaks) > 0:
        # No dominant morphology at r >= 0.90 (noisy record): keep the beats closest to the template.
        order = np.argsort(-np.nan_to_num(r, nan=-1))
        dominant = np.zeros(len(peaks), dtype=bool)
        dominant[order[: max(1, len(peaks) // 2)]] = True
    complete = ~np.isnan(w).any(axis=(1, 2))
    if np.sum(dominant & complete) >= 3:   # beats cut by the record's ends only when needed
        dominant &= complete
    beats = w[dominant]
    median = nan_median(beats)
    median = np.where(np.isfinite(median), median, 0.0)
    return BeatSet(fs=f, leads=list(lead_names), median=median, fiducial=pre, peaks=peaks, dominant=dominant,
                   rr_s=np.diff(peaks) / f, beats=beats, signals=x)


# --------------------------------------------------------------------------------------------
# Global wave boundaries on the median beats
# --------------------------------------------------------------------------------------------
# Rule (documented in docs/benchmarks.md): every boundary is first found in each lead's median beat
# with the wavelet delineator of Martinez et al. (IEEE TBME 2004;51:570-581), then the global
# boundary is the MEDIAN over the leads where it was found (at least MIN_LEADS_FOR_MEDIAN, else the
# multi-lead spatial-slope estimate below); for the QRS, the mean of that median and the
# spatial-slope boundary (see delineate_median). The median is robust to a lead that mis-delineates (a
# low-amplitude or noisy lead) and is what the lead-by-lead annotations of LUDB agree on. The
# spatial slope (root-sum-square of all leads' wavelet details) gives the search windows.
SLOW_WAVE_LOWPASS_HZ = 15.0     # P and T waves (peaks, amplitudes): their energy lies below ~15 Hz (Laguna 1994)
# Slopes: the quadratic-spline dyadic wavelet (a trous; Mallat & Zhong 1992) at the scales Martinez'
# thresholds were defined on: 2^2 for the QRS and 2^4 for P and T at 250 Hz = levels 3 and 5 at 500 Hz.
QRS_SCALE_LEVEL = 3
PT_SCALE_LEVEL = 5
# Martinez 2004: a boundary is where the slope falls below xi x the slope maximum of the wave's first
# (onset) or last (offset) flank, or at the slope's local minimum if that comes first; the first/last
# significant QRS slope maxima exceed gamma_pre / gamma_post x the largest one.
QRS_ON_FRACTION = 0.05          # xi_QRSon
QRS_OFF_FRACTION = 0.125        # xi_QRSend
QRS_PRE_SIGNIFICANT = 0.06      # gamma_QRSpre
QRS_POST_SIGNIFICANT = 0.09     # gamma_QRSpost
P_ON_FRACTION = 0.5             # xi_Pon
P_OFF_FRACTION = 0.9            # xi_Pend
T_ON_FRACTION = 0.25            # xi_Ton
T_OFF_FRACTION = 0.4            # xi_Tend
MIN_WAVE_GAP_S = 0.012          # a quiet stretch shorter than 12 ms cannot separate two waves (IEC 60601-2-51
                                # Annex GG.5: 12 ms minimum observable wave duration)
T_FLANK_S = 0.15                # a T flank (peak to end) lasts < 150 ms (the whole T ~ 150-250 ms; Surawicz &
                                # Knilans, Chou's Electrocardiography in Clinical Practice, 6th ed.)
P_FLANK_S = 0.12                # a P flank lasts < 120 ms (P duration < 120 ms normal, AHA/ACCF/HRS 2009 Part V)
MAX_PR_S = 0.40                 # P searched up to 400 ms before the QRS onset (PR > 0.40 s is rare)
MIN_PR_S = 0.12                 # shortest normal PR (AHA/ACCF/HRS 2009 Part V): bounds the T search
MAX_QT_S = 0.70                 # T search ends at most 700 ms after the QRS
FLAT_T_MV = 0.10                # T below 0.1 mV is "flat" (Minnesota Code 5-3 uses 1 mm = 0.1 mV): its end
                                # is not used when >= MIN_LEADS_FOR_MEDIAN leads have a clear T
MIN_LEADS_FOR_MEDIAN = 3


@dataclass
class Boundaries:
    """Global fiducial points (sample indices in the median-beat window) and how they were found."""

    qrs_on: int
    qrs_off: int
    j_point: int                    # ST reference: the later of qrs_off and the all-lead slope's QRS end
    t_on: int | None
    t_peak: int | None
    t_off: int | None
    p_on: int | None
    p_peak: int | None
    p_off: int | None
    notes: dict[str, str]
    leads_used: dict[str, int]      # boundary -> number of leads whose median gave it (0: spatial slope)
    qrs_on_leads: int | None = None   # QRS window of the per-lead wave measurements (Q, R, S, ST reference):
    qrs_off_leads: int | None = None  # the median over leads alone (None: same as qrs_on / qrs_off)
    # each lead's own P wave (rows of the median beats; None where that lead's boundary was not found):
    # the per-lead boundaries whose median over leads gives p_on / p_off
    p_on_by_lead: list[int | None] | None = None
    p_peak_by_lead: list[int] | None = None
    p_off_by_lead: list[int | None] | None = None


def _lowpass_rows(m: np.ndarray, fs: float, hz: float) -> np.ndarray:
    return sps.sosfiltfilt(butter_sos(2, hz / (fs / 2), "low"), m, axis=1)


def wavelet_detail(m: np.ndarray, level: int) -> np.ndarray:
    """Rows of `m` through the quadratic-spline dyadic wavelet at scale 2^level (a trous algorithm,
    filters h = [1 3 3 1]/8 and g = [2 -2] with 2^(j-1) - 1 holes): a smoothed derivative."""
    return wavelet_details(m, (level,))[0]


def wavelet_details(m: np.ndarray, levels: tuple[int, ...]) -> list[np.ndarray]:
    """`wavelet_detail` at each of `levels`, from one pass of the smoothing cascade."""
    from scipy import ndimage

    a = np.asarray(m, dtype=np.float64)
    out: dict[int, np.ndarray] = {}
    top = max(levels)
    for p in range(top):
        step = 2 ** p
        if p + 1 in levels:
            g = np.zeros(step + 1)
            g[0], g[-1] = 2.0, -2.0
            out[p + 1] = ndimage.convolve1d(a, g, axis=1, mode="nearest")
        if p + 1 < top:
            h = np.zeros(3 * step + 1)
            h[0] = h[-1] = 1.0 / 8
            h[step] = h[2 * step] = 3.0 / 8
            a = ndimage.convolve1d(a, h, axis=1, mode="nearest")
    return [out[level] for level in levels]


def _walk(v: np.ndarray, start: int, stop: int, thr: float) -> int | None:
    """From `start` towards `stop` (exclusive, either direction): first index where v < thr or
    where v has a local minimum (Martinez 2004 boundary rule); None if neither happens."""
    step = 1 if stop > start else -1
    n = len(v)
    # the samples the walk can read (up to one beyond the last candidate), as Python floats: the loop
    # runs per sample, and reading floats from a list is several times faster than from the array
    lo = start if step == 1 else max(0, stop)
    vals = v[lo:(min(n, stop + 1) if step == 1 else start + 1)].tolist()
    thr, v_start = float(thr), vals[start - lo]
    for i in range(start + step, stop, step):
        vi = vals[i - lo]
        if vi < thr:
            return i
        j = i + step
        if 0 <= j < n and vi <= vals[i - step - lo] and vi <= vals[j - lo] and vi < v_start:
            return i
    return None


def _local_maxima(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    lo, hi = max(1, lo), min(len(v) - 1, hi)
    seg = v[lo - 1:hi + 1]
    if seg.size < 3:
        return np.array([], dtype=int)
    k = np.where((seg[1:-1] >= seg[:-2]) & (seg[1:-1] > seg[2:]))[0]
    return k + lo


def _flank_max(v: np.ndarray, lo: int, hi: int) -> int | None:
    """Largest local maximum of v in [lo, hi) (not at the window edge); None if none."""
    k = _local_maxima(v, lo, hi)
    if k.size == 0:
        return None
    return int(k[np.argmax(v[k])])


def qrs_bounds(v: np.ndarray, fiducial: int, fs: float) -> tuple[int | None, int | None]:
    """QRS onset and end on one slope signal |W| (one lead, or the spatial slope of all leads).

    The QRS is made of the slope maxima around the largest one that are significant (gamma) and
    joined to it: the slope never stays below the onset level (xi_QRSon x maximum) for MIN_WAVE_GAP_S
    in between (where it does, the QRS has not yet started - a P wave - or has already ended).
    """
    ms = lambda s: int(round(s * fs))  # noqa: E731
    n = len(v)
    lo, hi = max(1, fiducial - ms(0.12)), min(n - 1, fiducial + ms(0.12))
    c_lo, c_hi = max(lo, fiducial - ms(0.06)), min(hi, fiducial + ms(0.06))
    if c_hi - c_lo < 2:
        return None, None
    pk = c_lo + int(np.argmax(v[c_lo:c_hi]))
    vmax = v[pk]
    if vmax <= 0:
        return None, None
    floor, gap = QRS_ON_FRACTION * vmax, ms(MIN_WAVE_GAP_S)

    def joined(a: int, b: int) -> bool:
        low = np.concatenate(([False], v[a:b + 1] < floor, [False])).astype(np.int8)
        edges = np.flatnonzero(np.diff(low))
        return bool(np.all(edges[1::2] - edges[::2] < gap)) if edges.size else True

    peaks = _local_maxima(v, lo, hi)
    k_first = pk
    for k in sorted((k for k in peaks if k < pk), reverse=True):
        if v[k] >= QRS_PRE_SIGNIFICANT * vmax and joined(k, pk):
            k_first = k
    k_last = pk
    for k in sorted(k for k in peaks if k > pk):
        if v[k] >= QRS_POST_SIGNIFICANT * vmax and joined(pk, k):
            k_last = k
    on = _walk(v, k_first, max(0, fiducial - ms(0.20)), QRS_ON_FRACTION * v[k_first])
    off = _walk(v, k_last, min(n, fiducial + ms(0.24)), QRS_OFF_FRACTION * v[k_last])
    return on, off


def _wave_bounds(v: np.ndarray, peak: int, lo: int, hi: int, flank: int, xi_on: float, xi_off: float
                 ) -> tuple[int | None, int | None]:
    """Onset/offset of a P or T wave with its peak at `peak`, searched inside [lo, hi)."""
    on = off = None
    k1 = _flank_max(v, max(lo, peak - flank), peak)
    if k1 is not None:
        on = _walk(v, k1, lo - 1, xi_on * v[k1])
    k2 = _flank_max(v, peak, min(hi, peak + flank))
    if k2 is not None:
        off = _walk(v, k2, hi, xi_off * v[k2])
    return on, off


def _median_or(values: list[int | None], fallback: int | None) -> tuple[int | None, int]:
    vals = [v for v in values if v is not None]
    if len(vals) >= MIN_LEADS_FOR_MEDIAN:
        return int(round(median_of(vals))), len(vals)
    return fallback, 0


def _p_peak(slow: np.ndarray, lo: int, hi: int) -> tuple[int, np.ndarray]:
    """Peak of the multi-lead P deflection in [lo, hi) and each lead's deviation from the straight
    baseline joining the window's ends (TP level to PR level)."""
    seg = slow[:, lo:hi]
    w = np.linspace(0.0, 1.0, seg.shape[1])[None, :]
    dev = seg - (seg[:, :1] * (1 - w) + seg[:, -1:] * w)
    return lo + int(np.argmax(np.sum(dev ** 2, axis=0))), dev


@dataclass
class _PWave:
    on: int | None
    peak: int | None
    off: int | None
    n_on: int
    n_off: int
    lead_on: list[int | None] | None = None
    lead_peak: list[int] | None = None
    lead_off: list[int | None] | None = None


def _p_wave(slow, wpt, sv_pt, lo: int, hi: int, fs: float) -> _PWave:
    """P onset, peak, offset (global) in [lo, hi); numbers of leads behind onset and offset; each lead's
    own onset, peak and offset (the per-lead wavelet boundaries, Martinez et al. 2004, single-lead rules)."""
    if hi - lo <= int(0.04 * fs):
        return _PWave(None, None, None, 0, 0)
    flank = int(round(P_FLANK_S * fs))
    peak, dev = _p_peak(slow, lo, hi)
    g_on, g_off = _wave_bounds(sv_pt, peak, lo, hi, flank, P_ON_FRACTION, P_OFF_FRACTION)
    ons, offs, pks = [], [], []
    for i in range(slow.shape[0]):
        pk = lo + int(np.argmax(np.abs(dev[i])))
        a, b = _wave_bounds(wpt[i], pk, lo, hi, flank, P_ON_FRACTION, P_OFF_FRACTION)
        ons.append(a)
        offs.append(b)
        pks.append(pk)
    on, n_on = _median_or(ons, g_on)
    off, n_off = _median_or(offs, g_off)
    if on is not None and off is not None and off <= on:
        return _PWave(None, peak, None, 0, 0)
    return _PWave(on, peak, off, n_on, n_off, ons, pks, offs)


def delineate_median(m: np.ndarray, fs: float, fiducial: int, rr_s: float) -> Boundaries:
    """QRS on/off, T on/peak/off, P on/peak/off of the median beats (rows = leads)."""
    notes: dict[str, str] = {}
    used: dict[str, int] = {}
    n = m.shape[1]
    ms = lambda s: int(round(s * fs))  # noqa: E731
    shift = int(round(np.log2(fs / 500.0)))
    wq, wpt = (np.abs(d) for d in wavelet_details(m, (QRS_SCALE_LEVEL + shift, PT_SCALE_LEVEL + shift)))
    sv_q = np.sqrt(np.sum(wq ** 2, axis=0))
    sv_pt = np.sqrt(np.sum(wpt ** 2, axis=0))

    # QRS
    g_on, g_off = qrs_bounds(sv_q, fiducial, fs)
    per_lead = [qrs_bounds(wq[i], fiducial, fs) for i in range(m.shape[0])]
    on, used["qrs_on"] = _median_or([b[0] for b in per_lead], g_on)
    off, used["qrs_off"] = _median_or([b[1] for b in per_lead], g_off)
    # Global QRS = mean of the two estimates: the median over leads (robust to one noisy or
    # mis-delineated lead) and the spatial-velocity boundary (root-sum-square of all leads' slopes;
    # it sees a terminal wave present in a few leads only, which the median drops - the global QRS
    # runs from the earliest onset to the latest end over simultaneous leads, CSE Working Party,
    # Willems et al. 1985 / AHA/ACCF/HRS 2009 Part I). On LUDB 1-100 (non-paced, design set) the
    # mean of the two had a smaller boundary error SD than either (onset 6.8 vs 6.5/8.2 ms, end 6.4 vs
    # 8.0/7.4 ms) - see docs/benchmarks.md "Measurement". Except where a terminal wave is seen: when
    # >= MIN_LEADS_FOR_MEDIAN leads end >= MIN_WAVE_GAP_S (12 ms, the shortest observable wave) after the
    # median end, the global end is the spatial-velocity end (the latest end over the leads, not one
    # lead's noise): averaging cut off the R' of V1 and the slurred S of I/V6 in RBBB (PTB-XL fold 9:
    # 12 of 55 CRBBB records measured < 130 ms; LUDB 1-100, non-paced: +1.2 +/- 10.9 ms vs +0.3 +/- 10.7).
    on_leads, off_leads = on, off
    if on is not None and g_on is not None and used["qrs_on"]:
        on = int(round((on + g_on) / 2))
    if off is not None and g_off is not None and used["qrs_off"]:
        ends = [b[1] for b in per_lead if b[1] is not None]
        late = sum(1 for e in ends if e >= off + ms(MIN_WAVE_GAP_S))
        if late >= MIN_LEADS_FOR_MEDIAN and g_off > off:
            off = g_off
        else:
            off = int(round((off + g_off) / 2))
    if on is None:
        on = max(0, fiducial - ms(0.06))
        notes["qrs_on"] = "QRS onset not found; 60 ms before the QRS peak assumed"
    if off is None:
        off = min(n - 1, fiducial + ms(0.06))
        notes["qrs_off"] = "QRS end not found; 60 ms after the QRS peak assumed"

    slow = _lowpass_rows(m, fs, SLOW_WAVE_LOWPASS_HZ)
    ref_qrs = np.mean(slow[:, max(0, on - ms(0.01)):on + 1], axis=1, keepdims=True)
    rr = ms(rr_s)

    # P (first pass): up to MAX_PR_S before the QRS onset, at most 45 % of the RR back.
    p_hi = on - ms(0.01)
    p_lo = max(1, on - min(ms(MAX_PR_S), int(0.45 * rr)))
    pw = _p_wave(slow, wpt, sv_pt, p_lo, p_hi, fs)
    p_on, p_off, used["p_on"], used["p_off"] = pw.on, pw.off, pw.n_on, pw.n_off

    # T: from J+80 ms to the next beat's P onset (this beat's P onset + RR; without a P wave, the next
    # QRS onset minus MIN_PR_S), at most MAX_QT_S after the QRS peak.
    t_lo = min(n - 1, off + ms(0.08))
    nxt = (p_on + rr) if p_on is not None else (on + rr - ms(MIN_PR_S))
    t_hi = min(n, fiducial + ms(MAX_QT_S), nxt)
    t_on = t_peak = t_off = None
    if t_hi - t_lo > ms(0.06):
        dev = slow[:, t_lo:t_hi] - ref_qrs
        t_peak = t_lo + int(np.argmax(np.sum(dev ** 2, axis=0)))
        flank = ms(T_FLANK_S)
        g_t_on, g_t_off = _wave_bounds(sv_pt, t_peak, off + ms(0.04), t_hi, flank, T_ON_FRACTION, T_OFF_FRACTION)
        starts, ends, clear = [], [], []
        for i in range(m.shape[0]):
            k = int(np.argmax(np.abs(dev[i])))
            a, e = _wave_bounds(wpt[i], t_lo + k, off + ms(0.04), t_hi, flank, T_ON_FRACTION, T_OFF_FRACTION)
            starts.append(a)
            ends.append(e)
            clear.append(abs(dev[i, k]) >= FLAT_T_MV)
        if sum(1 for e, c in zip(ends, clear) if c and e is not None) >= MIN_LEADS_FOR_MEDIAN:
            ends = [e for e, c in zip(ends, clear) if c]
            starts = [a for a, c in zip(starts, clear) if c]
        t_off, used["t_off"] = _median_or(ends, g_t_off)
        t_on, used["t_on"] = _median_or(starts, g_t_on)
        if t_off is None:
            notes["t_off"] = "T end not found before the next beat"
    else:
        notes["t_off"] = "no room for a T wave in the beat window"

    # P (second pass) when the previous beat's T wave reaches into the P search window.
    if t_off is not None and t_off - rr + ms(0.02) > p_lo:
        p_lo = t_off - rr + ms(0.02)
        pw = _p_wave(slow, wpt, sv_pt, p_lo, p_hi, fs)
        p_on, p_off, used["p_on"], used["p_off"] = pw.on, pw.off, pw.n_on, pw.n_off
    off_med = off_leads if off_leads is not None else off
    j_point = max(off_med, g_off) if g_off is not None else off_med
    return Boundaries(qrs_on=on, qrs_off=off, j_point=j_point, t_on=t_on, t_peak=t_peak, t_off=t_off,
                      p_on=p_on, p_peak=pw.peak, p_off=p_off, notes=notes, leads_used=used,
                      qrs_on_leads=on_leads if on_leads is not None else on,
                      qrs_off_leads=off_leads if off_leads is not None else off,
                      p_on_by_lead=pw.lead_on, p_peak_by_lead=pw.lead_peak, p_off_by_lead=pw.lead_off)


# --------------------------------------------------------------------------------------------
# Atrial activity: is the P wave the same in every beat
# --------------------------------------------------------------------------------------------
# Pearson r >= 0.80 is a "very strong" correlation by the usual convention (Evans, Straightforward
# Statistics for the Behavioral Sciences, 1996); used here for "the same wave, beat after beat".
P_CONSISTENCY_R = 0.80


def _detrend_last_axis(x: np.ndarray) -> np.ndarray:
    w = np.linspace(0.0, 1.0, x.shape[-1])
    return x - (x[..., :1] * (1 - w) + x[..., -1:] * w)


def p_consistency(bs: BeatSet, b: Boundaries) -> list[float]:
    """Per dominant beat: correlation between its P segment (all leads, P peak +/- P_FLANK_S,
    linear trend removed) and the median of the other beats' segments; [] when not computable."""
    if b.p_peak is None or bs.beats.shape[0] < 2:
        return []
    win = _p_window(bs, b)
    if win is None:
        return []
    lo, hi = win
    x = np.nan_to_num(_detrend_last_axis(bs.beats[:, :, lo:hi]))
    rs = []
    common = np.median(x, axis=0).ravel() if x.shape[0] > 20 else None   # one beat barely moves it
    for i in range(x.shape[0]):
        t = common if common is not None else np.median(np.delete(x, i, axis=0), axis=0).ravel()
        u = x[i].ravel()
        den = np.sqrt(np.sum((u - u.mean()) ** 2) * np.sum((t - t.mean()) ** 2))
        if den > 0:
            rs.append(float(np.sum((u - u.mean()) * (t - t.mean())) / den))
    return rs


def _p_window(bs: BeatSet, b: Boundaries) -> tuple[int, int] | None:
    flank = int(round(P_FLANK_S * bs.fs))
    lo, hi = max(0, b.p_peak - flank), min(b.qrs_on - int(0.01 * bs.fs), b.p_peak + flank)
    return (lo, hi) if hi - lo >= 4 else None


# --------------------------------------------------------------------------------------------
# Beat by beat: the same boundaries on every dominant beat (P-wave timing, beat-to-beat spread)
# --------------------------------------------------------------------------------------------
# A P wave "precedes the QRS consistently" when, beat after beat, the median beat's P wave is found
# (multi-lead correlation r >= P_BEAT_R) at the same distance from the QRS: within
# P_TIMING_TOL_S of the median beat's position. 20 ms = twice the IEC 60601-2-25:2011 PR tolerance
# (SD 10 ms): a larger shift is more than measurement scatter (the PR of conducted sinus beats is
# fixed; in AV dissociation, complete AV block, AF and flutter it is not - Surawicz & Knilans,
# Chou's Electrocardiography in Clinical Practice, 6th ed., ch. 17-18).
P_TIMING_TOL_S = 0.020
P_BEAT_R = 0.60                # "strong" correlation (Evans 1996: 0.60-0.79) for one noisy beat's low-amplitude P
P_SEARCH_S = 0.080             # the P wave is searched +/-80 ms around the median beat's position
P_CONSISTENT_SHARE = 0.8       # ... in >= 80 % of the dominant beats (one early beat in 5 may differ)
# ... and in >= 80 % of the beats that follow a long RR (>= 20 % longer than the median RR, the 20 %
# of the premature-beat rule, Malik et al. 1989), when there are >= 2 such beats: a wave locked to the
# QRS that follows is a P wave; the end of the previous beat's T (or U) wave, which mimics a P wave
# when the rhythm is regular enough, moves away from the QRS after a long RR (AF with runs of
# regular RR; Surawicz & Knilans, Chou's, 6th ed., ch. 17).
LONG_RR_FRACTION = 1.2


@dataclass
class BeatTimings:
    """Per dominant beat (NaN where not found), sample indices in the beat window."""

    qrs_on: np.ndarray
    qrs_off: np.ndarray
    t_off: np.ndarray
    p_on: np.ndarray
    p_off: np.ndarray
    p_r: np.ndarray                 # correlation of the beat's P segment with the median P (best lag)
    p_lag: np.ndarray               # best lag of the P segment, samples (NaN: no P search)
    p_locked: np.ndarray            # bool: P found at the median beat's position (r and lag within tolerance)
    rr_before_s: np.ndarray         # RR interval before the beat, s (NaN for the first beat)
    pt_detail: np.ndarray           # each beat's leads at the P/T wavelet scale (beats x leads x window)


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _p_match(beats: np.ndarray, template: np.ndarray, lo: int, hi: int, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Best lag (within +/-max_lag) and correlation of each beat's [lo+lag, hi+lag) segment (all leads,
    least-squares line removed) with the template (leads x (hi - lo)), vectorised over beats and lags."""
    n, n_leads, w = beats.shape
    length = hi - lo
    a0, a1 = max(0, lo - max_lag), min(w, hi + max_lag)
    if a1 - a0 < length:
        return np.full(n, np.nan), np.zeros(n)
    lags = np.arange(a0, a1 - length + 1) - lo
    seg = beats[:, :, a0:a1]
    centre = (length - 1) / 2.0
    ramp = np.arange(length, dtype=float) - centre
    ramp_norm = np.sqrt(np.sum(ramp * ramp))
    ramp /= ramp_norm
    t = template - template.mean(axis=1, keepdims=True)
    t = t - np.sum(t * ramp, axis=1, keepdims=True) * ramp            # template orthogonal to constants and ramps

    k_n, span = len(lags), a1 - a0
    tn = np.sqrt(np.sum(t * t))
    # sum over leads of each window's dot product with the template: a cross-correlation (FFT of the
    # segment's length, no wrap-around for the lags kept); a line in the segment adds nothing
    spec = np.sum(np.fft.rfft(seg, span, axis=2) * np.conj(np.fft.rfft(t, span, axis=1))[None], axis=1)
    num = np.fft.irfft(spec, span, axis=1)[:, :k_n]

    # each window's sum, sum of squares and projection on the ramp, from running sums (n x leads x lags)
    def window_sums(v: np.ndarray) -> np.ndarray:
        c = np.concatenate((np.zeros(v.shape[:2] + (1,)), np.cumsum(v, axis=2)), axis=2)
        return c[:, :, length:length + k_n] - c[:, :, :k_n]

    s1 = window_sums(seg)
    s2 = window_sums(seg * seg)
    first_moment = window_sums(seg * np.arange(span, dtype=float)) - np.arange(k_n) * s1   # sum of x[k + j] * j
    sr = (first_moment - centre * s1) / ramp_norm                      # sum of x[k + j] * ramp[j]
    energy = np.sum(s2 - s1 * s1 / length - sr * sr, axis=1)           # segment energy once its line is removed
    with np.errstate(all="ignore"):
        r = np.where((energy > 0) & (tn > 0), num / np.sqrt(np.maximum(energy, 1e-30)) / tn, -np.inf)
    k = np.argmax(r, axis=1)
    best = r[np.arange(n), k]
    return np.where(np.isfinite(best), best, np.nan), lags[k].astype(float)


def beat_timings(bs: BeatSet, b: Boundaries) -> BeatTimings | None:
    """The median beat's boundaries found again on each dominant beat, on the all-lead slope.

    QRS onset/end and T end: the same wavelet rules as `delineate_median` on each beat's spatial slope
    (root-sum-square over leads of the wavelet detail), so that the spread over beats says how
    repeatable the boundary is in this record. P: the median beat's P segment searched in each beat
    (`_p_match`); where found at the same PR, its onset/end on that beat's slope.
    """
    x = np.nan_to_num(bs.beats)
    n, n_leads, w = x.shape
    if n < 2:
        return None
    fs = bs.fs
    ms = lambda s: int(round(s * fs))  # noqa: E731
    shift = int(round(np.log2(fs / 500.0)))
    flat = x.reshape(-1, w)
    d_q, d_pt = (d.reshape(n, n_leads, w) for d in wavelet_details(flat, (QRS_SCALE_LEVEL + shift,
                                                                          PT_SCALE_LEVEL + shift)))
    sv_q = np.sqrt(np.sum(d_q ** 2, axis=1))
    sv_pt = np.sqrt(np.sum(d_pt ** 2, axis=1))
    idx = np.flatnonzero(bs.dominant)
    rr_before = np.array([(bs.peaks[k] - bs.peaks[k - 1]) / fs if k > 0 else np.nan for k in idx])
    if rr_before.size != n:      # not the beats of the mask (never expected): no RR per beat
        rr_before = _nan(n)
    out = BeatTimings(_nan(n), _nan(n), _nan(n), _nan(n), _nan(n), _nan(n), _nan(n), np.zeros(n, dtype=bool),
                      rr_before, d_pt)
    flank_t, flank_p = ms(T_FLANK_S), ms(P_FLANK_S)
    for i in range(n):
        on, off = qrs_bounds(sv_q[i], bs.fiducial, fs)
        out.qrs_on[i] = np.nan if on is None else on
        out.qrs_off[i] = np.nan if off is None else off
        if b.t_peak is not None and b.t_off is not None:
            lo = (off if off is not None else b.qrs_off) + ms(0.04)
            hi = min(w, b.t_off + ms(T_FLANK_S))
            _, t_end = _wave_bounds(sv_pt[i], b.t_peak, lo, hi, flank_t, T_ON_FRACTION, T_OFF_FRACTION)
            out.t_off[i] = np.nan if t_end is None else t_end
    win = _p_window(bs, b) if b.p_peak is not None else None
    if win is not None:
        lo, hi = win
        template = _detrend_last_axis(bs.median[:, lo:hi])
        r, lag = _p_match(x, template, lo, hi, ms(P_SEARCH_S))
        out.p_r, out.p_lag = r, lag
        out.p_locked = (r >= P_BEAT_R) & (np.abs(lag) <= ms(P_TIMING_TOL_S))
        if b.p_on is not None and b.p_off is not None:
            for i in np.flatnonzero(out.p_locked):
                k = int(lag[i])
                p_lo = max(1, b.p_on + k - ms(0.05))
                p_hi = min(b.qrs_on, b.p_off + k + ms(0.05))
                a, e = _wave_bounds(sv_pt[i], b.p_peak + k, p_lo, p_hi, flank_p, P_ON_FRACTION, P_OFF_FRACTION)
                out.p_on[i] = np.nan if a is None else a
                out.p_off[i] = np.nan if e is None else e
    return out


def lead_p_durations(bs: BeatSet, b: Boundaries, t: BeatTimings, rows: list[int]) -> dict[int, np.ndarray]:
    """Each listed lead's own P duration (samples) on every dominant beat whose P wave is in place
    (`BeatTimings.p_locked`), NaN elsewhere: the median beat's per-lead P boundaries searched again on
    that beat's lead (the same single-lead wavelet rules, shifted by the beat's P lag)."""
    if b.p_peak_by_lead is None or not rows or t.p_locked.size != bs.beats.shape[0] or b.qrs_on is None:
        return {}
    fs = bs.fs
    ms = lambda s: int(round(s * fs))  # noqa: E731
    flank = ms(P_FLANK_S)
    locked = np.flatnonzero(t.p_locked)
    out: dict[int, np.ndarray] = {}
    for r in rows:
        on, off = b.p_on_by_lead[r], b.p_off_by_lead[r]
        if on is None or off is None:
            continue
        v = np.abs(t.pt_detail[:, r, :])
        d = _nan(v.shape[0])
        for i in locked:
            k = int(t.p_lag[i])
            lo, hi = max(1, on + k - ms(0.05)), min(b.qrs_on, off + k + ms(0.05))
            a, e = _wave_bounds(v[i], b.p_peak_by_lead[r] + k, lo, hi, flank, P_ON_FRACTION, P_OFF_FRACTION)
            if a is not None and e is not None and e > a:
                d[i] = e - a
        out[r] = d
    return out


def p_locked_after_long_rr(t: BeatTimings, rr_median_s: float) -> tuple[int, int]:
    """(beats with the P wave in place, beats) among the beats that follow a long RR (LONG_RR_FRACTION)."""
    long_rr = np.isfinite(t.rr_before_s) & (t.rr_before_s >= LONG_RR_FRACTION * rr_median_s)
    return int(np.sum(t.p_locked & long_rr)), int(np.sum(long_rr))


def robust_sd(v: np.ndarray) -> float | None:
    """1.4826 x the median absolute deviation of the finite values (a robust SD); None if < 3 values."""
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 3:
        return None
    return float(1.4826 * median_of(np.abs(v - median_of(v))))
