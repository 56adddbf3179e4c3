"""PR at 100 Hz (issues 17 and 19): PTB-XL's 100 Hz records are downsampled 500 Hz records. On LUDB sinus
records taken to 100 Hz, the PR must not move in 10 ms steps with the phase of the 100 Hz grid, must stay
within one 100 Hz sample period of the 500 Hz PR, and its reported uncertainty must not be below the
quantisation floor of the record's own sampling (one sample period / sqrt(12)). bench/ludb_pr.py gives
the figures over LUDB 1-100. Amplitudes are read as microvolts (the LUDB headers' gains scale every lead to 1 mV)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from scipy import signal as sps

from ragecg.reading.leads import ecg_from_leads
from ragecg.signal.measure import measure_ecg
from ragecg.values import STANDARD_LEADS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from ludb import reference_beats, reference_values  # noqa: E402
from ludb_uv import read_ludb_uv  # noqa: E402

SINUS_RECORDS = (1, 2, 3, 4, 5, 6, 7, 9, 11)   # LUDB 1-100, sinus rhythm, no pacing (as tests/test_measure.py)
PHASES = 5                                     # 500 Hz -> 100 Hz: every 5th sample, from each of 5 starts
PERIOD_100HZ_MS = 10.0
PR_TOLERANCE_MS = 20                           # IEC 60601-2-25 PR limits, mean 10 + SD 10 ms (per record)


def _at_100hz(ecg, phase: int):
    x = sps.decimate(ecg.signals_mv.astype(float)[phase:], PHASES, axis=0, zero_phase=True)
    return ecg_from_leads({ld: x[:, i] for i, ld in enumerate(STANDARD_LEADS)}, ecg.sampling_rate_hz / PHASES,
                          source_path=ecg.source_path, source_format="test")


def test_pr_at_100hz_does_not_move_with_the_sampling_grid(data_dir):
    for n in SINUS_RECORDS:
        ecg = read_ludb_uv(data_dir, n)
        pr_500 = measure_ecg(ecg).pr_interval_ms
        prs = [measure_ecg(_at_100hz(ecg, ph)).pr_interval_ms for ph in range(PHASES)]
        assert pr_500 is not None and None not in prs, n
        # the median beat of beats sampled at different phases is not quantised to the 10 ms grid
        assert max(prs) - min(prs) <= 4.0, (n, prs)
        assert all(abs(p - pr_500) < PERIOD_100HZ_MS for p in prs), (n, prs, pr_500)


def test_pr_uncertainty_has_the_quantisation_floor_of_the_source_rate(data_dir):
    ecg = read_ludb_uv(data_dir, 1)
    for rec, period_ms in ((ecg, 2.0), (_at_100hz(ecg, 0), PERIOD_100HZ_MS)):
        m = measure_ecg(rec)
        assert m.uncertainty["pr_interval_ms"] >= round(period_ms / math.sqrt(12.0), 1)


def test_pr_at_100hz_agrees_with_both_references(data_dir):
    """Against the median-over-leads and the earliest-onset (CSE) reference of the cardiologists' leads."""
    misses = []
    for n in SINUS_RECORDS:
        rec = data_dir / "ludb" / "data" / str(n)
        pr = measure_ecg(_at_100hz(read_ludb_uv(data_dir, n), 0)).pr_interval_ms
        for rule in ("consensus", "extreme"):
            ref = reference_values(reference_beats(rec, 500.0, rule)[0], 500.0)["pr_interval_ms"]
            if pr is None or abs(pr - ref) > PR_TOLERANCE_MS:
                misses.append((n, rule, pr, ref))
    assert not misses, misses
