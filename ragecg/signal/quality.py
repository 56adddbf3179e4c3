"""Stage 2 — signal quality per lead and a record verdict, from the signal alone.

Runs before measurement so that flat, saturated or missing leads are never measured (a flat lead
would otherwise yield invented waves). Thresholds and their sources:

* flat: peak-to-peak below 0.05 mV over the record (a normal QRS is >= 0.5 mV in limb leads;
  AHA 2009 Part I, low-voltage definition) — treated as disconnected.
* saturated: >= 2 % of samples sitting at the lead's extreme value in runs (ADC clipping);
  an amplitude beyond +/-15 mV is outside any physiological ECG (IEC 60601-2-25 input range +/-5 mV
  differential with offset tolerance) and means wrong units or a fault.
* noisy: power above 40 Hz over power in 1-40 Hz > 0.5, or baseline (below 0.5 Hz) swing > 3 mV
  (AHA 2007 Part I, Kligfield et al.: diagnostic bandwidth 0.05-150 Hz, baseline stability).
* too_noisy (not measured): robust SD of the signal above 40 Hz (1.4826 x median absolute value of
  the 40 Hz high-passed lead; mains interference left after the notch below counts) >= 30 uV.
  Rationale: a median beat of n >= 9 beats keeps noise excursions (3 SD / sqrt(n)) below 30 uV, the
  smallest wave IEC 60601-2-51:2003 Annex GG.5 lets a measurement program recognise (the same constant
  as measure.MIN_WAVE_MV); noisier leads create or hide waves. The noise stress test (bench/noise.py,
  docs/reliability.md) shows QRS and QT errors beyond twice the IEC 60601-2-25 tolerances once muscle
  noise reaches ~12-15 dB SNR, where this estimate is ~45-65 uV on LUDB; clean LUDB leads are ~1-2 uV.
* missing: NaN/inf in more than 10 % of samples.
* beat agreement (bSQI, Li, Mark & Clifford, Physiol Meas 2008;29:15-32): the beats found by the
  multi-lead detector the measurement uses (`ragecg.signal.beats.detect_beats` on all usable leads) are compared
  with the beats that at least half of the usable leads show when the same detector runs on each lead
  alone (a QRS complex is one cardiac event, seen in every lead; an artefact only in the leads it
  touches); bSQI = matched / (n1 + n2 - matched), two detections matching within 150 ms (Li et al.).
  A full reading needs bSQI >= 0.90: at most ~10 % of the beats may be in dispute, the heart-rate
  tolerance of IEC 60601-2-27:2011 (201.12.1.101.2, +/-10 %), heart rate being counted from the detected
  beats. Electrode motion (noise in the ECG's own band, which the spectral rules above cannot see) adds
  or hides beats. Below that the beats are disputed: the record is still read ("limited") for what the
  median beat of the dominant beats shows (intervals, axis, QRS and ST-T morphology), while the statements
  that count beats (rhythm, rate, premature beats, AV block degrees) and NORM are withheld
  (ragecg.criteria.withhold). It is refused when bSQI < 0.80, more than ~20 % of the beats in dispute: twice
  the IEC tolerance, the bound bench/noise.py holds accepted measurements to. On LUDB 1-100 (design half)
  with electrode-motion noise, records read at bSQI 0.8-0.9 kept their QRS within 1.1 +/- 4.0 ms of the clean
  record's, those at 0.5-0.6 were off by 25 +/- 26 ms (docs/reliability.md). Each lead's own bSQI with the
  multi-lead beats is reported (`beat_agreement`) but does not mark the lead: one-lead detection misses the
  small QRS of clean low-amplitude leads.
Verdict (docs/reliability.md, issue 18): unusable when no lead is usable, when most leads that carry a
signal are too noisy even for the muscle filter, or the beats are not
confirmed; limited when any lead is not good.

Mains interference: IEC 60601-2-25:2011 lets an electrocardiograph filter the line frequency (an "AC
filter", tested with the standard's calibration ECGs) and AHA/ACCF/HRS 2007 (Kligfield et al., Part I)
accepts line-frequency notch filters. `checked_signal` removes it where the gate finds it: when, in
any lead, a 50 or 60 Hz line (below Nyquist) holds more than half of the power above 40 Hz, every lead
is notch-filtered at that frequency (`scipy.signal.iirnotch`, Q = 30, zero phase: the -3 dB band
f0/30 = 1.7-2 Hz wide covers the +/-1 % supply-frequency tolerance of EN 50160) and the gate runs again
on the filtered signal. Records without a mains line are not filtered (a notch is not free: applied to
every LUDB record it moved QRS duration by up to 14 ms); 1 of the 266 clean 500 Hz records in the shared
data (LUDB 1-200, PTB-XL records500) has such a line.

After measurement, `ragecg.signal.checks` flags a probable LA/RA electrode reversal (or all-lead
polarity inversion) from the median-beat P and QRS polarities, and after the criteria
`ragecg.criteria.withhold` withholds the codes that finding makes unreliable.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal as sps

from ragecg.values import FLAT_P2P_MV, STANDARD_LEADS, Ecg, LeadQuality, Quality

from .beats import (INTERNAL_FS, beats_in_detection_signal, butter_ba, butter_sos, filtered, qrs_band,
                    resample_to_internal)
from .pacing import MIN_PACED_BEATS, pacing_of, spike_events, without_spikes
SATURATION_FRACTION = 0.02
MAX_PHYSIOLOGICAL_MV = 15.0
HF_NOISE_RATIO = 0.5
BASELINE_SWING_MV = 3.0
MAX_HF_NOISE_UV = 30.0
MISSING_FRACTION = 0.10
BEAT_MATCH_S = 0.15            # Li, Mark & Clifford 2008: two detections of one beat within 150 ms
MIN_BEAT_AGREEMENT = 0.90      # bSQI: <= ~10 % of beats in dispute (IEC 60601-2-27 heart-rate tolerance)
MIN_BEAT_READABLE = 0.80       # bSQI below: > ~20 % of beats in dispute (twice the IEC tolerance): not read
MAINS_HZ = (50.0, 60.0)
NOTCH_Q = 30.0                 # -3 dB band f0/Q = 1.7-2 Hz: covers EN 50160's +/-1 % supply frequency


def wave_range_uv(x: np.ndarray, fs: float, band_passed: np.ndarray | None = None) -> float:
    """The 0.5-99.5 percentile range (uV) of the lead's waves: 0.5-40 Hz band-passed (2nd order, zero phase;
    `band_passed`: that signal, when already filtered)."""
    y = sps.sosfiltfilt(_wave_band(fs), x) if band_passed is None else band_passed
    return 1000.0 * float(np.percentile(y, 99.5) - np.percentile(y, 0.5))


def _wave_band(fs: float) -> np.ndarray:
    return butter_sos(2, (0.5 / (fs / 2), min(40.0, 0.45 * fs) / (fs / 2)), "band")


@dataclasses.dataclass
class _LeadSpectra:
    """What `_assess_lead` reads of one lead besides its samples: its Welch spectrum, the lead above 40 Hz and
    in the 0.5-40 Hz wave band (None at rates without 45 Hz of bandwidth) and its baseline (< 0.5 Hz)."""

    f: np.ndarray
    pxx: np.ndarray
    above_40_hz: np.ndarray | None
    wave_band: np.ndarray | None
    baseline: np.ndarray


def _lead_spectra(rows: np.ndarray, fs: float) -> list[_LeadSpectra]:
    """`_LeadSpectra` of every row of `rows` (leads x samples, gaps filled), each filter run once over all
    rows: the values are those of the lead filtered alone."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    nyq = fs / 2
    f, pxx = sps.welch(rows - rows.mean(axis=1, keepdims=True), fs=fs, nperseg=min(rows.shape[1], int(fs * 2)),
                       axis=-1)
    hp = band = None
    if nyq > 45:
        hp = sps.sosfiltfilt(butter_sos(4, 40.0 / nyq, "high"), rows, axis=-1)
        band = sps.sosfiltfilt(_wave_band(fs), rows, axis=-1)
    b, a = butter_ba(2, 0.5 / nyq, "low")
    baseline = sps.filtfilt(b, a, rows, axis=-1)
    return [_LeadSpectra(f, pxx[i], None if hp is None else hp[i], None if band is None else band[i], baseline[i])
            for i in range(rows.shape[0])]


