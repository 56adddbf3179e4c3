"""Beat-by-beat rhythm: premature beats and their origin, bigeminal/trigeminal runs, NN intervals.

Used by `ragecg.signal.measure` on a `ragecg.signal.beats.BeatSet`. Constants and their sources:

* Premature beat: its RR interval (from the previous beat) is shorter than 80 % of the expected RR,
  i.e. the beat comes at least 20 % early. The 20 % limit is the classic ectopic-interval rule of
  heart-rate-variability editing (Malik M, Cripps T, Farrell T, Camm AJ. Med Biol Eng Comput
  1989;27:603-611: an interval differing by more than 20 % from the preceding one is not a normal
  sinus interval). The expected RR is the median of the two intervals before and the two after it
  (a local reference: gradual rate changes such as sinus arrhythmia are followed, an abrupt but
  lasting rate change is not called premature, and in bigeminy it lies between the coupling interval
  and the pause).
* NN interval: an RR interval whose two beats are both non-premature (Task Force of the ESC and
  NASPE. Heart rate variability: standards of measurement. Circulation 1996;93:1043-1065:
  "normal-to-normal" intervals exclude ectopic beats and the intervals they end or start).
* Origin: a premature beat is ventricular when its QRS differs from the dominant QRS (Pearson r
  of the QRS, all leads, below the 0.90 that admits a beat to the median beat, see beats.py) and
  is wide, >= 120 ms (a wide QRS of different shape not preceded by a premature P wave defines the
  ventricular premature complex: Goldberger's Clinical Electrocardiography, 9th ed.;
  Surawicz B, Childers R, Deal BJ, Gettes LS. AHA/ACCF/HRS 2009 Part III, Circulation
  2009;119:e235: 120 ms is the upper limit of a normal-width QRS in adults). Other premature
  beats are supraventricular. A premature P wave is not looked for, so an aberrantly conducted
  atrial premature beat counts as ventricular.
* Bigeminy / trigeminy: a normal beat followed by a premature beat (bigeminy), or two normal beats
  then a premature beat (trigeminy), repeated; the measure is the longest run of such cycles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .beats import (DOMINANT_CORRELATION, QRS_SCALE_LEVEL, QRS_TEMPLATE_HALF_S, median_of, nan_median,
                    qrs_bounds, wavelet_detail)

PREMATURE_RR_FRACTION = 0.80    # RR < 80 % of the expected RR: >= 20 % premature (Malik et al. 1989)
WIDE_QRS_MS = 120.0             # AHA/ACCF/HRS 2009 Part III: QRS >= 120 ms is wide in adults
SAME_QRS_R = DOMINANT_CORRELATION  # 0.90, as for joining the median beat (Evans 1996 "very strong" correlation)
NEIGHBOUR_RR = 2                # expected RR: median of the 2 intervals before and the 2 after
MIN_NN_INTERVALS = 3            # a range needs at least three intervals (two give only a difference)
BEAT_WINDOW_S = 0.25            # +/- 250 ms around a beat for its own QRS boundaries


@dataclass
class BeatClasses:
    """Per detected beat (same order as `BeatSet.peaks`)."""

    premature: np.ndarray           # bool
    ventricular: np.ndarray         # bool, premature beats classed ventricular
    supraventricular: np.ndarray    # bool, premature beats classed supraventricular
    qrs_r: np.ndarray               # QRS correlation with the dominant (median) QRS; NaN if not computable
    qrs_ms: np.ndarray              # the beat's own QRS duration (premature beats only); NaN otherwise
    nn_s: np.ndarray                # NN intervals, s

    @property
    def labels(self) -> str:
        """One letter per beat: N (not premature), V (ventricular), S (supraventricular premature)."""
        return "".join("V" if v else ("S" if s else "N") for v, s in zip(self.ventricular, self.supraventricular))


def premature_flags(rr_s: np.ndarray) -> np.ndarray:
    """Per beat (len(rr_s) + 1): True when its RR is < PREMATURE_RR_FRACTION x the expected RR, the
    median of the NEIGHBOUR_RR intervals on each side of it (the record's median RR when it has
    fewer than three intervals)."""
    n = len(rr_s) + 1
    flags = np.zeros(n, dtype=bool)
    if rr_s.size == 0:
        return flags
    for k, rr in enumerate(rr_s):
        around = np.concatenate((rr_s[max(0, k - NEIGHBOUR_RR):k], rr_s[k + 1:k + 1 + NEIGHBOUR_RR]))
        expected = median_of(around) if around.size >= 2 else median_of(rr_s)
        flags[k + 1] = rr < PREMATURE_RR_FRACTION * expected
    return flags


def nn_intervals(rr_s: np.ndarray, premature: np.ndarray) -> np.ndarray:
    """RR intervals whose two beats are both non-premature."""
    if rr_s.size == 0:
        return rr_s
    keep = ~premature[:-1] & ~premature[1:]
    return rr_s[keep]


def longest_cycle_run(labels: str, normal_beats: int) -> int:
    """Longest run of consecutive cycles of `normal_beats` non-premature beats then one premature beat
    (1: bigeminy N-P N-P ..., 2: trigeminy N-N-P N-N-P ...)."""
    flags = "".join("N" if c == "N" else "P" for c in labels)
    cycle = "N" * normal_beats + "P"
    best = 0
    for start in range(len(flags)):
        k = 0
        while flags.startswith(cycle, start + k * len(cycle)):
            k += 1
        best = max(best, k)
    return best


def _windows(x: np.ndarray, centres: np.ndarray, half: int) -> np.ndarray:
    n = x.shape[0]
    idx = centres[:, None] + np.arange(-half, half)[None, :]
    valid = (idx >= 0) & (idx < n)
    out = x[np.clip(idx, 0, n - 1)].astype(float)        # beats x window x leads
    out[~valid] = np.nan
    return np.transpose(out, (0, 2, 1))


def qrs_correlations(bs) -> np.ndarray:
    """Pearson r of every beat's QRS (fiducial +/- 60 ms, all leads) with the median beat's QRS."""
    half = int(QRS_TEMPLATE_HALF_S * bs.fs)
    t = bs.median[:, bs.fiducial - half:bs.fiducial + half]
    t = (t - t.mean(axis=1, keepdims=True)).ravel()
    w = _windows(bs.signals, bs.peaks, half)
    out = np.full(len(bs.peaks), np.nan)
    for i in range(len(bs.peaks)):
        if np.isnan(w[i]).any():
            continue
        u = (w[i] - w[i].mean(axis=1, keepdims=True)).ravel()
        den = np.sqrt(np.sum(u * u) * np.sum(t * t))
        if den > 0:
            out[i] = float(np.sum(u * t) / den)
    return out


def beat_qrs_ms(bs, i: int) -> float | None:
    """QRS duration of one beat (not the median): the Martinez wavelet boundaries on the all-lead
    slope of the beat's own window (beats.delineate_median's rule for one beat)."""
    half = int(round(BEAT_WINDOW_S * bs.fs))
    w = _windows(bs.signals, bs.peaks[i:i + 1], half)[0]
    if np.isnan(w).any():
        return None
    shift = int(round(np.log2(bs.fs / 500.0)))
    wq = np.abs(wavelet_detail(w, QRS_SCALE_LEVEL + shift))
    sv = np.sqrt(np.sum(wq ** 2, axis=0))
    on, off = qrs_bounds(sv, half, bs.fs)
    if on is None or off is None or off <= on:
        return None
    return float(off - on) * 1000.0 / bs.fs


def classify_beats(bs) -> BeatClasses:
    """Premature beats of a BeatSet and their origin (see the module docstring)."""
    rr = np.asarray(bs.rr_s, dtype=float)
    premature = premature_flags(rr)
    r = qrs_correlations(bs)
    qrs = np.full(len(premature), np.nan)
    ventricular = np.zeros(len(premature), dtype=bool)
    for i in np.flatnonzero(premature):
        q = beat_qrs_ms(bs, int(i))
        qrs[i] = np.nan if q is None else q
        ventricular[i] = bool(np.isfinite(r[i]) and r[i] < SAME_QRS_R and q is not None and q >= WIDE_QRS_MS)
    supra = premature & ~ventricular
    return BeatClasses(premature=premature, ventricular=ventricular, supraventricular=supra, qrs_r=r,
                       qrs_ms=qrs, nn_s=nn_intervals(rr, premature))


# --------------------------------------------------------------------------------------------
# Atrial activity after cancelling the ventricular complexes
# --------------------------------------------------------------------------------------------
# Average-beat subtraction (Slocum J, Sahakian A, Swiryn S. J Electrocardiol 1992;25:1-8): the median
# beat is subtracted at every dominant beat; what remains in II, III, aVF and V1 (the leads where
# atrial waves are largest) is atrial activity plus noise. Its spectrum is taken in 3-12 Hz (180-720
# per minute, the band of atrial flutter and fibrillation waves in spectral studies of atrial
# activity: Bollmann A et al., Europace 2006;8:911-926). Organisation (Everett TH et al., IEEE Trans
# Biomed Eng 2001;48:969-978: the power under the dominant peak and its harmonic over the band's
# power) says whether one regular atrial rhythm dominates; the dominant frequency is reported as an
# atrial rate only when it holds at least half of the band's power (this module's definition of "a
# dominant atrial frequency exists"; below that the residual is disorganised activity or noise).
ATRIAL_LEADS = ("II", "III", "aVF", "V1")
ATRIAL_BAND_HZ = (3.0, 12.0)
ATRIAL_PEAK_HALF_WIDTH_HZ = 0.5  # peak and harmonic windows of +/-0.5 Hz (Everett et al. 2001 use 1 Hz bands)
ATRIAL_SEGMENT_S = 4.0          # Welch segments of 4 s: 0.25 Hz (15 per minute) resolution
MIN_ATRIAL_SIGNAL_S = 6.0       # at least 1.5 segments of 4 s with 50 % overlap
DOMINANT_SHARE = 0.5            # a dominant atrial frequency holds >= half of the band's power


@dataclass
class AtrialActivity:
    rate_bpm: float                 # dominant frequency x 60
    organization: float             # power within +/-0.5 Hz of the peak and of its harmonic / band power
    lead: str                       # the lead (of II, III, aVF, V1) with the highest organisation


def ventricular_residuals(bs, rows: list[int]) -> np.ndarray:
    """Leads `rows` (rows of the result) with the median beat subtracted at every dominant beat; each beat
    owns the samples from 35 % of the preceding RR before it to 65 % of the following RR after it (no
    sample is subtracted twice when the median-beat window is longer than the RR)."""
    x = bs.signals[:, rows].astype(float)
    n, pre, post = x.shape[0], bs.fiducial, bs.median.shape[1] - bs.fiducial
    template = bs.median[rows].T                    # window x leads
    peaks = bs.peaks
    for k, (p, dom) in enumerate(zip(peaks, bs.dominant)):
        if not dom:
            continue
        back = pre if k == 0 else min(pre, int(0.35 * (p - peaks[k - 1])))
        ahead = post if k == len(peaks) - 1 else min(post, int(0.65 * (peaks[k + 1] - p)))
        lo, hi = max(0, p - back), min(n, p + ahead)
        x[lo:hi] -= template[lo - p + pre:hi - p + pre]
    return np.ascontiguousarray(x.T)


def atrial_activity(bs) -> AtrialActivity | None:
    """Dominant frequency and organisation of the QRST-cancelled signal (see above), from the most
    organised of II, III, aVF, V1; None when the record is too short or none of them is usable."""
    from scipy import signal as sps

    fs = bs.fs
    if bs.signals.shape[0] < MIN_ATRIAL_SIGNAL_S * fs:
        return None
    best = None
    leads = [ld for ld in ATRIAL_LEADS if ld in bs.leads]
    if not leads:
        return None
    residuals = ventricular_residuals(bs, [bs.leads.index(ld) for ld in leads])
    f, spectra = sps.welch(residuals, fs=fs, nperseg=int(ATRIAL_SEGMENT_S * fs), axis=-1)
    for ld, p in zip(leads, spectra):
        band = (f >= ATRIAL_BAND_HZ[0]) & (f <= ATRIAL_BAND_HZ[1])
        fb, pb = f[band], p[band]
        # the dominant frequency is a spectral peak inside the band, not the band's edge on the flank of
        # lower-frequency (T-wave residual) power
        peaks = [i for i in np.flatnonzero(band) if 0 < i < len(p) - 1 and p[i] > p[i - 1] and p[i] >= p[i + 1]]
        if not peaks or pb.sum() <= 0:
            continue
        f0 = float(f[max(peaks, key=lambda i: p[i])])
        tol = ATRIAL_PEAK_HALF_WIDTH_HZ + 1e-9
        near = (np.abs(fb - f0) <= tol) | (np.abs(fb - 2 * f0) <= tol)
        a = AtrialActivity(rate_bpm=f0 * 60.0, organization=float(pb[near].sum() / pb.sum()), lead=ld)
        if best is None or a.organization > best.organization:
            best = a
    return best


# --------------------------------------------------------------------------------------------
# Irregularity with the ectopy taken out (atrial fibrillation vs premature complexes)
# --------------------------------------------------------------------------------------------
# AF is an *irregularly irregular* ventricular rhythm (2024 ESC AF guideline); premature complexes make a
# *patterned* irregularity: a short coupling interval, then a pause, around an otherwise regular rhythm.
# Two measures take the pattern out before judging irregularity:
# * rr_irregularity: the RR intervals are split into the classes the ectopy defines (intervals ending at a
#   premature beat: coupling; intervals starting at one: pause; the others: NN, Task Force 1996), and the
#   pooled within-class standard deviation is divided by the mean RR: a coefficient of variation (Tateno K,
#   Glass L. Med Biol Eng Comput 2001;39:664-671) of what the ectopic pattern does not explain. Sinus
#   rhythm with premature beats or bigeminy gives tight classes; in AF the intervals of every class vary.
# * nn_rmssd_ratio: root mean square of successive differences of consecutive NN intervals over their
#   mean, the normalised RMSSD of Dash S, Chon KH, Lu S, Raeder EA. Ann Biomed Eng 2009;37:1701-1709
#   computed, as they do, after the intervals around ectopic beats are removed.
# Both are reported; the AF criterion (knowledge/atrial-fibrillation.md) uses the published 0.1 cut-off.
MIN_CLASS_INTERVALS = 4         # intervals needed to judge irregularity at all (three differences)


def interval_classes(premature: np.ndarray) -> np.ndarray:
    """Per RR interval (len(premature) - 1): 0 NN, 1 coupling (ends at a premature beat), 2 pause (starts at
    one; an interval both ending and starting at premature beats counts as coupling)."""
    ends = premature[1:]
    starts = premature[:-1]
    return np.where(ends, 1, np.where(starts, 2, 0))


def rr_irregularity(rr_s: np.ndarray, premature: np.ndarray) -> float | None:
    """Pooled within-class SD of the RR intervals (classes of `interval_classes`) / mean RR; None with fewer
    than MIN_CLASS_INTERVALS intervals."""
    rr = np.asarray(rr_s, dtype=float)
    if rr.size < MIN_CLASS_INTERVALS:
        return None
    cls = interval_classes(np.asarray(premature, dtype=bool))
    ss, dof = 0.0, 0
    for k in (0, 1, 2):
        x = rr[cls == k]
        if x.size >= 2:
            ss += float(np.sum((x - x.mean()) ** 2))
            dof += x.size - 1
    if dof < MIN_CLASS_INTERVALS - 1:
        return None
    return float(np.sqrt(ss / dof) / rr.mean())


def nn_rmssd_ratio(rr_s: np.ndarray, premature: np.ndarray) -> float | None:
    """RMSSD of consecutive NN intervals / mean NN (Dash et al. 2009 with ectopic intervals removed); None
    with fewer than MIN_CLASS_INTERVALS - 1 successive differences."""
    rr = np.asarray(rr_s, dtype=float)
    if rr.size < 2:
        return None
    nn = ~premature[:-1] & ~premature[1:]
    pairs = nn[:-1] & nn[1:]
    if pairs.sum() < MIN_CLASS_INTERVALS - 1:
        return None
    d = np.diff(rr)[pairs]
    return float(np.sqrt(np.mean(d ** 2)) / rr[nn].mean())


# --------------------------------------------------------------------------------------------
# P waves beat by beat
# --------------------------------------------------------------------------------------------
# AF has "no distinct repeating P waves" (2024 ESC AF guideline): judged per beat, not only on the median
# beat, whose P wave can be blurred when premature atrial beats (with their own P waves) join it. Each beat's
# window runs from P_WINDOW_MS[0] before its fiducial point (P waves with a PR interval up to about 250 ms) to
# its QRS onset less QRS_ONSET_MARGIN_MS (the IEC 60601-2-25 tolerance of a QRS onset, so that the QRS itself
# never enters the window; at most P_WINDOW_MS[1]), and starts no earlier than the previous beat's T end (the
# median beat's T end placed on the previous beat): the previous T wave is time-locked to the previous QRS and
# at fast rates would otherwise fill the window of an AF beat with a repeating wave. A window shorter than
# MIN_P_WINDOW_MS (a normal P wave lasts 80-110 ms: Goldberger's Clinical Electrocardiography, 9th ed.) cannot
# hold a P wave and its beat is not judged. Each window, in every lead, has its least-squares line removed
# (baseline wander and the tail of a T or U wave are slopes, not P waves). The template is the median of the
# windows of the non-premature beats. A beat has the repeating P wave when its window correlates with the
# template at r >= P_BEAT_R (a "strong" correlation, Evans JD. Straightforward statistics for the behavioral
# sciences, 1996: 0.60-0.79 strong) in the leads where the template holds a wave (peak-to-peak >= 2 x
# MIN_WAVE_MV, the IEC 60601-2-51 minimum wave of 30 uV on each side of the baseline) standing above the
# beat-to-beat noise. Fibrillatory waves are not time-locked to the QRS: the template is flat or the beats do
# not match it.
P_WINDOW_MS = (-300.0, -70.0)
QRS_ONSET_MARGIN_MS = 10.0
MIN_P_WINDOW_MS = 80.0
P_BEAT_R = 0.60
P_TEMPLATE_MIN_P2P_MV = 0.06
P_SNR_MIN = 1.0                 # as measure.SNR_MIN: a lead's template counts when its RMS >= the beat-to-beat noise
P_REPEATING_SHARE = 0.5         # "most beats": a repeating P wave before at least half of them


def _detrended(seg: np.ndarray) -> np.ndarray:
    """Rows of `seg` (leads x samples) less their least-squares line."""
    t = np.arange(seg.shape[1], dtype=float)
    t -= t.mean()
    centred = seg - seg.mean(axis=1, keepdims=True)
    den = float(np.sum(t * t))
    if den == 0:
        return centred
    return centred - np.outer(centred @ t / den, t)


@dataclass
class PWaveBeats:
    fraction: float                 # share of the judged beats whose window matches the template
    template_leads: int             # leads whose template holds a wave above the beat-to-beat noise (0: none)


def p_wave_beats(bs, premature: np.ndarray, qrs_on: int | None = None, t_off: int | None = None
                 ) -> PWaveBeats | None:
    """Share of the judged beats ending an NN interval (premature atrial beats have their own, different P
    wave; `premature` marks every ectopic beat) whose pre-QRS window matches the non-premature beats'
    template (see above). `qrs_on` / `t_off`: the median beat's QRS onset and T end (indices in its window,
    `bs.fiducial` the fiducial point), None when not found. 0 when no lead's template holds a wave above
    the noise; None when fewer than three such beats have a window that can be judged."""
    fs = bs.fs
    lo = int(round(P_WINDOW_MS[0] * fs / 1000.0))
    hi = int(round(P_WINDOW_MS[1] * fs / 1000.0))
    if qrs_on is not None:
        hi = min(hi, qrs_on - bs.fiducial - int(round(QRS_ONSET_MARGIN_MS * fs / 1000.0)))
    t_end = None if t_off is None else t_off - bs.fiducial
    min_len = int(round(MIN_P_WINDOW_MS * fs / 1000.0))
    x = bs.signals
    w = np.full((len(bs.peaks), x.shape[1], max(0, hi - lo)), np.nan)
    judged = np.zeros(len(bs.peaks), dtype=bool)
    for k, p in enumerate(bs.peaks):
        start = lo if (t_end is None or k == 0) else max(lo, int(bs.peaks[k - 1]) + t_end - int(p))
        if p + start < 0 or p + hi > x.shape[0] or hi - start < min_len:
            continue
        w[k, :, start - lo:] = _detrended(x[p + start:p + hi, :].T.astype(float))
        judged[k] = True
    # beats that end an NN interval: the beat and the one before it not ectopic, so the previous beat's T
    # wave sits where it sits in the regular rhythm (a pause or a coupling interval would move it)
    ks = np.arange(len(bs.peaks))
    normal = judged & (ks > 0) & ~premature & ~np.roll(premature, 1)
    if normal.sum() < 3:         # frequent ectopy: every non-premature beat
        normal = judged & ~premature
    if normal.sum() < 3:
        return None
    # the template's samples: those that at least half of the beats (and three) cover, so that no sample of
    # it is the window of one or two beats, which would then match themselves
    covered = np.isfinite(w[normal][:, 0, :]).sum(axis=0)
    full = covered >= max(3, 0.5 * int(normal.sum()))
    beats = w[normal][:, :, full]
    tmpl = nan_median(beats, axis=0)
    if tmpl.shape[1] < min_len:
        return None
    noise = np.sqrt(np.nanmean((beats - tmpl) ** 2, axis=(0, 2)))
    sel = (np.sqrt(np.mean(tmpl ** 2, axis=1)) >= P_SNR_MIN * noise) & (np.ptp(tmpl, axis=1) >= P_TEMPLATE_MIN_P2P_MV)
    if not sel.any():
        return PWaveBeats(fraction=0.0, template_leads=0)
    t = tmpl[sel].ravel()
    matches, counted = 0, 0
    for b in beats:
        u = b[sel].ravel()
        ok = np.isfinite(u)
        if ok.sum() < min_len:
            continue
        uu, tt = u[ok], t[ok]
        den = np.sqrt(np.sum(uu * uu) * np.sum(tt * tt))
        counted += 1
        matches += bool(den > 0 and np.sum(uu * tt) / den >= P_BEAT_R)
    return PWaveBeats(fraction=matches / counted, template_leads=int(sel.sum())) if counted >= 3 else None
