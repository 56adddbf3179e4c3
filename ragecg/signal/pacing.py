"""Pacemaker stimulus ("spike") detection on the raw signal, before any low-pass filter.

A pacing pulse lasts 0.1-2.0 ms and rises in under 100 us (IEC 60601-2-27:2011, 201.12.1.101.13,
pacemaker pulse test: amplitude +/-2 to +/-700 mV, width 0.1-2 ms). Sampled at >= 500 Hz it appears,
after the recorder's anti-alias filter, as a deflection of one or two samples, simultaneous in most leads:
far sharper than any QRS (whose steepest part lasts >= 10 ms). Some recorders replace the pulse by a
rectangular marker of a few samples (a step to a held value). Detector (the slope/width principle of
published pace-pulse detectors, e.g. Herleikson, US 5,682,902, and the AAMI/IEC pulse definitions):

* sharp sample: |x[n] - (x[n-1] + x[n+1]) / 2| >= SPIKE_SHARPNESS x the lead's 0.5-99.5 percentile range
  (a triangle QRS of width >= 10 samples at 500 Hz cannot exceed ~0.2 of its height); or a marker step:
  a one-sample step >= 0.15 x the range, with the three samples before and two after moving < 25 % / 10 %
  as much;
* an event: such samples in at least SPIKE_MIN_LEADS leads within one sample of each other;
* a paced beat: an event 10-200 ms before the beat's QRS fiducial (the fiducial, the peak of the QRS
  energy, lies up to ~150 ms after the stimulus in wide paced complexes; an event at the fiducial itself
  is a QRS or an artefact the detector took for one); ventricular pacing when at least MIN_PACED_BEATS
  beats are paced. Atrial-only pacing (a spike before a P wave) is
  not told apart from other sharp events here and is reported as not excluded.

Below 500 Hz the pulse is not seen: pacing cannot be excluded, and the report says so. Checked on
LUDB (500 Hz, 10 paced records of 200): docs/reliability.md.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ragecg.values import STANDARD_LEADS, PacingFinding

from .beats import INTERNAL_FS, detect_beats, filtered, resample_to_internal

MIN_FS_HZ = 500.0
SPIKE_SHARPNESS = 0.25
STEP_SIZE = 0.15
SPIKE_MIN_LEADS = 4
MARKER_MIN_LEADS = 6
BEFORE_QRS_S = 0.20
MIN_PACED_BEATS = 2


def _events(x: np.ndarray) -> np.ndarray:
    """Sample indices of multi-lead spike or marker-step events (one per 50 ms)."""
    amp = np.percentile(x, 99.5, axis=0) - np.percentile(x, 0.5, axis=0)
    amp = np.maximum(amp, 1e-6)
    d2 = np.zeros_like(x)
    d2[1:-1] = x[1:-1] - (x[:-2] + x[2:]) / 2
    hit = np.abs(d2) / amp >= SPIKE_SHARPNESS
    hit = hit | np.roll(hit, 1, axis=0) | np.roll(hit, -1, axis=0)
    spikes = hit.sum(axis=1) >= SPIKE_MIN_LEADS
    d = np.zeros_like(x)
    d[1:] = np.abs(np.diff(x, axis=0)) / amp
    pre = np.maximum.reduce([np.roll(d, s, axis=0) for s in (1, 2, 3)])
    post = np.maximum.reduce([np.roll(d, -s, axis=0) for s in (1, 2)])
    step = (d >= STEP_SIZE) & (pre <= 0.25 * d) & (post <= 0.1 * d)
    steps = step.sum(axis=1) >= MARKER_MIN_LEADS
    both = np.flatnonzero(spikes | steps)
    both = both[(both > 3) & (both < x.shape[0] - 3)]
    return np.asarray([v for i, v in enumerate(both) if i == 0 or v - both[i - 1] > 25], dtype=int)


def spike_events(ecg) -> np.ndarray:
    """Spike/marker events (samples) on the raw leads of an `Ecg` sampled at >= MIN_FS_HZ (else none):
    leads that are flat or absent are left out."""
    if ecg.sampling_rate_hz < MIN_FS_HZ:
        return np.zeros(0, dtype=int)
    x = np.asarray(ecg.signals_mv, dtype=np.float64)
    keep = [j for j in range(x.shape[1]) if np.isfinite(x[:, j]).mean() > 0.9 and np.nanmax(x[:, j]) - np.nanmin(x[:, j]) >= 0.05]
    if len(keep) < SPIKE_MIN_LEADS:
        return np.zeros(0, dtype=int)
    x = x[:, keep]
    return _events(np.where(np.isfinite(x), x, 0.0))


def without_spikes(ecg, events: np.ndarray):
    """`ecg` with each pacing stimulus blanked (linear interpolation from 2 ms before to BLANK_S after),
    as electrocardiographs blank pace pulses before analysis, so that the beat detector and the
    delineation see the paced complex, not the stimulus."""
    fs = ecg.sampling_rate_hz
    x = ecg.signals_mv.astype(np.float64).copy()
    pre, post = max(1, int(round(0.002 * fs))), int(round(BLANK_S * fs))
    for e in events:
        a, b = max(0, e - pre - 1), min(x.shape[0] - 1, e + post)
        t = np.arange(a, b + 1)
        x[a:b + 1] = x[a] + (x[b] - x[a]) * ((t - a) / max(b - a, 1))[:, None]
    return dataclasses.replace(ecg, signals_mv=x.astype(np.float32))


BLANK_S = 0.010   # LUDB's recorder marks a pulse with a 4-sample (8 ms) plateau


def detect_pacing(fs: float, events: np.ndarray, beat_samples: np.ndarray) -> PacingFinding:
    """Pacing from the stimulus events and the beats' QRS fiducials (samples at `fs`): a beat is paced when
    an event lies 10-200 ms before its fiducial (an event at the fiducial is the QRS or an artefact the
    detector took for one, not a stimulus that precedes a QRS)."""
    if fs < MIN_FS_HZ:
        return PacingFinding(kind="not_excluded", beats=int(len(beat_samples)),
                             note=f"sampled at {fs:g} Hz: pacemaker stimuli (0.1-2 ms) are not visible below "
                                  f"{MIN_FS_HZ:g} Hz, so pacing cannot be excluded")
    ev = np.asarray(events, dtype=int)
    before, after = int(BEFORE_QRS_S * fs), int(MIN_LEAD_S * fs)
    paced = [int(b) for b in beat_samples if np.any((ev >= b - before) & (ev <= b - after))]
    kind = "ventricular" if len(paced) >= MIN_PACED_BEATS else "none"
    note = (f"pacemaker stimuli before {len(paced)} of {len(beat_samples)} QRS complexes: ventricular pacing; "
            "stimuli blanked before measurement, morphology statements of paced beats withheld"
            if kind == "ventricular" else None)
    return PacingFinding(kind=kind, spike_count=int(len(ev)), paced_beats=len(paced), beats=int(len(beat_samples)),
                         spike_samples=[int(v) for v in ev], paced_beat_samples=paced, note=note)


MIN_LEAD_S = 0.010


def pacing_of(ecg, usable_leads: list[str], events: np.ndarray) -> PacingFinding:
    """`detect_pacing` with the beats the multi-lead detector of `ragecg.beats` finds in `usable_leads`."""
    idx = [STANDARD_LEADS.index(ld) for ld in usable_leads]
    if not idx:
        return PacingFinding(kind="not_excluded", note="no usable lead")
    fs = ecg.sampling_rate_hz
    if fs >= MIN_FS_HZ and len(idx) < SPIKE_MIN_LEADS:
        return PacingFinding(kind="not_excluded",
                             note=f"fewer than {SPIKE_MIN_LEADS} usable leads: pacing stimuli cannot be confirmed")
    x = ecg.signals_mv[:, idx].astype(np.float64)
    x = np.where(np.isfinite(x), x, 0.0)
    peaks = detect_beats(filtered(resample_to_internal(x, fs), INTERNAL_FS, fs), INTERNAL_FS)
    beats = np.round(np.asarray(peaks, dtype=float) * fs / INTERNAL_FS).astype(int)
    return detect_pacing(fs, events, beats)
