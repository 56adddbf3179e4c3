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
* missing: NaN/inf in more than 10 % of samples.
Verdict: unusable when fewer than 8 leads are usable or both I and II are unusable; limited when
any lead is not good.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import signal as sps

from .record import STANDARD_LEADS, Ecg

LeadState = Literal["good", "noisy", "flat", "saturated", "missing"]

FLAT_P2P_MV = 0.05
SATURATION_FRACTION = 0.02
MAX_PHYSIOLOGICAL_MV = 15.0
HF_NOISE_RATIO = 0.5
BASELINE_SWING_MV = 3.0
MISSING_FRACTION = 0.10
MIN_USABLE_LEADS = 8


class LeadQuality(BaseModel):
    state: LeadState
    reason: str | None = None
    noise_ratio: float | None = None


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
    if ratio > HF_NOISE_RATIO:
        return LeadQuality(state="noisy", reason=f"high-frequency noise (power >40 Hz / 1-40 Hz = {ratio:.2f})",
                           noise_ratio=ratio)
    b, a = sps.butter(2, 0.5 / nyq, btype="low")
    baseline = sps.filtfilt(b, a, x)
    swing = float(np.ptp(baseline))
    if swing > BASELINE_SWING_MV:
        return LeadQuality(state="noisy", reason=f"baseline wander of {swing:.1f} mV", noise_ratio=ratio)
    return LeadQuality(state="good", noise_ratio=ratio)


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
