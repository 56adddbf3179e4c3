"""A 10-minute record works in bounded memory; the noise stress bench adds noise at the SNR it claims;
the quality gate refuses noise that would corrupt the intervals and keeps clean real records."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .clirun import REPO
from .corpus import _long, base_signal, write_record



def _bench():
    """bench/noise.py, loaded from its path (a module called `noise` could be anything on sys.path)."""
    import importlib.util
    if "ragecg_bench_noise" not in sys.modules:
        spec = importlib.util.spec_from_file_location("ragecg_bench_noise", REPO / "bench" / "noise.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["ragecg_bench_noise"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["ragecg_bench_noise"]

MAX_RSS_MIB = 1536      # a 10-minute 12-lead record at 500 Hz is 29 MiB as float64


def _measure_with_peak_rss(path: Path, env: dict) -> tuple[subprocess.CompletedProcess, int, float]:
    """`ragecg measure --json` in a fresh process; its peak RSS (MiB) seen from a wrapper that has no other child."""
    code = ("import json, resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "r = subprocess.run([sys.executable, '-m', 'ragecg.cli', 'measure', '--json', sys.argv[1]],"
            " capture_output=True, text=True)\n"
            "print(json.dumps({'rc': r.returncode, 'stdout': r.stdout, 'stderr': r.stderr,"
            " 'rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
            " 'seconds': time.perf_counter() - t}))\n")
    import os
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, **env}, timeout=900)
    out = json.loads(res.stdout)
    cp = subprocess.CompletedProcess(args=[], returncode=out["rc"], stdout=out["stdout"], stderr=out["stderr"])
    return cp, out["rss_kib"] // 1024, out["seconds"]


def test_ten_minute_record_works_in_bounded_memory(data_dir, tmp_path, cli_env):
    ten = _long(10)(tmp_path, data_dir)
    short = write_record(tmp_path / "s", "short", base_signal(str(data_dir)).copy())
    r10, rss10, s10 = _measure_with_peak_rss(ten, cli_env)
    r0, rss0, s0 = _measure_with_peak_rss(short, cli_env)
    print(f"\npeak RSS: 10 s record {rss0} MiB ({s0:.1f} s), 10 min record {rss10} MiB ({s10:.1f} s), "
          f"ratio {rss10 / rss0:.2f}")
    assert r10.returncode == 0 and r0.returncode == 0, (r10.stderr[-500:], r0.stderr[-500:])
    m10, m0 = json.loads(r10.stdout)["measurements"], json.loads(r0.stdout)["measurements"]
    assert m10["duration_s"] == pytest.approx(600.0)
    assert m10["heart_rate_bpm"] == pytest.approx(m0["heart_rate_bpm"], rel=0.03)
    assert m10["beat_count"] > 50 * m0["beat_count"]
    assert rss10 < MAX_RSS_MIB and rss10 < 4 * rss0


# ------------------------------------------------------------------ the noise stress bench
def test_noise_is_added_at_the_stated_snr(data_dir):
    bench = _bench()

    rec = data_dir / "ludb/data/58"
    from ragecg.record import read_record
    ecg = read_record(rec.with_suffix(".hea"))
    beats, _ = bench.reference_beats(rec, ecg.sampling_rate_hz)
    p2p = bench.qrs_p2p_mv(ecg, [b["peak"] for b in beats])
    assert np.all((p2p > 0.2) & (p2p < 5.0))
    for kind in bench.TYPES:
        for snr in (24.0, 6.0, 0.0):
            noisy = bench.with_noise(ecg, kind, snr, p2p, seed=1)
            n = (noisy.signals_mv.astype(np.float64) - ecg.signals_mv.astype(np.float64))
            got = 10 * np.log10((p2p ** 2 / 8) / n.var(axis=0))
            assert np.allclose(got, snr, atol=0.05), (kind, snr, got)


def _ludb_record_and_qrs_p2p(bench, data_dir, n: int):
    """LUDB record n and its QRS peak-to-peak amplitude at the cardiologists' beats (the SNR reference)."""
    from ragecg.record import read_record

    rec = data_dir / f"ludb/data/{n}"
    ecg = read_record(rec.with_suffix(".hea"))
    beats, _ = bench.reference_beats(rec, ecg.sampling_rate_hz)
    return ecg, bench.qrs_p2p_mv(ecg, [b["peak"] for b in beats])


def test_gate_refuses_muscle_noise_that_corrupts_intervals_and_keeps_the_clean_record(data_dir):
    """6 dB muscle noise moves QRS by >100 ms when measured (bench/noise.py); the gate must refuse it."""
    bench = _bench()
    from ragecg.quality import assess_quality

    for n in (58, 62):
        ecg, p2p = _ludb_record_and_qrs_p2p(bench, data_dir, n)
        assert assess_quality(ecg).verdict == "usable"
        q = assess_quality(bench.with_noise(ecg, "ma", 6.0, p2p, seed=n))
        assert q.verdict == "unusable" and "muscle" in " ".join(q.reasons)
        assert bench.run_one(bench.with_noise(ecg, "bw", 0.0, p2p, seed=n))[0] != "refused-gate"


def test_gate_keeps_clean_real_records(data_dir):
    """No LUDB development record (1-100) is refused by the quality gate as it stands."""
    from ragecg.quality import assess_quality
    from ragecg.record import read_record

    refused = [n for n in range(1, 101, 3)
               if assess_quality(read_record(data_dir / f"ludb/data/{n}.hea")).verdict == "unusable"]
    assert refused == []


@pytest.mark.slow
def test_noise_bench_runs(data_dir, capsys):
    bench = _bench()
    rc = bench.main(["--first", "1", "--limit", "2", "--snr", "12", "0"])
    out = capsys.readouterr().out
    assert rc in (0, 1) and "| clean | ∞ | 0/2 | 0/2 |" in out and "| ma | 0 | 2/2 |" in out


def test_gate_refuses_electrode_motion_that_adds_beats(data_dir):
    """Electrode motion (1-20 Hz bursts, bench/noise.py 'em') at 6 dB adds beats (heart rate off by more than
    twice the IEC tolerance in most LUDB records); the beat-agreement index refuses it, the clean record passes."""
    bench = _bench()
    from ragecg.quality import checked_signal

    for n in (58, 62):
        ecg, p2p = _ludb_record_and_qrs_p2p(bench, data_dir, n)
        _, q = checked_signal(ecg)
        assert q.verdict == "usable" and q.beat_agreement >= 0.9, q.reasons
        _, q = checked_signal(bench.with_noise(ecg, "em", 6.0, p2p, seed=n))
        assert q.verdict == "unusable" and "beats not confirmed" in q.reasons[0], q.reasons


def test_consensus_beats_keeps_what_half_the_leads_see():
    from ragecg.quality import bsqi, consensus_beats

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
    from ragecg.pipeline import measure
    from ragecg.quality import checked_signal
    from ragecg.record import read_record

    ecg = read_record(data_dir / "ludb/data/58.hea")
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