# The noise-to-wave rule applies from 10 uV up (below it, noise is under a third of the smallest wave
# IEC 60601-2-51 Annex GG.5 lets a program recognise, whatever the lead's amplitude).
MIN_RATIO_NOISE_UV = 10.0


def _filled(x: np.ndarray) -> np.ndarray | None:
    """The lead with its non-finite samples set to the median of the others; None when more than
    MISSING_FRACTION of them are missing."""
    finite = np.isfinite(x)
    if finite.mean() < 1 - MISSING_FRACTION:
        return None
    return np.where(finite, x, np.nanmedian(x[finite]) if finite.any() else 0.0).astype(np.float64)


def _assess_lead(x: np.ndarray, fs: float, sp: _LeadSpectra) -> LeadQuality:
    """The state of one lead with data (`_filled`), from its samples and its `_lead_spectra`."""
    p2p = float(np.ptp(x))
    if p2p < FLAT_P2P_MV:
        return LeadQuality(state="flat", reason=f"peak-to-peak {p2p:.3f} mV (< {FLAT_P2P_MV} mV): flat or disconnected")
    centred = x - np.median(x)
    if np.max(np.abs(centred)) > MAX_PHYSIOLOGICAL_MV:
        return LeadQuality(state="saturated",
                           reason=f"amplitude beyond {MAX_PHYSIOLOGICAL_MV:g} mV: wrong units (µV labelled mV?) or a fault")
    hi, lo = x.max(), x.min()
    tol = 1e-6 * max(1.0, p2p)
    at_rail = np.mean((x >= hi - tol) | (x <= lo + tol))
    if at_rail >= SATURATION_FRACTION and len(x) > 50:
        return LeadQuality(state="saturated", reason=f"{100 * at_rail:.0f}% of samples at the recording limit (clipped)")
    nyq = fs / 2
    f, pxx = sp.f, sp.pxx
    band = (f >= 1) & (f <= 40)
    high = f > 40
    ratio = float(pxx[high].sum() / max(pxx[band].sum(), 1e-12)) if nyq > 45 else 0.0
    hf_uv = mains_hz = None
    if nyq > 45:
        hp = sp.above_40_hz
        hf_uv = round(float(1.4826 * np.median(np.abs(hp)) * 1000.0), 1)
        # A mains line: more than half of the power above 40 Hz within +/-1 Hz of 50 or 60 Hz.
        mains = {hz: float(pxx[(f >= hz - 1) & (f <= hz + 1)].sum()) for hz in MAINS_HZ}
        hz = max(mains, key=mains.get)
        if mains[hz] > 0.5 * pxx[high].sum():
            mains_hz = hz
        range_uv = wave_range_uv(x, fs, sp.wave_band)
        if hf_uv < MAX_HF_NOISE_UV and hf_uv >= MAX_HF_NOISE_FILTERED_RATIO * range_uv and hf_uv >= MIN_RATIO_NOISE_UV:
            return LeadQuality(state="too_noisy", noise_ratio=ratio, hf_noise_uv=hf_uv,
                               reason=f"high-frequency noise: {hf_uv:.0f} uV SD above 40 Hz on waves of "
                                      f"{range_uv / 1000:.2f} mV (limit {MAX_HF_NOISE_FILTERED_RATIO:g} of their "
                                      "range, about 18 dB SNR); waves cannot be delineated")
        if hf_uv >= MAX_HF_NOISE_UV:
            what = (f"mains interference at {hz:g} Hz" if mains_hz else "high-frequency (muscle) noise")
            return LeadQuality(state="too_noisy", noise_ratio=ratio, hf_noise_uv=hf_uv,
                               mains_hz=mains_hz if mains_hz and mains_hz < nyq else None,
                               reason=f"{what}: {hf_uv:.0f} uV SD above 40 Hz (limit {MAX_HF_NOISE_UV:g} uV); "
                                      "waves cannot be delineated")
    mains_hz = mains_hz if mains_hz and mains_hz < nyq else None
    if ratio > HF_NOISE_RATIO:
        return LeadQuality(state="noisy", reason=f"high-frequency noise (power >40 Hz / 1-40 Hz = {ratio:.2f})",
                           noise_ratio=ratio, hf_noise_uv=hf_uv, mains_hz=mains_hz)
    swing = float(np.ptp(sp.baseline))
    if swing > BASELINE_SWING_MV:
        return LeadQuality(state="noisy", reason=f"baseline wander of {swing:.1f} mV", noise_ratio=ratio,
                           hf_noise_uv=hf_uv, mains_hz=mains_hz)
    return LeadQuality(state="good", noise_ratio=ratio, hf_noise_uv=hf_uv, mains_hz=mains_hz)


