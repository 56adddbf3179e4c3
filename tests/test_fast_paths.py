"""The measurement's and the quality gate's fast paths give the values of their direct definitions, on real
records: a filter run over all leads at once equals the lead filtered alone, the shared wavelet cascade equals
one cascade per scale, the P-wave search by FFT and running sums equals the windows taken one by one."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy import signal as sps

from ragecg.reading.record import read_record
from ragecg.signal import beats as B
from ragecg.signal import quality as Q
from ragecg.signal.measure import analyse_ecg
from ragecg.values import STANDARD_LEADS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from ludb_uv import read_ludb_uv  # noqa: E402


def _cascade(m: np.ndarray, level: int) -> np.ndarray:
    """The a trous detail at one scale, with its own cascade (the definition)."""
    a = np.asarray(m, dtype=np.float64)
    for p in range(level):
        step = 2 ** p
        if p == level - 1:
            g = np.zeros(step + 1)
            g[0], g[-1] = 2.0, -2.0
            return ndimage.convolve1d(a, g, axis=1, mode="nearest")
        h = np.zeros(3 * step + 1)
        h[0] = h[-1] = 1.0 / 8
        h[step] = h[2 * step] = 3.0 / 8
        a = ndimage.convolve1d(a, h, axis=1, mode="nearest")
    raise AssertionError("level >= 1")


@pytest.mark.parametrize("n", (1, 38, 104))
def test_shared_wavelet_cascade_equals_one_cascade_per_scale(data_dir, n):
    an = analyse_ecg(read_ludb_uv(data_dir, n))
    m = an.beats.median
    for levels in ((3, 5), (1, 2, 4), (5,)):
        for got, level in zip(B.wavelet_details(m, levels), levels):
            assert np.array_equal(got, _cascade(m, level))


def _p_match_direct(beats, template, lo, hi, max_lag):
    """Every lag's window taken, its least-squares line removed, correlated with the template."""
    n, _, w = beats.shape
    length = hi - lo
    j = np.arange(length, dtype=float)
    design = np.stack([np.ones(length), j], axis=1)
    t = np.stack([row - design @ np.linalg.lstsq(design, row, rcond=None)[0] for row in template])
    best_r, best_lag = np.full(n, -np.inf), np.zeros(n)
    for lag in range(-max_lag, max_lag + 1):
        if lo + lag < 0 or hi + lag > w:
            continue
        for i in range(n):
            seg = beats[i, :, lo + lag:hi + lag]
            res = np.stack([row - design @ np.linalg.lstsq(design, row, rcond=None)[0] for row in seg])
            den = np.sqrt(np.sum(res * res) * np.sum(t * t))
            r = np.sum(res * t) / den if den > 0 else -np.inf
            if r > best_r[i]:
                best_r[i], best_lag[i] = r, lag
    return best_r, best_lag


@pytest.mark.parametrize("n", (1, 60))
def test_p_wave_search_equals_the_windows_taken_one_by_one(data_dir, n):
    an = analyse_ecg(read_ludb_uv(data_dir, n))
    bs, b = an.beats, an.boundaries
    lo, hi = B._p_window(bs, b)
    x = np.nan_to_num(bs.beats)
    template = B._detrend_last_axis(bs.median[:, lo:hi])
    max_lag = int(round(B.P_SEARCH_S * bs.fs))
    r, lag = B._p_match(x, template, lo, hi, max_lag)
    r0, lag0 = _p_match_direct(x, template, lo, hi, max_lag)
    assert np.array_equal(lag, lag0)
    assert np.allclose(r, r0, rtol=0, atol=1e-9)
    assert np.sum(r >= B.P_BEAT_R) >= 5          # the P wave is found on these sinus records' beats


@pytest.mark.parametrize("rel", ("ludb/data/1.hea", "ludb/data/72.hea", "ptbxl/records100/00000/00008_lr.hea"))
def test_lead_spectra_and_qrs_band_together_equal_each_lead_alone(data_dir, rel):
    ecg = read_record(data_dir / rel)
    fs = ecg.sampling_rate_hz
    rows = np.stack([Q._filled(ecg.lead(ld)) for ld in STANDARD_LEADS])
    together = Q._lead_spectra(rows, fs)
    nyq = fs / 2
    for x, sp in zip(rows, together):
        x = np.ascontiguousarray(x)
        f, pxx = sps.welch(x - x.mean(), fs=fs, nperseg=min(len(x), int(fs * 2)))
        assert np.array_equal(f, sp.f) and np.array_equal(pxx, sp.pxx)
        b, a = sps.butter(2, 0.5 / nyq, btype="low")
        assert np.array_equal(sp.baseline, sps.filtfilt(b, a, x))
        if nyq > 45:
            assert np.array_equal(sp.above_40_hz, sps.sosfiltfilt(sps.butter(4, 40.0 / nyq, btype="high", output="sos"), x))
            assert Q.wave_range_uv(x, fs, sp.wave_band) == Q.wave_range_uv(x, fs)
    x = B.filtered(B.resample_to_internal(rows.T, fs), B.INTERNAL_FS, fs)
    band = B.qrs_band(x, B.INTERNAL_FS)
    for j in range(x.shape[1]):
        alone = B.detect_beats(np.ascontiguousarray(x[:, [j]]), B.INTERNAL_FS)
        shared = B.beats_in_detection_signal(np.sqrt(np.sum(band[:, [j]] ** 2, axis=1)), B.INTERNAL_FS)
        assert np.array_equal(alone, shared)
    assert B.detect_beats(x, B.INTERNAL_FS).size >= 6
