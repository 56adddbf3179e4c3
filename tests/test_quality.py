"""The quality gate: noise that would corrupt the intervals or add beats is refused, clean real records are
kept, mains interference is notch-filtered only when present (moved from tests/reliability/
test_long_and_noise.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))     # bench/ludb_uv.py





def _ludb_record_and_qrs_p2p(bench, data_dir, n: int):
    """LUDB record n (amplitudes as microvolts, bench/ludb_uv.py) and its QRS peak-to-peak amplitude at the
    cardiologists' beats (the SNR reference)."""
    from ludb_uv import read_ludb_uv

    rec = data_dir / f"ludb/data/{n}"
    ecg = read_ludb_uv(data_dir, n)
    beats, _ = bench.reference_beats(rec, ecg.sampling_rate_hz)
    return ecg, bench.qrs_p2p_mv(ecg, [b["peak"] for b in beats])


def test_gate_refuses_muscle_noise_that_corrupts_intervals_and_keeps_the_clean_record(data_dir, noise_bench):
    """6 dB muscle noise moves QRS by >100 ms when measured (bench/noise.py); the gate must refuse it."""
    bench = noise_bench
    from ragecg.signal.quality import assess_quality

    for n in (58, 62):
        ecg, p2p = _ludb_record_and_qrs_p2p(bench, data_dir, n)
        assert assess_quality(ecg).verdict == "usable"
        q = assess_quality(bench.with_noise(ecg, "ma", 6.0, p2p, seed=n))
        assert q.verdict == "unusable" and "muscle" in " ".join(q.reasons)
        assert bench.run_one(bench.with_noise(ecg, "bw", 0.0, p2p, seed=n))[0] != "refused-gate"


def test_gate_keeps_clean_real_records(data_dir):
    """No LUDB development record (1-100) is refused by the quality gate as it stands."""
    from ludb_uv import read_ludb_uv
    from ragecg.signal.quality import assess_quality

    refused = [n for n in range(1, 101, 3) if assess_quality(read_ludb_uv(data_dir, n)).verdict == "unusable"]
    assert refused == []


def test_gate_marks_electrode_motion_that_adds_beats(data_dir, noise_bench):
    """Electrode motion (1-20 Hz bursts, bench/noise.py 'em') at 6 dB adds beats (heart rate off by more than
    twice the IEC tolerance in most LUDB records); the beat-agreement index refuses it when more than ~20 % of the
    beats are disputed (bSQI < 0.80), and otherwise marks the beats disputed (rhythm and rate not interpreted);
    the clean record passes with its beats confirmed."""
    bench = noise_bench
    from ragecg.signal.quality import checked_signal

    for n in (58, 62):
        ecg, p2p = _ludb_record_and_qrs_p2p(bench, data_dir, n)
        _, q = checked_signal(ecg)
        assert q.verdict != "unusable" and q.beat_agreement >= 0.9, q.reasons
        assert not q.beats_disputed
        _, q = checked_signal(bench.with_noise(ecg, "em", 6.0, p2p, seed=n))
        assert q.beat_agreement < 0.9, q.reasons
        if q.beat_agreement < 0.8:
            assert q.verdict == "unusable" and "beats not confirmed" in q.reasons[0], q.reasons
        else:
            assert q.verdict == "limited" and q.beats_disputed and "beats partly confirmed" in q.reasons[0]


def test_consensus_beats_keeps_what_half_the_leads_see():
    from ragecg.signal.quality import bsqi, consensus_beats

    true = np.array([500, 1000, 1500, 2000])
    leads = [true + d for d in (0, 3, -4, 2)] + [np.array([500, 1000, 1250, 1500, 2000]), np.array([1000, 1500])]
    got = consensus_beats(leads, tol=75)
    assert np.all(np.abs(got - true) <= 4) and len(got) == 4        # 1250 is seen by one lead of six only
    assert bsqi(true, got, 75) == 1.0
    assert bsqi(np.array([500, 750, 1000]), true, 75) == pytest.approx(2 / 5)   # 2 matched / (3 + 4 - 2)
    assert bsqi(np.array([]), np.array([]), 75) == 1.0 and bsqi(true, np.array([]), 75) == 0.0


def test_mains_interference_is_notch_filtered_only_when_present(data_dir):
    """0.2 mV of 50 Hz (IEC 60601-2-25 AC filter): removed to a few uV and the record measured as clean;
    a record without a mains line is not filtered at all."""
    from ludb_uv import read_ludb_uv
    from ragecg.pipeline import measure
    from ragecg.signal.quality import checked_signal

    ecg = read_ludb_uv(data_dir, 58)
    same, q = checked_signal(ecg)
    assert same is ecg and q.mains_filter_hz == []
    t = np.arange(ecg.n_samples) / ecg.sampling_rate_hz
    hum = (0.2 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)[:, None]
    import dataclasses
    noisy = dataclasses.replace(ecg, signals_mv=ecg.signals_mv + hum)
    cleaned, q = checked_signal(noisy)
    assert q.mains_filter_hz == [50.0] and q.verdict != "unusable"
    mid = slice(500, ecg.n_samples - 500)          # away from the filter's end transients
    residual = cleaned.signals_mv[mid] - ecg.signals_mv[mid]
    resid_50 = 2 * np.abs(np.mean(residual * np.exp(-2j * np.pi * 50 * t[mid])[:, None], axis=0))
    assert resid_50.max() < 0.005, resid_50           # 200 uV in, < 5 uV of 50 Hz left
    m0, _ = measure(ecg)
    m1, _ = measure(noisy)
    assert abs(m1.qrs_duration_ms - m0.qrs_duration_ms) <= 10 and abs(m1.qt_interval_ms - m0.qt_interval_ms) <= 25
    assert m1.heart_rate_bpm == pytest.approx(m0.heart_rate_bpm, abs=1)