def assess_quality(ecg: Ecg, *, muscle_filter_hz: float | None = None,
                   raw_hf_uv: dict[str, float | None] | None = None) -> Quality:
    """Per-lead state and the record verdict (usable / limited / unusable) with reasons.

    `muscle_filter_hz` and `raw_hf_uv` (the unfiltered leads' noise above 40 Hz) are given when the
    record was low-pass filtered against muscle noise: a lead stays too noisy when its unfiltered noise
    reached MAX_HF_NOISE_FILTERED_RATIO of its waves' range."""
    absent = set(ecg.missing_leads)
    fs = ecg.sampling_rate_hz
    present = [ld for ld in STANDARD_LEADS if ld not in absent]
    filled = {ld: _filled(ecg.lead(ld)) for ld in present}
    readable = [ld for ld in present if filled[ld] is not None]
    spectra = dict(zip(readable, _lead_spectra(np.stack([filled[ld] for ld in readable]), fs))) if readable else {}
    leads = {}
    for ld in STANDARD_LEADS:
        if ld in absent:
            leads[ld] = LeadQuality(state="missing", reason="not in the recording")
        elif filled[ld] is None:
            missing = 1 - np.isfinite(ecg.lead(ld)).mean()
            leads[ld] = LeadQuality(state="missing", reason=f"{100 * missing:.0f}% of samples are NaN/inf")
        else:
            leads[ld] = _assess_lead(filled[ld], fs, spectra[ld])
    if muscle_filter_hz and raw_hf_uv:
        for ld, hf in raw_hf_uv.items():
            if hf is None or leads[ld].state not in ("good", "noisy"):
                continue
            x = np.asarray(ecg.lead(ld), dtype=np.float64)
            range_uv = wave_range_uv(np.where(np.isfinite(x), x, np.nanmedian(x)), fs)
            if hf >= MAX_HF_NOISE_FILTERED_RATIO * range_uv:
                leads[ld] = LeadQuality(state="too_noisy", hf_noise_uv=hf,
                                        reason=f"high-frequency (muscle) noise: {hf:.0f} uV SD above 40 Hz, too much "
                                               f"for the {muscle_filter_hz:g} Hz muscle filter on waves of "
                                               f"{range_uv / 1000:.2f} mV (limit {MAX_HF_NOISE_FILTERED_RATIO:g} of "
                                               "their range); waves cannot be delineated")
    sources = [ld for ld in ("I", "II", "III") if ld not in ecg.derived_leads and ld not in absent]
    for ld in ecg.derived_leads:  # derived leads inherit the worst state of the leads they come from
        bad = [leads[s] for s in sources if leads[s].state != "good"]
        if bad:
            leads[ld] = LeadQuality(state=bad[0].state, reason=f"derived from {' and '.join(sources)}: "
                                                               + (bad[0].reason or ""))
    usable = [ld for ld, q in leads.items() if q.state in ("good", "noisy")]
    reasons = [f"{ld}: {q.reason}" for ld, q in leads.items() if q.state != "good" and ld not in absent]
    if absent:
        reasons.insert(0, f"leads not in the recording: {', '.join(ld for ld in STANDARD_LEADS if ld in absent)} "
                          f"({12 - len(absent)}-lead ECG); statements whose criteria need them are not evaluated")
    agreement = None
    if usable:
        agreement, per_lead = beat_agreement(ecg, usable)
        for ld, b in per_lead.items():
            leads[ld] = leads[ld].model_copy(update={"beat_agreement": round(b, 3)})
    signal_leads = [ld for ld, lq in leads.items() if lq.state not in ("missing", "flat")]
    noisy = [ld for ld in signal_leads if leads[ld].state == "too_noisy"]
    if not usable:
        verdict = "unusable"
        reasons.insert(0, "no usable lead: no rhythm lead can be measured")
    elif 2 * len(noisy) > len(signal_leads):
        # Noise in most leads that carry a signal: the few left are not trusted alone (the majority rule of
        # the beat consensus below); leads that are absent or flat do not count (reduced-lead ECGs).
        verdict = "unusable"
        reasons.insert(0, f"too noisy: {len(noisy)} of the {len(signal_leads)} leads with a signal cannot be delineated "
                          "even with the muscle filter")
    elif agreement < MIN_BEAT_READABLE:
        verdict = "unusable"
        reasons.insert(0, f"beats not confirmed: the detected beats agree with those seen by at least half of the "
                          f"leads at bSQI {agreement:.2f} (at least {MIN_BEAT_READABLE:.2f} needed to read the "
                          "record); electrode motion or other artefact adds or hides beats")
    elif agreement < MIN_BEAT_AGREEMENT:
        verdict = "limited"
        reasons.insert(0, f"beats partly confirmed: the detected beats agree with those seen by at least half of "
                          f"the leads at bSQI {agreement:.2f} ({MIN_BEAT_AGREEMENT:.2f} for a full reading); electrode "
                          "motion or other artefact adds or hides beats, so rhythm, rate and premature beats are not "
                          "interpreted")
    elif reasons:
        verdict = "limited"
    else:
        verdict = "usable"
    disputed = verdict == "limited" and agreement is not None and agreement < MIN_BEAT_AGREEMENT
    return Quality(leads=leads, verdict=verdict, reasons=reasons, beats_disputed=disputed,
                   beat_agreement=None if agreement is None else round(agreement, 3),
                   missing_leads=[ld for ld in STANDARD_LEADS if ld in absent],
                   unusable_leads=[ld for ld in STANDARD_LEADS if ld not in absent and ld not in usable],
                   muscle_filter_hz=muscle_filter_hz)


