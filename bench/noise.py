"""Noise stress test: how HR, PR, QRS and QT degrade with noise at known SNRs, and when the quality
gate (plus the measurement's own refusal) stops ragecg from reporting them.

    python bench/noise.py --limit 20                  # LUDB 101-120, a few minutes on one core
    python bench/noise.py                             # LUDB 101-200 (the reported half)
    python bench/noise.py --first 1 --limit 100       # LUDB 1-100 (the development half)

Method (MIT-BIH Noise Stress Test, Moody, Muldrow & Mark, Computers in Cardiology 1984;11:381-384):
noise is added to every lead of a clean LUDB record (500 Hz, 10 s) at SNR = 10 log10(S / N), with
S = a^2 / 8 where a is the lead's median peak-to-peak QRS amplitude (+/-60 ms around the annotated QRS
peaks) and N the noise variance, as `nst` defines them. The MIT-BIH noise records are not in the
shared data, so the three noise types are synthesised, independently per lead (seeded):
  bw  baseline wander: Gaussian noise low-passed at 0.5 Hz (2nd-order Butterworth);
  ma  muscle artefact: Gaussian noise band-passed 10-150 Hz (band-limited random noise, as the EMG model
      of Friesen et al., IEEE Trans Biomed Eng 1990;37:85-98);
  em  electrode motion: Gaussian noise band-passed 1-20 Hz (the ECG's own band), switched on in random
      bursts of 0.5-2 s covering about half the record;
  mains  50 Hz power-line interference: a sinusoid with a random phase per lead (not an NST type; the
      pipeline notch-filters it where the gate finds it, ragecg.quality.checked_signal).
LUDB's amplitudes are read as microvolts (bench/ludb_uv.py; its header gains scale every lead to 1 mV
peak-to-peak). Each record goes through the pipeline's own gate (`checked_signal`: mains notch, quality, beat agreement)
and then `measure_ecg`, as `ragecg measure` does.
Reference: the cardiologists' LUDB annotations (bench/ludb.py `reference_values`, consensus rule), and
the same record measured clean in the same run. Limits: IEC 60601-2-25:2011 (201.12.4.104) mean/SD of
the difference, PR +/-10/10 ms, QRS +/-10/10 ms, QT +/-25/30 ms; heart rate +/-10 % or +/-5 bpm, the
greater (IEC 60601-2-27:2011, 201.12.1.101.2). The gate passes when, at every SNR, the values it lets
through stay within 2x those limits ("2x" column: noisy minus clean, over accepted records whose
annotation has the value - a PR "measured" in atrial fibrillation is an error of the clean measurement,
not an effect of noise; HR: share of accepted records beyond 2x the HR limit must stay below 5 %).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import signal as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ludb import reference_beats, reference_values  # noqa: E402  (bench/ludb.py)

from ragecg.errors import RagecgError  # noqa: E402
from ragecg.signal.measure import measure_ecg  # noqa: E402
from ragecg.signal.quality import checked_signal  # noqa: E402
from ludb_uv import read_ludb_uv  # noqa: E402
from ragecg.values import Ecg  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402

KEYS = ("heart_rate_bpm", "pr_interval_ms", "qrs_duration_ms", "qt_interval_ms")
IEC = {"pr_interval_ms": (10, 10), "qrs_duration_ms": (10, 10), "qt_interval_ms": (25, 30)}
TYPES = ("bw", "ma", "em", "mains")
LUDB_EXT = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


def hr_limit(ref_bpm: float) -> float:
    return max(5.0, 0.10 * ref_bpm)


def unit_noise(kind: str, n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance noise of one type."""
    w = rng.standard_normal(n + int(4 * fs))           # padding: filter transients are cut off
    nyq = fs / 2
    if kind == "bw":
        x = sps.sosfiltfilt(sps.butter(2, 0.5 / nyq, "low", output="sos"), w)
    elif kind == "ma":
        x = sps.sosfiltfilt(sps.butter(4, [10 / nyq, min(150.0, 0.45 * fs) / nyq], "band", output="sos"), w)
    elif kind == "em":
        x = sps.sosfiltfilt(sps.butter(4, [1 / nyq, 20 / nyq], "band", output="sos"), w)
        env = np.zeros_like(x)
        t = 0
        while t < len(x):
            dur = int(rng.uniform(0.5, 2.0) * fs)
            if rng.random() < 0.5:
                env[t:t + dur] = np.hanning(min(dur, len(x) - t))
            t += dur
        x = x * env
    elif kind == "mains":
        t = np.arange(len(w)) / fs
        x = np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(kind)
    x = x[int(2 * fs): int(2 * fs) + n]
    x = x - x.mean()
    return x / (x.std() or 1.0)


