"""Stage 2 — measurements from an `Ecg` (implementation: median-beat 12-lead measurement, see below)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from ragecg.errors import UnusableSignalError
from ragecg.values import (FLAT_P2P_MV, LIMB_LEADS, PRECORDIAL_LEADS, STANDARD_LEADS, Ecg,
                           LeadMeasurements, Measurements)

from . import rhythm
from .beats import (LONG_RR_FRACTION, P_BEAT_R, P_CONSISTENT_SHARE, P_SEARCH_S, P_TIMING_TOL_S, beat_timings,
                    build_beats, delineate_median, lead_p_durations, nan_median, p_locked_after_long_rr, robust_sd)


# --------------------------------------------------------------------------------------------
# Measurement on median beats
# --------------------------------------------------------------------------------------------

MIN_WAVE_MV = 0.030             # IEC 60601-2-51:2003 Annex GG.5: a wave deviates >= 30 uV ...
MIN_WAVE_S = 0.006              # ... for >= 6 ms from the reference level
PAUSE_RR_S = 2.0                # pause: RR > 2.0 s (ragecg specification, issue 4)
REGULAR_NN_RANGE_S = 0.12       # sinus arrhythmia: P-P variation > 0.12 s (Surawicz & Knilans, Chou's
                                # Electrocardiography in Clinical Practice, 6th ed.); below it, regular
P_MIN_LEADS = 2                 # a P wave must be seen in two leads: one lead alone may be an artefact
SNR_MIN = 1.0                   # a lead / P wave is measured when its median-beat signal exceeds the
                                # single-beat noise (beat-to-beat residual RMS): signal > noise


def _ms(samples: float, fs: float) -> float:
    return float(samples) * 1000.0 / fs


def _axis_deg(lead_i: float | None, lead_avf: float | None) -> float | None:
    """Frontal axis from net deflections of I (0 deg) and aVF (+90 deg, hexaxial gain sqrt(3)/2)."""
    if lead_i is None or lead_avf is None or (abs(lead_i) < 1e-6 and abs(lead_avf) < 1e-6):
        return None
    return round(math.degrees(math.atan2(2.0 * lead_avf / math.sqrt(3.0), lead_i)), 1)


def _waves(y: np.ndarray, fs: float) -> list[tuple[int, int, int, float]]:
    """Deflections of y (relative to the reference level): (start, end, peak index, peak value).

    A deflection is a run of one sign between zero crossings that reaches MIN_WAVE_MV for at least
    MIN_WAVE_S (IEC 60601-2-51 minimum wave); smaller runs are merged into the reference level.
    """
    sign = np.sign(y).tolist()         # the loop runs per sample: Python floats, not array scalars
    out = []
    i = 0
    n = len(y)
    min_len = max(1, int(round(MIN_WAVE_S * fs)))
    while i < n:
        s = sign[i]
        j = i
        while j < n and sign[j] == s:
            j += 1
        if s != 0:
            seg = y[i:j]
            k = int(np.argmax(np.abs(seg)))
            if abs(seg[k]) >= MIN_WAVE_MV and np.sum(np.abs(seg) >= MIN_WAVE_MV) >= min_len:
                out.append((i, j, i + k, float(seg[k])))
        i = j
    return out


def _terminal_waves(waves: list, y: np.ndarray, tail: np.ndarray) -> list:
    """The waves with a positive deflection that runs into the end of the QRS window settled on the
    signal after it (`tail`: up to the latest QRS end over the leads, `Boundaries.j_point`).

    An R or R' wave has its peak inside the QRS (an upstroke and the downstroke of the intrinsicoid
    deflection). A positive run still rising at the latest QRS end has no peak: it is the return of a QS
    or S wave to an elevated ST segment (LBBB in V1-V3, ST elevation), not an R' - it is dropped. A run
    that does peak before that end is an R' cut by the window: its peak and amplitude are taken there.
    """
    n = len(y)
    out = []
    for w in waves:
        if w[3] <= 0 or w[1] < n:
            out.append(w)
            continue
        ext = np.concatenate((y[w[0]:], tail))
        stop = int(np.argmax(ext <= 0)) if np.any(ext <= 0) else len(ext)
        k = int(np.argmax(ext[:stop]))
        if k >= stop - 1 and stop == len(ext):
            continue
        out.append((w[0], w[0] + stop, w[0] + k, float(ext[k])))
    return out


def _qrs_lead(y: np.ndarray, fs: float, lm: LeadMeasurements, tail: np.ndarray | None = None) -> None:
    """Q, R, R', S, S' amplitudes, Q duration, R peak time from the QRS of one median beat (`tail`: the
    signal after the QRS window up to the latest QRS end over the leads, see _terminal_waves)."""
    waves = _waves(y, fs)
    if tail is not None:
        waves = _terminal_waves(waves, y, tail)
    pos = [w for w in waves if w[3] > 0]
    r = r2 = q = s = s2 = None
    if pos:
        r = pos[0]
        r2 = pos[1] if len(pos) > 1 else None
        q = next((w for w in waves if w[3] < 0 and w[1] <= r[0]), None)
        s = next((w for w in waves if w[3] < 0 and w[0] >= r[1] and (r2 is None or w[1] <= r2[0])), None)
        if r2 is not None:
            s2 = next((w for w in waves if w[3] < 0 and w[0] >= r2[1]), None)
    neg = [w for w in waves if w[3] < 0]
    if r is None:  # QS complex: the single negative deflection counts as Q and as S
        lm.r_amplitude_mv = 0.0
        lm.r_duration_ms = 0.0
        if neg:
            deepest = min(neg, key=lambda w: w[3])
            q = s = deepest
    else:
        lm.r_amplitude_mv = round(r[3], 3)
        lm.r_duration_ms = round(_ms(r[1] - r[0], fs), 1)
        lm.r_prime_amplitude_mv = round(r2[3], 3) if r2 else None
    lm.q_amplitude_mv = round(q[3], 3) if q else 0.0
    lm.q_duration_ms = round(_ms(q[1] - q[0], fs), 1) if q else 0.0
    lm.s_amplitude_mv = round(s[3], 3) if s else 0.0
    lm.s_prime_amplitude_mv = round(s2[3], 3) if s2 else None
    last_r = r2 or r
    y_ext = y if tail is None else np.concatenate((y, tail))
    lm.r_peak_time_ms = round(_ms(r_peak_index(y_ext, last_r), fs), 1) if last_r else None
    lm.qrs_net_mv = round(float(np.max(y) + np.min(y)), 3)
    lm.qrs_notch_count = qrs_notch_count(y, has_r=r is not None)


def r_peak_index(y: np.ndarray, wave: tuple[int, int, int, float]) -> int:
    """Index of the R (or R') peak that ends the R wave: the LAST maximum of a notched R.

    The R peak time is the time from the QRS onset to the onset of the intrinsicoid deflection, the
    final downstroke of the R wave (Surawicz & Knilans, Chou's Electrocardiography in Clinical
    Practice, 6th ed.; AHA/ACCF/HRS 2009 Part III uses it in V1 and V5-V6 for bundle branch block, whose
    R waves are "broad, notched or slurred"). In an M-shaped (notched) R the downstroke starts at the
    later maximum, not at the higher one. A maximum counts as a notch peak when it rises at least
    MIN_WAVE_MV (IEC 60601-2-51 minimum wave, 30 uV) above the dip before it, as in qrs_notch_count.
    """
    start, end, peak, _ = wave
    seg = y[start:end]
    if seg.size < 3:
        return peak
    peaks, _ = find_peaks(seg, prominence=MIN_WAVE_MV)
    later = [start + int(k) for k in peaks if start + int(k) > peak]
    return later[-1] if later else peak


def qrs_notch_count(y: np.ndarray, has_r: bool) -> int:
    """Local maxima inside the QRS beyond the R peak: an R' or a notch of R or of the S/QS nadir.

    Fragmented QRS (Das MK et al., Circulation 2006;113:2495-2501): an additional R wave (R'),
    notching of the R wave or of the nadir of the S wave, or more than one R'. A maximum counts when
    it rises at least MIN_WAVE_MV (IEC 60601-2-51 minimum wave, 30 uV) above the dips on both sides.
    """
    if y.size < 3:
        return 0
    peaks, _ = find_peaks(y, prominence=MIN_WAVE_MV)
    return max(0, int(peaks.size) - (1 if has_r else 0))


def measure_ecg(ecg: Ecg, usable_leads: list[str] | None = None) -> Measurements:
    """Global and per-lead measurements on median beats of the usable leads.

    Never raises for an odd but valid signal: values that cannot be measured are None with a
    reason in ``not_measurable``. Raises UnusableSignalError only when no beat is found at all.
    """
    return analyse_ecg(ecg, usable_leads).measurements


@dataclass
class BeatAnalysis:
    """Measurements plus the beats and median-beat boundaries behind them (for plots and benchmarks)."""

    measurements: Measurements
    beats: object | None = None        # ragecg.signal.beats.BeatSet
    boundaries: object | None = None   # ragecg.signal.beats.Boundaries (indices in the median-beat window)

    def boundary_samples(self, name: str) -> np.ndarray:
        """Sample positions (at the record's rate) of a median-beat boundary repeated on every dominant beat."""
        bs, b = self.beats, self.boundaries
        idx = None if b is None else getattr(b, name)
        if bs is None or idx is None:
            return np.array([], dtype=float)
        fiducials = bs.peaks[bs.dominant]
        return (fiducials + (idx - bs.fiducial)) * self.measurements.sampling_rate_hz / bs.fs


def analyse_ecg(ecg: Ecg, usable_leads: list[str] | None = None) -> BeatAnalysis:
    """`measure_ecg` with its beats and boundaries."""
    fs = float(ecg.sampling_rate_hz)
    out = Measurements(sampling_rate_hz=fs, duration_s=round(ecg.duration_s, 3))
    wanted = [ld for ld in STANDARD_LEADS if usable_leads is None or ld in set(usable_leads)]
    not_measurable = out.not_measurable
    for ld in STANDARD_LEADS:
        if ld not in wanted:
            not_measurable[f"lead[{ld}]"] = "lead not usable (quality)"
    cols, leads = [], []
    for ld in wanted:
        x = np.asarray(ecg.lead(ld), dtype=np.float64)
        finite = np.isfinite(x)
        if finite.mean() < 0.9:
            not_measurable[f"lead[{ld}]"] = "more than 10% of samples missing"
            continue
        if not finite.all():
            idx = np.arange(len(x))
            x = np.interp(idx, idx[finite], x[finite])
        if np.ptp(x) < FLAT_P2P_MV:
            not_measurable[f"lead[{ld}]"] = f"flat lead (peak-to-peak < {FLAT_P2P_MV} mV)"
            continue
        cols.append(x)
        leads.append(ld)
    name = ecg.source_path.rsplit("/", 1)[-1] if ecg.source_path else None
    if not leads:
        raise UnusableSignalError("no lead with a measurable signal", path=name)
    bs = build_beats(np.column_stack(cols), fs, leads)
    if bs is None:
        raise UnusableSignalError("no heart beats found in any usable lead", path=name)
    if bs.beats.shape[0] >= 1:
        ok = consistent_leads(bs)
        if not any(ok):
            raise UnusableSignalError("no consistent heart beats found (no lead's QRS stands above its "
                                      "beat-to-beat noise)", path=name)
        if not all(ok):
            for ld, good in zip(leads, ok):
                if not good:
                    not_measurable[f"lead[{ld}]"] = "QRS not above beat-to-beat noise (noise lead)"
            keep = [i for i, good in enumerate(ok) if good]
            leads = [leads[i] for i in keep]
            bs = build_beats(np.column_stack([cols[i] for i in keep]), fs, leads) or bs
    if bs.beats.shape[0] < 2:
        for k in RHYTHM_KEYS:
            out.not_measurable[k] = "fewer than two similar beats: rhythm not measurable"
        out.beat_count = int(len(bs.peaks))
        for k in MORPHOLOGY_KEYS:
            out.not_measurable[k] = "fewer than two similar beats: no median beat"
        return BeatAnalysis(out, bs, None)
    classes = _rhythm(out, bs)
    b = _morphology(out, bs)
    if classes is not None:
        _atrial_rhythm(out, bs, classes)
    return BeatAnalysis(out, bs, b)


RHYTHM_KEYS = ("heart_rate_bpm", "rr_mean_ms", "rr_sd_ms", "rr_cv", "rr_min_ms", "rr_max_ms", "premature_beat_count",
               "pvc_count", "pac_count", "bigeminy_cycles", "trigeminy_cycles", "nn_range_ms", "pause_count",
               "atrial_dominant_rate_bpm", "atrial_organization", "atrial_ventricular_rate_ratio", "rr_irregularity",
               "nn_rmssd_ratio", "p_wave_beat_fraction")
MORPHOLOGY_KEYS = ("p_waves_per_qrs", "p_present", "p_duration_ms", "pr_interval_ms", "qrs_duration_ms",
                   "qt_interval_ms", "qtc_bazett_ms", "qtc_fridericia_ms", "qtc_framingham_ms", "qtc_hodges_ms",
                   "p_axis_deg", "qrs_axis_deg", "t_axis_deg", "sokolow_lyon_mv", "cornell_voltage_mv",
                   "limb_lead_qrs_max_mv", "precordial_qrs_max_mv")


def consistent_leads(bs) -> list[bool]:
    """Per lead: the median-beat QRS (fiducial +/- 60 ms) has a peak-to-peak >= FLAT_P2P_MV and an RMS
    >= SNR_MIN x the single-beat noise (a lead without a QRS, or with noise only, is not measured)."""
    f, fs = bs.fiducial, bs.fs
    half = int(round(0.06 * fs))
    q = bs.median[:, f - half:f + half + 1]
    q = q - np.mean(q, axis=1, keepdims=True)
    qrs_rms = np.sqrt(np.mean(q ** 2, axis=1))
    p2p = np.ptp(q, axis=1)
    noise = _noise_per_lead(bs, 0, bs.median.shape[1])
    return [bool(a >= FLAT_P2P_MV and (not np.isfinite(nz) or r >= SNR_MIN * nz))
            for a, r, nz in zip(p2p, qrs_rms, noise)]


def _rhythm(out: Measurements, bs) -> rhythm.BeatClasses | None:
    """RR statistics and the premature beats; returns the beat classes (None with fewer than two beats)."""
    rr = bs.rr_s
    out.beat_count = int(len(bs.peaks))
    out.methods["beat_count"] = f"multi-lead QRS detection over {len(bs.leads)} leads"
    if rr.size == 0:
        for k in RHYTHM_KEYS:
            out.not_measurable[k] = "fewer than two beats"
        return None
    out.rr_mean_ms = round(float(np.mean(rr)) * 1000, 1)
    out.heart_rate_bpm = round(60.0 / float(np.mean(rr)), 1)
    out.rr_min_ms = round(float(np.min(rr)) * 1000, 1)
    out.rr_max_ms = round(float(np.max(rr)) * 1000, 1)
    out.pause_count = int(np.sum(rr > PAUSE_RR_S))
    if rr.size >= 2:
        out.rr_sd_ms = round(float(np.std(rr, ddof=1)) * 1000, 1)
        out.rr_cv = round(float(np.std(rr, ddof=1) / np.mean(rr)), 4)
    else:
        out.not_measurable["rr_sd_ms"] = out.not_measurable["rr_cv"] = "only one RR interval"
    rr_method = f"RR intervals of all {len(bs.peaks)} detected beats (multi-lead QRS detection)"
    for k in ("rr_mean_ms", "rr_sd_ms", "rr_cv", "rr_min_ms", "rr_max_ms"):
        if getattr(out, k) is not None:
            out.methods[k] = rr_method
    out.methods["heart_rate_bpm"] = "60 / mean RR of all detected beats"
    out.methods["pause_count"] = f"RR > {PAUSE_RR_S:g} s"
    out.confidence["heart_rate_bpm"] = round(min(1.0, rr.size / 5), 2)
    return _premature_beats(out, bs)


def _premature_beats(out: Measurements, bs) -> rhythm.BeatClasses:
    """Premature beats, their origin, bigeminal/trigeminal runs, the NN range and the atrial activity left
    after cancelling the QRS-T complexes (ragecg.signal.rhythm); returns the beat classes."""
    c = rhythm.classify_beats(bs)
    labels = c.labels
    out.premature_beat_count = int(c.premature.sum())
    out.pvc_count = int(c.ventricular.sum())
    out.pac_count = int(c.supraventricular.sum())
    out.bigeminy_cycles = rhythm.longest_cycle_run(labels, 1)
    out.trigeminy_cycles = rhythm.longest_cycle_run(labels, 2)
    early = (f"RR < {rhythm.PREMATURE_RR_FRACTION:.0%} of the median of the {rhythm.NEIGHBOUR_RR} RR intervals "
             "before and after it")
    out.methods["premature_beat_count"] = early
    out.methods["pvc_count"] = (f"premature ({early}) with QRS >= {rhythm.WIDE_QRS_MS:g} ms and QRS correlation "
                                f"with the dominant beat < {rhythm.SAME_QRS_R}")
    out.methods["pac_count"] = "premature beats not classed ventricular (supraventricular)"
    out.methods["bigeminy_cycles"] = "longest run of normal-premature pairs (beat labels " + labels + ")"
    out.methods["trigeminy_cycles"] = "longest run of normal-normal-premature triplets (beat labels " + labels + ")"
    if c.nn_s.size >= rhythm.MIN_NN_INTERVALS:
        out.nn_range_ms = round(float(np.ptp(c.nn_s)) * 1000, 1)
        out.methods["nn_range_ms"] = f"max - min of {c.nn_s.size} NN intervals (both beats not premature)"
    else:
        out.not_measurable["nn_range_ms"] = f"fewer than {rhythm.MIN_NN_INTERVALS} NN intervals"
    a = rhythm.atrial_activity(bs)
    if a is None:
        for k in ("atrial_dominant_rate_bpm", "atrial_organization", "atrial_ventricular_rate_ratio"):
            out.not_measurable[k] = (f"record shorter than {rhythm.MIN_ATRIAL_SIGNAL_S:g} s or none of "
                                     f"{', '.join(rhythm.ATRIAL_LEADS)} usable")
        return c
    how = (f"median beat subtracted at every dominant beat, {a.lead}: 3-12 Hz spectrum (Welch, "
           f"{rhythm.ATRIAL_SEGMENT_S:g} s segments)")
    out.atrial_organization = round(a.organization, 3)
    out.methods["atrial_organization"] = how + "; power at the peak and its harmonic (+/-0.5 Hz) / band power"
    if a.organization >= rhythm.DOMINANT_SHARE:
        out.atrial_dominant_rate_bpm = round(a.rate_bpm, 1)
        out.methods["atrial_dominant_rate_bpm"] = how + "; peak frequency x 60"
        # atrial waves per QRS: the conduction ratio of a flutter (2:1, 4:1) when the atrial rate is real
        out.atrial_ventricular_rate_ratio = round(a.rate_bpm / out.heart_rate_bpm, 2)
        out.methods["atrial_ventricular_rate_ratio"] = "atrial_dominant_rate_bpm / heart_rate_bpm"
    else:
        out.not_measurable["atrial_dominant_rate_bpm"] = (f"no dominant atrial frequency (organisation "
                                                          f"{a.organization:.2f} < {rhythm.DOMINANT_SHARE})")
        out.not_measurable["atrial_ventricular_rate_ratio"] = out.not_measurable["atrial_dominant_rate_bpm"]
    return c


def _p_wave_beat_fraction(out: Measurements, v: float | None) -> None:
    if v is None:
        out.not_measurable["p_wave_beat_fraction"] = ("fewer than three beats with a pre-QRS window that can hold a P "
                                                      "wave (record ends, or the previous T wave fills the window)")
        return
    out.p_wave_beat_fraction = round(v, 3)
    out.methods["p_wave_beat_fraction"] = (
        f"window from {rhythm.P_WINDOW_MS[0]:g} ms (not before the previous T end) to the QRS onset "
        f"- {rhythm.QRS_ONSET_MARGIN_MS:g} ms, line removed; r >= {rhythm.P_BEAT_R} with the template of the "
        "beats ending an NN interval")


def _atrial_rhythm(out: Measurements, bs, c: rhythm.BeatClasses) -> None:
    """The RR irregularity that ectopy does not explain (ragecg.signal.rhythm).
    A supraventricular premature beat counts as ectopic only when the rhythm has P waves: a consistent P wave
    in the median beat (`p_present`) or a repeating P wave before most beats (`p_wave_beat_fraction` >=
    P_REPEATING_SHARE, or not judged): "premature" is judged against an
    underlying rhythm, and an atrial premature complex is defined against sinus P waves (AHA/ACCF/HRS 2009
    Part II, Mason JW et al. Circulation 2007;115:1325-1332: a premature P wave of different shape). Without
    repeating P waves an early beat is one of the irregular intervals, not an ectopic one. Premature beats
    classed ventricular (wide, of a different QRS) are ectopic in any rhythm."""
    v = out.p_wave_beat_fraction
    atrial_ectopy = bool(out.p_present) or v is None or v >= rhythm.P_REPEATING_SHARE
    ectopic = c.ventricular | (c.supraventricular if atrial_ectopy else np.zeros_like(c.supraventricular))
    kinds = "ventricular and supraventricular" if atrial_ectopy else "ventricular (no repeating P wave)"
    rr = np.asarray(bs.rr_s, dtype=float)
    for key, fn, how in (("rr_irregularity", rhythm.rr_irregularity,
                          f"pooled within-class SD of RR (classes NN / coupling / pause; {kinds} premature beats) "
                          "/ mean RR"),
                         ("nn_rmssd_ratio", rhythm.nn_rmssd_ratio,
                          f"RMSSD of consecutive NN intervals ({kinds} premature beats out) / mean NN")):
        x = fn(rr, ectopic)
        if x is None:
            out.not_measurable[key] = f"fewer than {rhythm.MIN_CLASS_INTERVALS} usable RR intervals"
        else:
            setattr(out, key, round(x, 4))
            out.methods[key] = how


def _noise_per_lead(bs, lo: int, hi: int, rows: slice | list[int] = slice(None)) -> np.ndarray:
    """Single-beat noise (RMS of beat minus median) per lead (of `rows`) in window [lo, hi)."""
    if bs.beats.shape[0] < 2:
        return np.full(len(bs.leads), np.nan)[rows]
    res = bs.beats[:, rows, lo:hi] - bs.median[None, rows, lo:hi]
    with np.errstate(all="ignore"):
        per_sample = np.sqrt(np.nanmean(res ** 2, axis=0))     # leads x window
    return nan_median(per_sample, axis=1)


def p_wave_leads(bs, b) -> int:
    """Number of leads whose median-beat P wave stands above the single-beat noise.

    P wave in a lead: RMS of the median beat between P onset and offset (relative to its level at P
    onset) >= SNR_MIN x the beat-to-beat residual RMS there, and a peak >= MIN_WAVE_MV (IEC minimum
    wave). Atrial fibrillation waves are not time-locked to the QRS: they average out of the median
    while the residual stays large, so they do not count.
    """
    if b.p_on is None or b.p_off is None or b.p_off <= b.p_on:
        return 0
    seg = bs.median[:, b.p_on:b.p_off + 1]
    dev = seg - seg[:, :1]
    p_rms = np.sqrt(np.mean(dev ** 2, axis=1))
    noise = _noise_per_lead(bs, b.p_on, b.p_off + 1)
    noise = np.where(np.isfinite(noise) & (noise > 0), noise, np.inf)
    amp = np.max(np.abs(dev), axis=1)
    return int(np.sum((p_rms >= SNR_MIN * noise) & (amp >= MIN_WAVE_MV)))


def _lead_p_bounds(bs, b, i: int) -> tuple[int, int] | None:
    """Lead row i's own P onset and end on the median beat (`Boundaries.p_on_by_lead` / `p_off_by_lead`),
    where that lead shows the P wave: between them the lead deviates from its level at the onset by
    >= MIN_WAVE_MV (IEC minimum wave) with an RMS >= SNR_MIN x its single-beat noise (the rule of
    `p_wave_leads`), and the lead's P overlaps the global P wave (the same wave, not a T or U wave in
    the search window). None otherwise: the lead's P duration is then not measured."""
    if b.p_on_by_lead is None or b.p_off_by_lead is None or b.p_on is None or b.p_off is None:
        return None
    a, e = b.p_on_by_lead[i], b.p_off_by_lead[i]
    if a is None or e is None or e <= a or a >= b.p_off or e <= b.p_on:
        return None
    dev = bs.median[i, a:e + 1] - bs.median[i, a]
    rms, amp = float(np.sqrt(np.mean(dev ** 2))), float(np.max(np.abs(dev)))
    noise = float(_noise_per_lead(bs, a, e + 1, [i])[0])
    if amp < MIN_WAVE_MV or (np.isfinite(noise) and noise > 0 and rms < SNR_MIN * noise):
        return None
    return a, e


def _lead_p_uncertainty(out: Measurements, bs, b, t) -> None:
    """Beat-to-beat spread of each lead's own P duration (`lead_p_durations`), as for the global intervals:
    robust SD, never below the record's quantisation; flagged above the IEC P-duration SD tolerance."""
    rows = [i for i, ld in enumerate(bs.leads) if out.leads.get(ld) and out.leads[ld].p_duration_ms is not None]
    floor_ms = 1000.0 / out.sampling_rate_hz / math.sqrt(12.0)
    tol = IEC_SD_TOLERANCE_MS["p_duration_ms"]
    for i, d in lead_p_durations(bs, b, t, rows).items():
        key = f"p_duration_ms[{bs.leads[i]}]"
        sd = robust_sd(d)
        if sd is None:
            out.uncertain[key] = (f"delineated on {int(np.sum(np.isfinite(d)))} beat(s) only "
                                  f"(< {MIN_BEATS_FOR_SPREAD}): no spread")
            continue
        out.uncertainty[key] = round(max(_ms(sd, bs.fs), floor_ms), 1)
        if out.uncertainty[key] > tol:
            out.uncertain[key] = (f"beat-to-beat spread {out.uncertainty[key]:g} ms > {tol:g} ms "
                                  "(IEC 60601-2-25 SD tolerance)")


def _morphology(out: Measurements, bs):
    fs, m = bs.fs, bs.median
    rr_s = float(np.median(bs.rr_s)) if bs.rr_s.size else 1.0
    n_dom = int(bs.dominant.sum())
    b = delineate_median(m, fs, bs.fiducial, rr_s)
    n = m.shape[1]
    on, off = b.qrs_on, b.qrs_off
    # Per-lead waves (Q, R, S, amplitudes, ST and T levels) inside the median-over-leads QRS, their
    # reference level just before its onset; the global QRS (durations, PR, QT) uses b.qrs_on/off.
    w_on = b.qrs_on_leads if b.qrs_on_leads is not None else on
    w_off = b.qrs_off_leads if b.qrs_off_leads is not None else off
    ref = np.mean(m[:, max(0, w_on - int(0.01 * fs)):w_on + 1], axis=1)
    conf_beats = min(1.0, n_dom / 5)

    out.qrs_duration_ms = round(_ms(off - on, fs), 1)
    used = b.leads_used
    out.methods["qrs_duration_ms"] = (f"median beat of {n_dom} beats; onset/end = median over "
                                      f"{used.get('qrs_on', 0)}/{used.get('qrs_off', 0)} leads of wavelet "
                                      "boundaries (0 = all-lead slope)")
    out.confidence["qrs_duration_ms"] = round(conf_beats, 2)
    if b.t_off is not None:
        out.qt_interval_ms = round(_ms(b.t_off - on, fs), 1)
        out.methods["qt_interval_ms"] = (f"QRS onset to T end; T end = median over {used.get('t_off', 0)} "
                                         "leads of wavelet T ends (0 = all-lead slope)")
        out.confidence["qt_interval_ms"] = round(conf_beats, 2)
    else:
        out.not_measurable["qt_interval_ms"] = b.notes.get("t_off", "T end not found")

    timings = beat_timings(bs, b)
    n_p_leads = p_wave_leads(bs, b)
    locked = timings.p_locked if timings is not None else np.zeros(0, dtype=bool)
    # In a regular rhythm interrupted by premature beats (ragecg.rhythm: >= 20 % early; the intervals
    # between non-premature beats vary by < REGULAR_NN_RANGE_S), the premature beats are left out of
    # the share: an atrial premature beat has its own, earlier P wave (or none). In an irregular
    # rhythm (AF) "premature" says nothing about the atria, so every beat counts.
    flags = rhythm.premature_flags(bs.rr_s)
    nn = rhythm.nn_intervals(bs.rr_s, flags)
    premature = flags[bs.dominant]
    if (premature.size == locked.size and int(np.sum(~premature)) >= 2 and nn.size >= 2
            and float(np.ptp(nn)) < REGULAR_NN_RANGE_S):
        locked = locked[~premature]
    share = float(np.mean(locked)) if locked.size else 0.0
    n_long_ok, n_long = p_locked_after_long_rr(timings, rr_s) if timings is not None else (0, 0)
    after_long_ok = n_long < 2 or n_long_ok >= P_CONSISTENT_SHARE * n_long
    # the same question asked of every beat's own pre-QRS window (ragecg.signal.rhythm.p_wave_beat_fraction):
    # a median-beat P wave that most beats do not repeat (dissociated P waves of complete AV block, a pacing
    # artefact, flutter waves at a varying distance) is not a P wave with a PR interval
    # (a per-beat template without any wave above the noise is no evidence either way: low P waves)
    pw = rhythm.p_wave_beats(bs, flags, b.qrs_on, b.t_off)
    _p_wave_beat_fraction(out, None if pw is None else pw.fraction)
    pbf = None if pw is None else pw.fraction
    beats_ok = pw is None or pw.template_leads == 0 or pw.fraction >= rhythm.P_REPEATING_SHARE
    p_ok = (n_p_leads >= P_MIN_LEADS and locked.size >= 2 and share >= P_CONSISTENT_SHARE and after_long_ok
            and beats_ok)
    if n_p_leads < P_MIN_LEADS:
        p_reason = f"no P wave above the beat-to-beat noise in >= {P_MIN_LEADS} leads of the median beat"
    elif locked.size < 2:
        p_reason = "fewer than two beats to check that a P wave precedes every QRS"
    elif share >= P_CONSISTENT_SHARE and after_long_ok and not beats_ok:
        p_reason = (f"the median beat's P wave precedes only {pbf:.0%} of the beats beat by beat (repeating P wave "
                    f"before < {rhythm.P_REPEATING_SHARE:.0%}; AV dissociation, flutter or AF possible)")
    elif share >= P_CONSISTENT_SHARE and not after_long_ok:
        p_reason = (f"the P-like wave is missing in {n_long - n_long_ok} of the {n_long} beats after a long RR "
                    f"(>= {LONG_RR_FRACTION:g} x median): it follows the previous beat, not the QRS (AF possible)")
    else:
        p_reason = (f"P wave not at a fixed distance before the QRS beat by beat ({int(locked.sum())} of "
                    f"{locked.size} beats; AF, flutter, junctional rhythm or AV dissociation possible)")
    out.p_present = p_ok
    out.methods["p_present"] = (f"P wave of the median beat above single-beat noise in >= {P_MIN_LEADS} leads "
                                f"and found again (r >= {P_BEAT_R}, within +/-{P_TIMING_TOL_S * 1000:g} ms "
                                f"of its median-beat position) in >= {P_CONSISTENT_SHARE:.0%} of the dominant non-premature beats and of those "
                                f"after a long RR (>= {LONG_RR_FRACTION:g} x median)")
    out.confidence["p_present"] = round(conf_beats, 2)
    if p_ok:
        out.p_waves_per_qrs = round(share, 2)
        out.methods["p_waves_per_qrs"] = (
            f"fraction of dominant beats with the median P wave (r >= {P_BEAT_R}, searched +/-"
            f"{P_SEARCH_S * 1000:g} ms) at a fixed PR (+/-{P_TIMING_TOL_S * 1000:g} ms); P waves not followed "
            "by a QRS are not counted")
    else:
        out.not_measurable["p_waves_per_qrs"] = p_reason
    if p_ok:
        out.p_duration_ms = round(_ms(b.p_off - b.p_on, fs), 1)
        out.pr_interval_ms = round(_ms(on - b.p_on, fs), 1)
        out.confidence["p_duration_ms"] = out.confidence["pr_interval_ms"] = round(conf_beats * 0.9, 2)
        out.methods["p_duration_ms"] = out.methods["pr_interval_ms"] = (
            f"median beat; P onset/end = median over {b.leads_used.get('p_on', 0)}/{b.leads_used.get('p_off', 0)} "
            "leads of wavelet boundaries")
    else:
        for k in ("p_duration_ms", "pr_interval_ms", "p_axis_deg"):
            out.not_measurable[k] = p_reason
    _uncertainty(out, timings, fs, p_ok)

    # per lead
    # ST at the J point where no lead is still inside its QRS (a terminal R' or slurred S of one
    # lead must not be read as ST elevation): the later of the QRS end and the all-lead slope's end.
    j = b.j_point
    r_peaks: dict[int, int] = {}
    for i, ld in enumerate(bs.leads):
        lm = LeadMeasurements()
        y = m[i] - ref[i]
        _qrs_lead(y[w_on:w_off + 1], fs, lm, tail=y[w_off + 1:max(w_off, j) + 1])
        if lm.r_peak_time_ms is not None:
            r_peaks[i] = w_on + int(round(lm.r_peak_time_ms * fs / 1000.0))
        for name, dt in (("st_j_mv", 0.0), ("st_j60_mv", 0.06), ("st_j80_mv", 0.08)):
            k = j + int(round(dt * fs))
            if k + 2 < n:
                setattr(lm, name, round(float(np.mean(y[max(0, k - 2):k + 3])), 3))
        if b.t_off is not None and b.t_peak is not None:
            t_lo = w_off + int(0.08 * fs)
            seg = y[t_lo:b.t_off + 1]
            if seg.size:
                k = int(np.argmax(np.abs(seg)))
                lm.t_amplitude_mv = round(float(seg[k]), 3)
        if p_ok:
            seg = m[i, b.p_on:b.p_off + 1] - m[i, b.p_on]
            k = int(np.argmax(np.abs(seg)))
            lm.p_amplitude_mv = round(float(seg[k]), 3) if abs(seg[k]) >= MIN_WAVE_MV else 0.0
            depth, dur = p_terminal_negative(seg, fs)
            lm.p_terminal_negative_mv, lm.p_terminal_negative_ms = round(depth, 3), round(dur, 1)
            lm.p_terminal_force_mv_ms = round(abs(depth) * dur, 2)
            bounds = _lead_p_bounds(bs, b, i)
            if bounds is not None:
                lm.p_duration_ms = round(_ms(bounds[1] - bounds[0], fs), 1)
            else:
                out.not_measurable[f"p_duration_ms[{ld}]"] = (
                    f"no P wave of >= {MIN_WAVE_MV * 1000:g} uV above the single-beat noise with its own onset and "
                    "end in this lead")
        out.leads[ld] = lm
    if p_ok and timings is not None:
        _lead_p_uncertainty(out, bs, b, timings)

    for i, spread in _r_peak_time_spreads_ms(bs, r_peaks, timings, out.sampling_rate_hz).items():
        out.uncertainty[f"r_peak_time_ms[{bs.leads[i]}]"] = spread

    def lead_val(ld: str, key: str):
        lm = out.leads.get(ld)
        return None if lm is None else getattr(lm, key)

    def need(key: str, *vals) -> bool:
        if any(v is None for v in vals):
            out.not_measurable[key] = "a lead it needs is not usable"
            return False
        return True

    ni, nf = lead_val("I", "qrs_net_mv"), lead_val("aVF", "qrs_net_mv")
    if need("qrs_axis_deg", ni, nf):
        out.qrs_axis_deg = _axis_deg(ni, nf)
        out.methods["qrs_axis_deg"] = "net QRS amplitude of I and aVF (hexaxial)"
        spread = _axis_spread_deg(bs, w_on, w_off, out.qrs_axis_deg)
        if spread is not None:
            out.uncertainty["qrs_axis_deg"] = spread
    ti, tf = lead_val("I", "t_amplitude_mv"), lead_val("aVF", "t_amplitude_mv")
    if need("t_axis_deg", ti, tf):
        out.t_axis_deg = _axis_deg(ti, tf)
        out.methods["t_axis_deg"] = "T amplitude of I and aVF (hexaxial)"
    if p_ok:
        pi, pf = lead_val("I", "p_amplitude_mv"), lead_val("aVF", "p_amplitude_mv")
        if need("p_axis_deg", pi, pf):
            out.p_axis_deg = _axis_deg(pi, pf)
            out.methods["p_axis_deg"] = "P amplitude of I and aVF (hexaxial)"
    sv1, r5, r6 = lead_val("V1", "s_amplitude_mv"), lead_val("V5", "r_amplitude_mv"), lead_val("V6", "r_amplitude_mv")
    if need("sokolow_lyon_mv", sv1, r5 if r5 is not None else r6):
        out.sokolow_lyon_mv = round(abs(sv1) + max(v for v in (r5, r6) if v is not None), 3)
        out.methods["sokolow_lyon_mv"] = "S(V1) + max(R(V5), R(V6)), median beats"
    ravl, sv3 = lead_val("aVL", "r_amplitude_mv"), lead_val("V3", "s_amplitude_mv")
    if need("cornell_voltage_mv", ravl, sv3):
        out.cornell_voltage_mv = round(ravl + abs(sv3), 3)
        out.methods["cornell_voltage_mv"] = "R(aVL) + |S(V3)|, median beats"
    for key, group in (("limb_lead_qrs_max_mv", LIMB_LEADS), ("precordial_qrs_max_mv", PRECORDIAL_LEADS)):
        idx = [i for i, ld in enumerate(bs.leads) if ld in group]
        if idx:
            seg = m[idx, w_on:w_off + 1]
            out.__setattr__(key, round(float(np.max(np.ptp(seg, axis=1))), 3))
            out.methods[key] = f"largest QRS peak-to-peak over {len(idx)} leads"
        else:
            out.not_measurable[key] = "no usable lead in the group"

    _qtc(out)
    if not p_ok:
        b.p_on = b.p_peak = b.p_off = None
    return b


R_PEAK_JITTER_S = 0.010          # each beat's R peak is looked for within +/-10 ms of the median beat's


def p_terminal_negative(seg: np.ndarray, fs: float) -> tuple[float, float]:
    """Depth (mV, <= 0) and duration (ms) of the terminal negative phase of a P wave (`seg`: the median beat
    from P onset to P end, less its level at the onset): the negative lobe around the deepest point of the
    second half that no positive deflection of MIN_WAVE_MV follows (Morris et al. 1964's P terminal force in
    V1; Romhilt and Estes 1968's "terminal negativity of P in V1"): the negative part of a biphasic P. (0, 0)
    when the P ends positive, the lobe is shallower than MIN_WAVE_MV, or no positive phase of MIN_WAVE_MV comes
    before it (a wholly negative P in V1 is not a terminal phase; high V1 placement makes it, AHA 2009 Part V)."""
    n = seg.size
    if n < 3:
        return 0.0, 0.0
    mid = n // 2
    k = mid + int(np.argmin(seg[mid:]))
    if seg[k] > -MIN_WAVE_MV or np.max(seg[k:]) >= MIN_WAVE_MV:
        return 0.0, 0.0
    a = k
    while a > 0 and seg[a - 1] < 0:
        a -= 1
    if a == 0 or np.max(seg[:a]) < MIN_WAVE_MV:
        return 0.0, 0.0
    e = k
    while e + 1 < n and seg[e + 1] < 0:
        e += 1
    return float(seg[k]), _ms(e - a + 1, fs)


def _r_peak_time_spreads_ms(bs, peaks: dict[int, int], t, source_fs: float) -> dict[int, float]:
    """Beat-to-beat spread of each lead's R peak time (lead row -> ms): on every dominant beat, the maximum
    within +/-R_PEAK_JITTER_S of the median beat's R (R') peak `peaks[row]`, minus that beat's own QRS onset
    (`beat_timings`, so that the onset's jitter counts too); robust SD (1.4826 x MAD), never below the
    quantisation of the record's sampling (one period / sqrt(12)); none with fewer than
    MIN_BEATS_FOR_SPREAD beats."""
    x = bs.beats
    if not peaks or t is None or x.shape[0] < MIN_BEATS_FOR_SPREAD or t.qrs_on.size != x.shape[0]:
        return {}
    h = int(round(R_PEAK_JITTER_S * bs.fs))
    rows = np.array(list(peaks))
    idx = np.clip(np.array([peaks[r] for r in rows])[:, None] + np.arange(-h, h + 1)[None, :], 0, x.shape[2] - 1)
    win = np.nan_to_num(x[:, rows[:, None], idx], nan=-np.inf)         # beats x leads x window
    v = idx[np.arange(len(rows))[None, :], np.argmax(win, axis=2)] - t.qrs_on[:, None]
    v = v[np.isfinite(t.qrs_on)]
    if v.shape[0] < MIN_BEATS_FOR_SPREAD:
        return {}
    sd = 1.4826 * np.median(np.abs(v - np.median(v, axis=0)), axis=0)
    floor = 1000.0 / source_fs / math.sqrt(12.0)
    return {int(r): round(max(_ms(float(d), bs.fs), floor), 1) for r, d in zip(rows, sd)}


def _axis_spread_deg(bs, on: int, off: int, axis: float | None) -> float | None:
    """Beat-to-beat spread of the frontal QRS axis: the axis of every dominant beat (net QRS amplitude of
    I and aVF inside the median beat's QRS, each beat's level just before the onset as reference), robust
    SD (1.4826 x MAD, as for the intervals) of its angular difference from the median-beat axis; None
    with fewer than MIN_BEATS_FOR_SPREAD beats or without I and aVF."""
    if axis is None or "I" not in bs.leads or "aVF" not in bs.leads or bs.beats.shape[0] < MIN_BEATS_FOR_SPREAD:
        return None
    ref_lo = max(0, on - int(0.01 * bs.fs))
    nets = []
    for ld in ("I", "aVF"):
        x = bs.beats[:, bs.leads.index(ld), :]
        y = x[:, on:off + 1] - np.mean(x[:, ref_lo:on + 1], axis=1, keepdims=True)
        nets.append(np.max(y, axis=1) + np.min(y, axis=1))
    per_beat = [_axis_deg(float(a), float(b)) for a, b in zip(*nets) if np.isfinite(a) and np.isfinite(b)]
    d = np.array([((v - axis + 180.0) % 360.0) - 180.0 for v in per_beat if v is not None])
    sd = robust_sd(d)
    return None if sd is None else round(sd, 1)


# IEC 60601-2-25:2011 201.12.4.104: SD tolerance of the difference to the reference, ms. A value whose
# beat-to-beat spread exceeds it is flagged in `uncertain` (the beats disagree more than the standard
# allows a program to disagree with the reference).
IEC_SD_TOLERANCE_MS = {"p_duration_ms": 15.0, "pr_interval_ms": 10.0, "qrs_duration_ms": 10.0, "qt_interval_ms": 30.0}
MIN_BEATS_FOR_SPREAD = 3


def _uncertainty(out: Measurements, t, fs: float, p_ok: bool) -> None:
    """Beat-to-beat spread of the global intervals (see Measurements.uncertainty) and their flags."""
    if t is None:
        per_beat = {}
    else:
        per_beat = {"qrs_duration_ms": t.qrs_off - t.qrs_on, "qt_interval_ms": t.t_off - t.qrs_on}
        if p_ok:
            per_beat["pr_interval_ms"] = t.qrs_on - t.p_on
            per_beat["p_duration_ms"] = t.p_off - t.p_on
    for key in IEC_SD_TOLERANCE_MS:
        if getattr(out, key) is None:
            continue
        v = per_beat.get(key)
        n_ok = int(np.sum(np.isfinite(v))) if v is not None else 0
        sd = robust_sd(v) if v is not None else None
        if sd is None:
            out.uncertain[key] = f"delineated on {n_ok} beat(s) only (< {MIN_BEATS_FOR_SPREAD}): no spread"
            continue
        # never below the quantisation noise of the record's own sampling (SD of a uniform error over
        # one sample period = period / sqrt(12)): identical beats on a coarse grid are not exact values
        floor_ms = 1000.0 / out.sampling_rate_hz / math.sqrt(12.0)
        out.uncertainty[key] = round(max(_ms(sd, fs), floor_ms), 1)
        if out.uncertainty[key] > IEC_SD_TOLERANCE_MS[key]:
            out.uncertain[key] = (f"beat-to-beat spread {out.uncertainty[key]:g} ms > "
                                  f"{IEC_SD_TOLERANCE_MS[key]:g} ms (IEC 60601-2-25 SD tolerance)")


def _qtc(out: Measurements) -> None:
    qt, rr = out.qt_interval_ms, out.rr_mean_ms
    keys = ("qtc_bazett_ms", "qtc_fridericia_ms", "qtc_framingham_ms", "qtc_hodges_ms")
    if qt is None or rr is None:
        for k in keys:
            out.not_measurable[k] = "QT or RR not measured"
        return
    rr_s = rr / 1000.0
    hr = 60.0 / rr_s
    out.qtc_bazett_ms = round(qt / math.sqrt(rr_s), 1)                  # Bazett 1920
    out.qtc_fridericia_ms = round(qt / rr_s ** (1 / 3), 1)               # Fridericia 1920
    out.qtc_framingham_ms = round(qt + 154.0 * (1 - rr_s), 1)            # Sagie et al. 1992
    out.qtc_hodges_ms = round(qt + 1.75 * (hr - 60.0), 1)                # Hodges et al. 1983
    for k in keys:
        out.methods[k] = "QT of the median beat, mean RR"
        out.confidence[k] = out.confidence.get("qt_interval_ms", 0.5)
        if "qt_interval_ms" in out.uncertainty:   # the corrections scale QT by a factor (Bazett, Fridericia)
            factor = getattr(out, k) / qt if k in ("qtc_bazett_ms", "qtc_fridericia_ms") else 1.0
            out.uncertainty[k] = round(out.uncertainty["qt_interval_ms"] * factor, 1)
        if "qt_interval_ms" in out.uncertain:
            out.uncertain[k] = out.uncertain["qt_interval_ms"]