def _matched_beats(a: np.ndarray, b: np.ndarray, tol: int) -> int:
    """Beats of `a` with a beat of `b` within `tol` samples (each beat of `b` used once)."""
    if a.size == 0 or b.size == 0:
        return 0
    j = np.clip(np.searchsorted(b, a), 1, b.size - 1) if b.size > 1 else np.zeros(a.size, dtype=int)
    near = np.where(np.abs(b[j - 1] - a) <= np.abs(b[j] - a), j - 1, j) if b.size > 1 else j
    ok = np.abs(b[near] - a) <= tol
    return int(np.unique(near[ok]).size)


def bsqi(a: np.ndarray, b: np.ndarray, tol: int) -> float:
    """Li, Mark & Clifford (2008) bSQI of two beat lists: matched / (n_a + n_b - matched); 1 when both are empty."""
    if a.size == 0 and b.size == 0:
        return 1.0
    m = _matched_beats(np.sort(a), np.sort(b), tol)
    return m / (a.size + b.size - m)


def consensus_beats(per_lead: list[np.ndarray], tol: int) -> np.ndarray:
    """Beats that at least half of the leads' own detections find (within `tol` samples of one another):
    a QRS complex is one cardiac event, seen in every lead; an artefact is seen in the leads it touches."""
    found = [(int(b), i) for i, p in enumerate(per_lead) for b in p]
    found.sort()
    out, k = [], 0
    while k < len(found):
        j = k
        while j + 1 < len(found) and found[j + 1][0] - found[k][0] <= tol:
            j += 1
        group = found[k:j + 1]
        if 2 * len({i for _, i in group}) >= len(per_lead):
            out.append(int(np.median([b for b, _ in group])))
        k = j + 1
    return np.asarray(out, dtype=int)


