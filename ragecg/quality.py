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
  the 40 Hz high-passed lead; mains interference counts) >= 30 uV. Rationale: a median beat of n >= 9
  beats keeps noise excursions (3 SD / sqrt(n)) below 30 uV, the smallest wave IEC 60601-2-51:2003
  Annex GG.5 lets a measurement program recognise (the same constant as measure.MIN_WAVE_MV); noisier
  leads create or hide waves. The noise stress test (bench/noise.py, docs/reliability.md) shows QRS
  and QT errors beyond twice the IEC 60601-2-25 tolerances once muscle noise reaches ~12-15 dB SNR,
  where this estimate is ~45-65 uV on LUDB; clean LUDB leads are ~1-2 uV.
* missing: NaN/inf in more than 10 % of samples.
Verdict: unusable when fewer than 8 leads are usable or both I and II are unusable; limited when
any lead is not good.

After measurement, `lead_reversal_findings` flags a probable LA/RA electrode reversal (or all-lead
polarity inversion) from the median-beat P and QRS polarities; `with_measurement_checks` adds it to the
reasons (verdict at most "limited").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import signal as sps

from .record import STANDARD_LEADS, Ecg

if TYPE_CHECKING:
    from .measure import Measurements

LeadState = Literal["good", "noisy", "too_noisy", "flat", "saturated", "missing"]

FLAT_P2P_MV = 0.05
SATURATION_FRACTION = 0.02
MAX_PHYSIOLOGICAL_MV = 15.0
HF_NOISE_RATIO = 0.5
BASELINE_SWING_MV = 3.0
MAX_HF_NOISE_UV = 30.0
MISSING_FRACTION = 0.10
MIN_USABLE_LEADS = 8


class LeadQuality(BaseModel):
    state: LeadState
    reason: str | None = None
    noise_ratio: float | None = None
    hf_noise_uv: float | None = None       # robust SD above 40 Hz (None when fs <= 90 Hz)


class Quality(BaseModel):
    leads: dict[str, LeadQuality]
    verdict: Literal["usable", "limited", "unusable"]
    reasons: list[str] = Field(default_factory=list)

    def usable_leads(self) -> list[str]:
        """Leads that may be measured: good or noisy (noisy leads are measured with lower confidence)."""
        return [ld for ld, q in self.leads.items() if q.state in ("good", "noisy")]


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
    hf_uv = None
    if nyq > 45:
        hp = sps.sosfiltfilt(sps.butter(4, 40.0 / nyq, btype="high", output="sos"), x)
        hf_uv = round(float(1.4826 * np.median(np.abs(hp)) * 1000.0), 1)
        if hf_uv >= MAX_HF_NOISE_UV:
            mains = {hz: float(pxx[(f >= hz - 1) & (f <= hz + 1)].sum()) for hz in (50, 60)}
            hz = max(mains, key=mains.get)
            what = (f"mains interference at {hz} Hz (use the recorder's mains filter)"
                    if mains[hz] > 0.5 * pxx[high].sum() else "high-frequency (muscle) noise")
            return LeadQuality(state="too_noisy", noise_ratio=ratio, hf_noise_uv=hf_uv,
                               reason=f"{what}: {hf_uv:.0f} uV SD above 40 Hz (limit {MAX_HF_NOISE_UV:g} uV); "
                                      "waves cannot be delineated")
    if ratio > HF_NOISE_RATIO:
        return LeadQuality(state="noisy", reason=f"high-frequency noise (power >40 Hz / 1-40 Hz = {ratio:.2f})",
                           noise_ratio=ratio, hf_noise_uv=hf_uv)
    b, a = sps.butter(2, 0.5 / nyq, btype="low")
    baseline = sps.filtfilt(b, a, x)
    swing = float(np.ptp(baseline))
    if swing > BASELINE_SWING_MV:
        return LeadQuality(state="noisy", reason=f"baseline wander of {swing:.1f} mV", noise_ratio=ratio,
                           hf_noise_uv=hf_uv)
    return LeadQuality(state="good", noise_ratio=ratio, hf_noise_uv=hf_uv)


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
    if len(usable) < MIN_USABLE_LEADS:
        verdict = "unusable"
        reasons.insert(0, f"only {len(usable)} of 12 leads usable (at least {MIN_USABLE_LEADS} needed)")
    elif "I" not in usable and "II" not in usable:
        verdict = "unusable"
        reasons.insert(0, "leads I and II both unusable: no rhythm or axis can be measured")
    elif reasons:
        verdict = "limited"
    else:
        verdict = "usable"
    return Quality(leads=leads, verdict=verdict, reasons=reasons)


# ------------------------------------------------------------------ checks on the measurements
def lead_reversal_findings(m: "Measurements") -> list[str]:
    """A probable left-arm/right-arm electrode reversal, or every lead inverted, from median-beat polarities.

    Rule (Batchvarov, Malik & Camm, Europace 2007;9:1081-1090; Harrigan et al., J Emerg Med
    2012;43:1038-1044): in a rhythm with P waves, a negative P wave AND a negative net QRS in lead I
    with a positive net QRS in aVR (normally negative) indicate LA/RA reversal; dextrocardia gives the
    same limb-lead pattern and is told apart by the precordial leads. When V5 and V6 are also negative
    (normally upright: R-wave progression), the whole recording is probably inverted (polarity) or the
    heart is on the right. Without P waves the rule is not applied (extreme axis deviation alone is not
    specific). On LUDB 1-100 with the arm electrodes swapped in software it flags 60 of 100 records
    (83 keep a detectable P wave) and 1 of the 100 unmodified records (a paced one).
    """
    def get(key: str, lead: str):
        lm = m.leads.get(lead)
        return None if lm is None else getattr(lm, key)

    if not m.p_present:
        return []
    p_i = get("p_amplitude_mv", "I")
    q_i, q_avr = get("qrs_net_mv", "I"), get("qrs_net_mv", "aVR")
    if None in (p_i, q_i, q_avr) or not (p_i < 0 and q_i < 0 < q_avr):
        return []
    v56 = [get("qrs_net_mv", ld) for ld in ("V5", "V6")]
    if all(v is not None and v < 0 for v in v56):
        return ["possible inverted polarity of all leads (or dextrocardia): P and QRS negative in I, QRS positive "
                "in aVR and negative in V5-V6 (Batchvarov et al. 2007) - check the recording; axes and "
                "polarity-based findings are unreliable"]
    return ["possible limb lead reversal (LA/RA): P and QRS negative in I, QRS positive in aVR, V5-V6 upright "
            "(Batchvarov et al. 2007) - check electrode placement; axes and limb-lead findings are unreliable"]


def with_measurement_checks(quality: Quality, m: "Measurements") -> Quality:
    """`quality` with the findings that need measurements (lead reversal) added to its reasons."""
    found = lead_reversal_findings(m)
    if not found:
        return quality
    verdict = "limited" if quality.verdict == "usable" else quality.verdict
    return quality.model_copy(update={"reasons": [*quality.reasons, *found], "verdict": verdict})