def qrs_p2p_mv(ecg: Ecg, peaks: list[int]) -> np.ndarray:
    """Per lead, the median peak-to-peak amplitude within +/-60 ms of the annotated QRS peaks."""
    half = int(0.06 * ecg.sampling_rate_hz)
    out = []
    for j in range(12):
        x = ecg.signals_mv[:, j].astype(float)
        amps = [np.ptp(x[max(0, p - half):p + half]) for p in peaks if p - half >= 0 and p + half < len(x)]
        out.append(float(np.median(amps)) if amps else float(np.ptp(x)))
    return np.asarray(out)


def with_noise(ecg: Ecg, kind: str, snr_db: float, p2p: np.ndarray, seed: int) -> Ecg:
    rng = np.random.default_rng(seed)
    n, fs = ecg.n_samples, ecg.sampling_rate_hz
    sig = ecg.signals_mv.astype(np.float64).copy()
    for j in range(12):
        s_power = p2p[j] ** 2 / 8.0
        sigma = np.sqrt(s_power / 10 ** (snr_db / 10))
        sig[:, j] += sigma * unit_noise(kind, n, fs, rng)
    return Ecg(signals_mv=sig.astype(np.float32), sampling_rate_hz=fs, source_path=ecg.source_path,
               source_format=ecg.source_format, derived_leads=list(ecg.derived_leads))


def run_one(ecg: Ecg) -> tuple[str, dict | None]:
    """("refused-gate" | "refused-measure" | "disputed" | "limited" | "usable", values). "disputed": read with
    the beats disputed (bSQI 0.80-0.90): the report withholds the rate and rhythm statements and flags the heart
    rate, so the heart rate is not counted here (None); the median-beat intervals are."""
    ecg, quality = checked_signal(ecg)
    if quality.verdict == "unusable":
        return "refused-gate", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = measure_ecg(ecg, quality.usable_leads())
    except RagecgError:
        return "refused-measure", None
    values = {k: getattr(m, k) for k in KEYS}
    if quality.beats_disputed:
        return "disputed", {**values, "heart_rate_bpm": None}
    return quality.verdict, values


def summarise(rows: list[dict], kind: str, snr) -> dict:
    sel = [r for r in rows if r["kind"] == kind and r["snr"] == snr]
    n = len(sel)
    out = {"n": n, "refused": sum(r["state"].startswith("refused") for r in sel),
           "limited": sum(r["state"] == "limited" for r in sel),
           "disputed": sum(r["state"] == "disputed" for r in sel), "cells": {}, "pass": True}
    acc = [r for r in sel if r["values"] is not None]
    for k in KEYS:
        d_ref, d_clean, beyond, measured = [], [], 0, 0
        for r in acc:
            v, ref, clean = r["values"].get(k), r["ref"].get(k), r["clean"].get(k) if r["clean"] else None
            if v is None:
                continue
            measured += clean is not None
            if ref is None:
                # No reference value (e.g. no PR in atrial fibrillation): a clean value is itself spurious,
                # so noisy - clean would not measure the noise's effect. Counted in "measured" only.
                continue
            d_ref.append(v - ref)
            if clean is not None:
                d_clean.append(v - clean)
                if k == "heart_rate_bpm" and abs(v - clean) > 2 * hr_limit(clean):
                    beyond += 1
        cell = {"ref": _ms(d_ref), "clean": _ms(d_clean), "n_measured": measured}
        if k in IEC and len(d_clean) >= 2:
            m, s = IEC[k]
            cell["ok"] = abs(np.mean(d_clean)) <= 2 * m and np.std(d_clean, ddof=1) <= 2 * s
        elif k == "heart_rate_bpm" and d_clean:
            cell["ok"] = beyond <= 0.05 * len(d_clean)
            cell["beyond"] = beyond
        else:
            cell["ok"] = True
        out["pass"] &= cell["ok"]
        out["cells"][k] = cell
    return out