def beat_agreement(ecg: Ecg, leads: list[str]) -> tuple[float, dict[str, float]]:
    """bSQI of the beats the measurement's multi-lead detector finds in `leads` (`ragecg.signal.beats`) with the
    consensus of the same detector run on each lead alone (`consensus_beats`), and per lead the bSQI of
    that lead's own beats with the multi-lead ones. Beats within BEAT_MATCH_S of the record's ends are
    not compared (a QRS cut by the end may be found by one detection only)."""
    cols = []
    for ld in leads:
        x = np.asarray(ecg.lead(ld), dtype=np.float64)
        finite = np.isfinite(x)
        if not finite.all():
            idx = np.arange(len(x))
            x = np.interp(idx, idx[finite], x[finite])
        cols.append(x)
    x = filtered(resample_to_internal(np.column_stack(cols), ecg.sampling_rate_hz), INTERNAL_FS, ecg.sampling_rate_hz)
    tol = int(round(BEAT_MATCH_S * INTERNAL_FS))
    n = x.shape[0]

    def inner(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=int)
        return p[(p >= tol) & (p < n - tol)]

    band = qrs_band(x, INTERNAL_FS)        # each lead filtered alone: the same values filtered together
    together = inner(beats_in_detection_signal(np.sqrt(np.sum(band ** 2, axis=1)), INTERNAL_FS))
    alone = [inner(beats_in_detection_signal(np.sqrt(np.sum(band[:, [j]] ** 2, axis=1)), INTERNAL_FS))
             for j in range(len(leads))]
    per_lead = {ld: bsqi(together, p, tol) for ld, p in zip(leads, alone)}
    return bsqi(together, consensus_beats(alone, tol), tol), per_lead



