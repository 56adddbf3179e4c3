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
  The record is refused when bSQI < 0.90: at most ~10 % of the beats may be in dispute, the heart-rate
  tolerance of IEC 60601-2-27:2011 (201.12.1.101.2, +/-10 %), heart rate being counted from the detected
  beats. Electrode motion (noise in the ECG's own band, which the spectral rules above cannot see) adds
  or hides beats. Each lead's own bSQI with the multi-lead beats is reported (`beat_agreement`) but does
  not mark the lead: one-lead detection misses the small QRS of clean low-amplitude leads.
Verdict: unusable when fewer than 8 leads are usable, both I and II are unusable, or the beats are not
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

import numpy as np
from scipy import signal as sps

from ragecg.values import FLAT_P2P_MV, STANDARD_LEADS, Ecg, LeadQuality, Quality

from .beats import INTERNAL_FS, detect_beats, filtered, resample_to_internal
SATURATION_FRACTION = 0.02
MAX_PHYSIOLOGICAL_MV = 15.0
HF_NOISE_RATIO = 0.5
BASELINE_SWING_MV = 3.0
MAX_HF_NOISE_UV = 30.0
MISSING_FRACTION = 0.10
MIN_USABLE_LEADS = 8
BEAT_MATCH_S = 0.15            # Li, Mark & Clifford 2008: two detections of one beat within 150 ms
MIN_BEAT_AGREEMENT = 0.90      # bSQI: <= ~10 % of beats in dispute (IEC 60601-2-27 heart-rate tolerance)
MAINS_HZ = (50.0, 60.0)
NOTCH_Q = 30.0                 # -3 dB band f0/Q = 1.7-2 Hz: covers EN 50160's +/-1 % supply frequency


def _assess_lead(x: np.ndarray, fs: float) -> LeadQuality:
    finite = np.isfinite(x)
    if finite.mean() < 1 - MISSING_FRACTION:
        return LeadQuality(state="missing", reason=f"{100 * (1 - finite.mean()):.0f}% of samples are NaN/inf")
    x = np.where(finite, x, np.nanmedian(x[finite]) if finite.any() else 0.0).astype(np.float64)
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
    f, pxx = sps.welch(x - x.mean(), fs=fs, nperseg=min(len(x), int(fs * 2)))
    band = (f >= 1) & (f <= 40)
    high = f > 40
    ratio = float(pxx[high].sum() / max(pxx[band].sum(), 1e-12)) if nyq > 45 else 0.0
    hf_uv = mains_hz = None
    if nyq > 45:
        hp = sps.sosfiltfilt(sps.butter(4, 40.0 / nyq, btype="high", output="sos"), x)
        hf_uv = round(float(1.4826 * np.median(np.abs(hp)) * 1000.0), 1)
        # A mains line: more than half of the power above 40 Hz within +/-1 Hz of 50 or 60 Hz.
        mains = {hz: float(pxx[(f >= hz - 1) & (f <= hz + 1)].sum()) for hz in MAINS_HZ}
        hz = max(mains, key=mains.get)
        if mains[hz] > 0.5 * pxx[high].sum():
            mains_hz = hz
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
    b, a = sps.butter(2, 0.5 / nyq, btype="low")
    baseline = sps.filtfilt(b, a, x)
    swing = float(np.ptp(baseline))
    if swing > BASELINE_SWING_MV:
        return LeadQuality(state="noisy", reason=f"baseline wander of {swing:.1f} mV", noise_ratio=ratio,
                           hf_noise_uv=hf_uv, mains_hz=mains_hz)
    return LeadQuality(state="good", noise_ratio=ratio, hf_noise_uv=hf_uv, mains_hz=mains_hz)


def assess_quality(ecg: Ecg) -> Quality:
    """Per-lead state and the record verdict (usable / limited / unusable) with reasons."""
    leads = {ld: _assess_lead(ecg.lead(ld), ecg.sampling_rate_hz) for ld in STANDARD_LEADS}
    for ld in ecg.derived_leads:  # derived leads inherit the worst state of I and II
        worst = [leads["I"], leads["II"]]
        bad = [q for q in worst if q.state != "good"]
        if bad:
            leads[ld] = LeadQuality(state=bad[0].state, reason="derived from I and II: " + (bad[0].reason or ""))
    usable = [ld for ld, q in leads.items() if q.state in ("good", "noisy")]
    reasons = [f"{ld}: {q.reason}" for ld, q in leads.items() if q.state != "good"]
    agreement = None
    if len(usable) >= MIN_USABLE_LEADS:
        agreement, per_lead = beat_agreement(ecg, usable)
        for ld, b in per_lead.items():
            leads[ld] = leads[ld].model_copy(update={"beat_agreement": round(b, 3)})
    if len(usable) < MIN_USABLE_LEADS:
        verdict = "unusable"
        reasons.insert(0, f"only {len(usable)} of 12 leads usable (at least {MIN_USABLE_LEADS} needed)")
    elif "I" not in usable and "II" not in usable:
        verdict = "unusable"
        reasons.insert(0, "leads I and II both unusable: no rhythm or axis can be measured")
    elif agreement < MIN_BEAT_AGREEMENT:
        verdict = "unusable"
        reasons.insert(0, f"beats not confirmed: the detected beats agree with those seen by at least half of the "
                          f"leads at bSQI {agreement:.2f} (at least {MIN_BEAT_AGREEMENT:.2f} needed); electrode motion "
                          "or other artefact adds or hides beats")
    elif reasons:
        verdict = "limited"
    else:
        verdict = "usable"
    return Quality(leads=leads, verdict=verdict, reasons=reasons,
                   beat_agreement=None if agreement is None else round(agreement, 3))


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

    together = inner(detect_beats(x, INTERNAL_FS))
    alone = [inner(detect_beats(x[:, [j]], INTERNAL_FS)) for j in range(len(leads))]
    per_lead = {ld: bsqi(together, p, tol) for ld, p in zip(leads, alone)}
    return bsqi(together, consensus_beats(alone, tol), tol), per_lead


def without_mains(ecg: Ecg, hz: list[float]) -> Ecg:
    """`ecg` with every lead notch-filtered (zero phase, Q = NOTCH_Q) at each frequency in `hz`; NaN kept."""
    import dataclasses

    x = ecg.signals_mv.astype(np.float64)
    fs = ecg.sampling_rate_hz
    nan = ~np.isfinite(x)
    if nan.any():
        idx = np.arange(x.shape[0])
        for j in range(x.shape[1]):
            ok = ~nan[:, j]
            x[:, j] = np.interp(idx, idx[ok], x[ok, j]) if ok.any() else 0.0
    for f0 in hz:
        if f0 < fs / 2:
            b, a = sps.iirnotch(f0, NOTCH_Q, fs)
            x = sps.filtfilt(b, a, x, axis=0)
    x[nan] = np.nan
    return dataclasses.replace(ecg, signals_mv=x.astype(np.float32))


def checked_signal(ecg: Ecg) -> tuple[Ecg, Quality]:
    """The signal to measure and its quality: mains interference found by the gate is notch-filtered
    (and the gate run again on the filtered signal); the record is left unchanged otherwise."""
    quality = assess_quality(ecg)
    hz = sorted({q.mains_hz for q in quality.leads.values() if q.mains_hz})
    if not hz:
        return ecg, quality
    clean = without_mains(ecg, hz)
    return clean, assess_quality(clean).model_copy(update={"mains_filter_hz": hz})