def _ms(d: list[float]) -> tuple[float, float, int] | None:
    if len(d) < 2:
        return None
    return float(np.mean(d)), float(np.std(d, ddof=1)), len(d)


def fmt(t) -> str:
    return "—" if t is None else f"{t[0]:+.1f} ± {t[1]:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=101, help="first LUDB record (default 101: the reported half)")
    ap.add_argument("--limit", type=int, default=100, help="number of records")
    ap.add_argument("--snr", type=float, nargs="+", default=[24, 12, 6, 0, -6])
    ap.add_argument("--types", nargs="+", default=list(TYPES), choices=TYPES)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)

    data = get_settings().data_dir / "ludb"
    ids = list(range(args.first, 201))[: args.limit]
    rows: list[dict] = []
    t0 = time.perf_counter()
    for i, rid in enumerate(ids):
        rec = data / "data" / str(rid)
        ecg = read_ludb_uv(data.parent, rid)          # amplitudes as microvolts (bench/ludb_uv.py)
        beats, _ = reference_beats(rec, ecg.sampling_rate_hz)
        ref = reference_values(beats, ecg.sampling_rate_hz)
        p2p = qrs_p2p_mv(ecg, [b["peak"] for b in beats])
        state, clean = run_one(ecg)
        rows.append({"id": rid, "kind": "clean", "snr": None, "state": state, "values": clean, "ref": ref,
                     "clean": clean})
        for kind in args.types:
            for snr in args.snr:
                seed = args.seed + 1000 * rid + 10 * TYPES.index(kind) + int(snr) + 100
                state, vals = run_one(with_noise(ecg, kind, snr, p2p, seed))
                rows.append({"id": rid, "kind": kind, "snr": snr, "state": state, "values": vals, "ref": ref,
                             "clean": clean})
        print(f"\r{i + 1}/{len(ids)} records ({time.perf_counter() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    cmd = "python bench/noise.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"Noise stress test, LUDB records {ids[0]}-{ids[-1]} (n={len(ids)}), command: `{cmd.strip()}`, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("Each cell: mean ± SD of (noisy - clean) over accepted records whose LUDB annotation has the value; "
          "in brackets (noisy - LUDB annotation).")
    print("2x = within twice the IEC limits (HR: <5 % of records beyond twice +/-max(5 bpm, 10 %)).\n")
    print("| noise | SNR dB | refused | limited | beats disputed (no HR) | HR bpm | PR ms | QRS ms | QT ms | "
          "measured PR/QRS/QT | 2x |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    all_pass = True
    for kind, snrs in [("clean", [None])] + [(k, args.snr) for k in args.types]:
        for snr in snrs:
            s = summarise(rows, kind, snr)
            cells = []
            for k in KEYS:
                c = s["cells"][k]
                cells.append(f"{fmt(c['clean']) if kind != 'clean' else '0'} [{fmt(c['ref'])}]")
            meas = "/".join(str(s["cells"][k]["n_measured"]) for k in KEYS[1:])
            ok = "✓" if s["pass"] else "✗"
            all_pass &= s["pass"]
            print(f"| {kind} | {'∞' if snr is None else f'{snr:g}'} | {s['refused']}/{s['n']} | {s['limited']}/{s['n']} | "
                  f"{s['disputed']}/{s['n']} | " + " | ".join(cells) + f" | {meas} | {ok} |")
    print(f"\ngate keeps accepted measurements within 2x IEC at every SNR: {'yes' if all_pass else 'NO'}")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