def gaps_interpolated(x: np.ndarray, nan: np.ndarray) -> np.ndarray:
    """`x` (samples x leads, float64, changed in place) with its non-finite samples (`nan`) linearly
    interpolated per lead, so that a filter can run over them; an all-NaN lead becomes 0."""
    if nan.any():
        idx = np.arange(x.shape[0])
        for j in range(x.shape[1]):
            ok = ~nan[:, j]
            x[:, j] = np.interp(idx, idx[ok], x[ok, j]) if ok.any() else 0.0
    return x


def without_mains(ecg: Ecg, hz: list[float]) -> Ecg:
    """`ecg` with every lead notch-filtered (zero phase, Q = NOTCH_Q) at each frequency in `hz`; NaN kept."""
    x = ecg.signals_mv.astype(np.float64)
    fs = ecg.sampling_rate_hz
    nan = ~np.isfinite(x)
    x = gaps_interpolated(x, nan)
    for f0 in hz:
        if f0 < fs / 2:
            b, a = sps.iirnotch(f0, NOTCH_Q, fs)
            x = sps.filtfilt(b, a, x, axis=0)
    x[nan] = np.nan
    return dataclasses.replace(ecg, signals_mv=x.astype(np.float32))


def checked_signal(ecg: Ecg) -> tuple[Ecg, Quality]:
    """The signal to measure and its quality: mains interference found by the gate is notch-filtered,
    muscle noise is low-pass filtered (MUSCLE_FILTER_HZ), the gate run again on the filtered signal; the
    record is left unchanged otherwise. Einthoven's law is checked on the leads as recorded."""
    spikes = spike_events(ecg)                 # on the raw signal: a low-pass filter hides the stimuli
    if len(spikes) >= MIN_PACED_BEATS:
        ecg = without_spikes(ecg, spikes)
    quality = assess_quality(ecg)
    hz = sorted({q.mains_hz for q in quality.leads.values() if q.mains_hz})
    if hz:
        ecg = without_mains(ecg, hz)
        quality = assess_quality(ecg).model_copy(update={"mains_filter_hz": hz})
    muscle = [ld for ld, q in quality.leads.items() if q.state == "too_noisy" and not q.mains_hz]
    if muscle and ecg.sampling_rate_hz / 2 > MUSCLE_FILTER_HZ:
        raw_hf = {ld: q.hf_noise_uv for ld, q in quality.leads.items()}
        ecg = low_passed(ecg, MUSCLE_FILTER_HZ)
        quality = assess_quality(ecg, muscle_filter_hz=MUSCLE_FILTER_HZ, raw_hf_uv=raw_hf).model_copy(
            update={"mains_filter_hz": hz})
        quality.reasons.append(
            f"muscle noise in {', '.join(muscle)}: {MUSCLE_FILTER_HZ:g} Hz low-pass (muscle) filter applied before "
            "measurement; timing measured on the filtered signal, amplitudes (R, S, ST) lowered by the filter are "
            "less certain (AHA/ACCF/HRS 2007, Kligfield et al.)")
        if quality.verdict == "usable":
            quality.verdict = "limited"
    quality = with_einthoven_check(ecg, quality)
    if quality.usable_leads():
        pacing = pacing_of(ecg, quality.usable_leads(), spikes)
        quality = quality.model_copy(update={"pacing": pacing})
        if pacing.note:
            quality.reasons.append(pacing.note)
        disputed = quality.beats_disputed or (quality.verdict == "unusable"
                                              and quality.reasons[0].startswith("beats not confirmed"))
        if disputed and pacing.kind == "ventricular" and 2 * pacing.paced_beats >= pacing.beats:
            # Paced beats are confirmed by their stimuli, seen in >= SPIKE_MIN_LEADS leads at one instant;
            # the per-lead detectors disagree on the wide paced complexes (LUDB 45, 72).
            quality.reasons[0] = (f"beats confirmed by pacemaker stimuli ({pacing.paced_beats} of {pacing.beats}); "
                                  f"per-lead beat agreement: bSQI {quality.beat_agreement:.2f}")
            quality.verdict, quality.beats_disputed = "limited", False
    return ecg, quality


MUSCLE_FILTER_HZ = 40.0
# A lead stays too noisy even after the muscle filter when its unfiltered noise above 40 Hz is large for
# the lead's own waves: above MAX_HF_NOISE_FILTERED_RATIO of the 0.5-99.5 percentile range of the filtered,
# baseline-removed (0.5 Hz high-pass) lead. 0.04 is about 18 dB SNR as the MIT-BIH Noise Stress Test
# defines it (Moody et al. 1984: S = (QRS peak-to-peak)^2 / 8) for 10-150 Hz muscle noise (Friesen et
# al., IEEE Trans Biomed Eng 1990;37:85-98), where 0.89 of its SD lies above 40 Hz; the filtered
# delineation keeps QRS and QT within twice the IEC 60601-2-25 tolerances at 24 and 18 dB and not at
# 12 dB (bench/noise.py on LUDB 1-20, the development half). An absolute limit (57 uV, the 30 uV
# smallest wave of IEC 60601-2-51 left after the filter) was tried first: it refused the limb leads of
# the Contec EDF sample (70-134 uV on 2-6 mV waves) and still let 12 dB records through.
MAX_HF_NOISE_FILTERED_RATIO = 0.04


def low_passed(ecg: Ecg, cutoff_hz: float) -> Ecg:
    """`ecg` with every lead low-pass filtered (Butterworth, 2nd order, zero phase: 4th-order magnitude,
    no delay, so wave timing is kept); NaN kept. AHA/ACCF/HRS 2007 (Kligfield et al., Circulation
    2007;115:1306-1324, Part I "Filtering"): a 40 Hz "muscle" low-pass lowers R and S amplitudes
    and may hide notches and pacing spikes; 150 Hz is the diagnostic standard, so a filtered record
    is interpreted with that caveat."""
    x = ecg.signals_mv.astype(np.float64)
    nan = ~np.isfinite(x)
    x = gaps_interpolated(x, nan)
    sos = butter_sos(2, cutoff_hz / (ecg.sampling_rate_hz / 2), "low")
    x = sps.sosfiltfilt(sos, x, axis=0)
    x[nan] = np.nan
    return dataclasses.replace(ecg, signals_mv=x.astype(np.float32))


# ------------------------------------------------------------------ Einthoven's law on recorded limb leads
# I + III = II and aVR + aVL + aVF = 0 hold exactly for leads recorded from the same electrodes
# (Einthoven 1913; Goldberger 1942); a digital electrocardiograph computes the limb leads from the same
# digitised electrode potentials, so they agree to rounding. Tolerance of the residual's RMS:
# EINTHOVEN_GAIN_TOL (1 %) of the sum of the three leads' RMS (a per-channel calibration difference) plus
# EINTHOVEN_FLOOR_MV = 10 uV (rounding in three channels at the 5 uV/LSB resolution AHA/ACCF/HRS 2007,
# Kligfield et al., recommends as the coarsest). Not the +/-5 % per-channel gain accuracy of
# IEC 60601-2-25:2011 (201.12.4.107.1): that bound, checked first, flags only 146 of the 200 LUDB records
# read through their per-lead normalising header gains. A larger residual means wrong gains, wrong lead
# labels or leads from different recordings. Checked on 0.5-40 Hz band-passed leads (the diagnostic waves
# without the per-channel baseline offsets some files carry). Looked at on PTB-XL fold 9 (validation) and
# LUDB: PTB-XL fold 9 flags 3 of 2,183 records (0.14 %; 99 % of records are below 0.1 of the tolerance),
# LUDB via its header gains 195 of 200 (docs/reliability.md).
EINTHOVEN_GAIN_TOL = 0.01
EINTHOVEN_FLOOR_MV = 0.01


def einthoven_residuals(ecg: Ecg, usable: list[str]) -> dict[str, float]:
    """Per law ("I+III=II", "aVR+aVL+aVF=0") whose leads are all recorded (not derived) and usable: the
    residual's RMS divided by its tolerance (> 1 is a violation)."""
    laws = {"I+III=II": (("I", 1.0), ("III", 1.0), ("II", -1.0)),
            "aVR+aVL+aVF=0": (("aVR", 1.0), ("aVL", 1.0), ("aVF", 1.0))}
    fs = ecg.sampling_rate_hz
    sos = _wave_band(fs)
    out = {}
    for law, terms in laws.items():
        names = [ld for ld, _ in terms]
        if any(ld in ecg.derived_leads or ld in ecg.missing_leads or ld not in usable for ld in names):
            continue
        cols = []
        for ld, _ in terms:
            x = np.asarray(ecg.lead(ld), dtype=np.float64)
            ok = np.isfinite(x)
            if not ok.all():
                x = np.interp(np.arange(len(x)), np.flatnonzero(ok), x[ok])
            cols.append(sps.sosfiltfilt(sos, x))
        rms = [float(np.sqrt(np.mean(c ** 2))) for c in cols]
        resid = sum(sign * c for (_, sign), c in zip(terms, cols))
        tol = EINTHOVEN_GAIN_TOL * sum(rms) + EINTHOVEN_FLOOR_MV
        out[law] = round(float(np.sqrt(np.mean(resid ** 2))) / tol, 3)
    return out


def with_einthoven_check(ecg: Ecg, quality: Quality) -> Quality:
    """`quality` with Einthoven's law checked; a violation is a finding that withholds amplitude and axis
    statements (`withhold_unreliable_codes`)."""
    res = einthoven_residuals(ecg, quality.usable_leads())
    bad = {law: r for law, r in res.items() if r > 1.0}
    update: dict = {"einthoven": res}
    if bad:
        what = "; ".join(f"{law} off by {r:.1f}x its tolerance" for law, r in bad.items())
        update["reasons"] = [*quality.reasons,
                             f"limb leads inconsistent (Einthoven's law: {what}): wrong gains, wrong lead labels or "
                             "leads from different recordings - amplitudes and axes are unreliable"]
        update["electrode_findings"] = [*quality.electrode_findings, "limb_lead_inconsistency"]
        if quality.verdict == "usable":
            update["verdict"] = "limited"
    return quality.model_copy(update=update)
