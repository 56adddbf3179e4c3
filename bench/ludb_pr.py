"""PR interval accuracy on LUDB at 500 Hz and at 100 Hz (issues 17 and 19): is the PR biased long?

    python bench/ludb_pr.py                    # LUDB 1-100 (design set), decimate and resample_poly to 100 Hz
    python bench/ludb_pr.py --first 1 --last 20

For every record: ragecg's global PR (median beat) at the record's 500 Hz, and with the signal taken to
100 Hz two ways (`scipy.signal.decimate`, zero phase, the bench/ludb.py way; `scipy.signal.resample_poly`,
polyphase FIR) as PTB-XL's 100 Hz version was made by downsampling the 500 Hz one. Errors (ragecg -
reference) against the two references of bench/ludb.py: per beat, the median over the annotated leads of
each onset, and the earliest onset over the leads (the CSE / AHA/ACCF/HRS 2009 Part I definition of the
global PR: earliest P onset in any lead to the earliest QRS onset in any lead; inflated by the scatter of
12 independently annotated leads). Record PR = median over beats. The P onset and QRS onset boundaries
are scored separately (every median-beat boundary placed on each dominant beat, matched one-to-one to
the reference beats within 150 ms; errors in ms), so that a PR error can be traced to its end.

Records without a fixed PR (AF, flutter, third-degree AV block in ludb.csv) and records where ragecg
reports no PR are left out of the PR rows (counted).

Also printed: (1) each lead's own P onset (the per-lead wavelet onset whose median over leads is the global
P onset) against that lead's annotation, to tell a per-lead rule offset from the combination over leads;
(2) what 100 Hz sampling does to the PR: the same record decimated at each of the 5 phases of the 100 Hz
grid (SD over the phases: the quantisation of the value), PR(100 Hz) - PR(500 Hz), and how often that
difference lies within the PR uncertainty reported at 100 Hz (`Measurements.uncertainty`, the beat-to-beat
spread with the one-sample-period/sqrt(12) floor).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import signal as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ludb import (LEAD_EXT, TOL_S, decimate_ecg, diagnosis_groups, lead_waves, match, reference_beats,  # noqa: E402
                  reference_values)

from ludb_uv import read_ludb_uv  # noqa: E402
from ragecg.errors import RagecgError  # noqa: E402
from ragecg.reading.leads import ecg_from_leads  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402
from ragecg.values import STANDARD_LEADS  # noqa: E402

REFS = (("consensus", "median over leads"), ("extreme", "earliest onset (CSE)"))


def resample_ecg(ecg, q: int):
    x = sps.resample_poly(ecg.signals_mv.astype(float), 1, q, axis=0)
    return ecg_from_leads({ld: x[:, i] for i, ld in enumerate(STANDARD_LEADS)}, ecg.sampling_rate_hz / q,
                          source_path=ecg.source_path, source_format="resampled")


def _boundary_errors(an, beats: list[dict], span: tuple[int, int], ref_fs: float, key: str) -> list[float]:
    """Errors (ms) of one median-beat boundary placed on the dominant beats vs. the reference beats."""
    scale = ref_fs / an.measurements.sampling_rate_hz
    pred = an.boundary_samples(key) * scale
    ref = np.array([b[key] for b in beats if b[key] is not None], dtype=float)
    lo, hi = span
    pred = pred[(pred >= lo - TOL_S * ref_fs) & (pred <= hi + TOL_S * ref_fs)]
    return [e * 1000.0 / ref_fs for e in match(pred, ref, TOL_S * ref_fs)[3]]


def _lead_p_onset_errors(an, rec: Path, ref_fs: float) -> dict[str, list[float]]:
    """Per lead: errors (ms) of the lead's own P onset (median beat, placed on every dominant beat) against
    that lead's annotated P onsets."""
    bs, b = an.beats, an.boundaries
    out: dict[str, list[float]] = {}
    if b is None or b.p_on is None or b.p_on_by_lead is None:
        return out
    scale = ref_fs / bs.fs
    fid = bs.peaks[bs.dominant]
    for i, ld in enumerate(bs.leads):
        ref = np.array([w[1] for w in lead_waves(rec, ld.lower()) if w[0] == "p" and w[1] is not None], dtype=float)
        if b.p_on_by_lead[i] is None or ref.size == 0:
            continue
        pred = (fid + (b.p_on_by_lead[i] - bs.fiducial)) * scale
        out[ld.lower()] = [e * 1000.0 / ref_fs for e in match(pred, ref, TOL_S * ref_fs)[3]]
    return out


def _phase_prs(ecg, q: int = 5) -> list[float | None]:
    """PR of the record decimated by q at each phase of the coarse grid (first sample dropped 0..q-1 times)."""
    x = ecg.signals_mv.astype(float)
    out = []
    for ph in range(q):
        y = sps.decimate(x[ph:], q, axis=0, zero_phase=True)
        e = ecg_from_leads({ld: y[:, i] for i, ld in enumerate(STANDARD_LEADS)}, ecg.sampling_rate_hz / q,
                           source_path=ecg.source_path, source_format="decimated")
        try:
            out.append(analyse_ecg(e).measurements.pr_interval_ms)
        except RagecgError:
            out.append(None)
    return out


def _ms(d: list[float]) -> str:
    d = np.asarray(d, dtype=float)
    if d.size < 2:
        return "—"
    return f"{d.mean():+.1f} ± {d.std(ddof=1):.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--last", type=int, default=100)
    ap.add_argument("--records", action="store_true", help="print every record's PR values")
    args = ap.parse_args(argv)
    data = get_settings().data_dir / "ludb"
    import pandas as pd

    groups = diagnosis_groups(pd.read_csv(data / "ludb.csv"))
    rates = (("500 Hz", lambda e: e), ("100 Hz decimate", lambda e: decimate_ecg(e, 5)),
             ("100 Hz resample_poly", lambda e: resample_ecg(e, 5)))
    pr_err = {(r, k): [] for r, _ in rates for k, _ in REFS}
    bnd_err = {(r, k, b): [] for r, _ in rates for k, _ in REFS for b in ("p_on", "qrs_on")}
    unc = {r: [] for r, _ in rates}
    missing = {r: 0 for r, _ in rates}
    n_fixed = 0
    lines = []
    lead_err: dict[str, list[float]] = {ext: [] for ext in LEAD_EXT}
    phase_sd, d100, u100 = [], [], []
    for n in range(args.first, args.last + 1):
        rec = data / "data" / str(n)
        ecg = read_ludb_uv(data.parent, n)
        fs = ecg.sampling_rate_hz
        refs = {k: reference_beats(rec, fs, k) for k, _ in REFS}
        ref_pr = {k: reference_values(refs[k][0], fs)["pr_interval_ms"] for k, _ in REFS}
        fixed = not (groups.get(n, set()) & {"AF/flutter", "complete block"}) and ref_pr["consensus"] is not None
        n_fixed += fixed
        row = [str(n)]
        prs: dict[str, float | None] = {}
        u_rec = None
        for rname, f in rates:
            try:
                an = analyse_ecg(f(ecg))
            except RagecgError:
                row.append("refused")
                continue
            pr = an.measurements.pr_interval_ms
            prs[rname] = pr
            row.append("—" if pr is None else f"{pr:.0f}")
            if fixed and rname == "500 Hz":
                for ext, e in _lead_p_onset_errors(an, rec, fs).items():
                    lead_err[ext] += e
            if rname == "100 Hz decimate":
                u_rec = an.measurements.uncertainty.get("pr_interval_ms")
            if not fixed:
                continue
            if pr is None:
                missing[rname] += 1
                continue
            if "pr_interval_ms" in an.measurements.uncertainty:
                unc[rname].append(an.measurements.uncertainty["pr_interval_ms"])
            for k, _ in REFS:
                pr_err[(rname, k)].append(pr - ref_pr[k])
                for b in ("p_on", "qrs_on"):
                    bnd_err[(rname, k, b)] += _boundary_errors(an, refs[k][0], refs[k][1], fs, b)
        if fixed:
            row += [f"{ref_pr['consensus']:.0f}", f"{ref_pr['extreme']:.0f}"]
            ph = _phase_prs(ecg)
            if all(v is not None for v in ph) and prs.get("500 Hz") is not None and u_rec is not None:
                phase_sd.append(float(np.std(ph, ddof=1)))
                d100.append(ph[0] - prs["500 Hz"])        # phase 0 = the "100 Hz decimate" row
                u100.append(u_rec)
        lines.append(" ".join(row))
        print(f"\r{n}/{args.last}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if args.records:
        print("id " + " ".join(r for r, _ in rates) + " ref_median ref_earliest")
        print("\n".join(lines))
        print()
    print(f"LUDB {args.first}-{args.last}: {n_fixed} records with annotated P waves and a fixed PR; ragecg error "
          "(ms, mean ± SD; PR over records, boundaries over beats)")
    print()
    print("| rate | PR vs median ref | PR vs earliest ref (CSE) | P on vs median | P on vs earliest | "
          "QRS on vs median | QRS on vs earliest | records without PR | median PR spread reported |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rname, _ in rates:
        n_pr = len(pr_err[(rname, "consensus")])
        print(f"| {rname} | {_ms(pr_err[(rname, 'consensus')])} (n={n_pr}) | {_ms(pr_err[(rname, 'extreme')])} | "
              f"{_ms(bnd_err[(rname, 'consensus', 'p_on')])} | {_ms(bnd_err[(rname, 'extreme', 'p_on')])} | "
              f"{_ms(bnd_err[(rname, 'consensus', 'qrs_on')])} | {_ms(bnd_err[(rname, 'extreme', 'qrs_on')])} | "
              f"{missing[rname]} | {np.median(unc[rname]) if unc[rname] else float('nan'):.1f} ms |")
    print()
    print("Each lead's own P onset (500 Hz) against that lead's annotation, ms (mean ± SD over beats):")
    print()
    print("| " + " | ".join(LEAD_EXT) + " | all |")
    print("|" + "---|" * (len(LEAD_EXT) + 1))
    print("| " + " | ".join(_ms(lead_err[e]) for e in LEAD_EXT) + f" | {_ms(sum(lead_err.values(), []))} |")
    print()
    sd, d = np.asarray(phase_sd), np.asarray(d100)
    u = np.asarray(u100, dtype=float)
    print(f"100 Hz sampling ({len(d)} records with a PR at 500 Hz and at all 5 phases of the 100 Hz grid): "
          f"SD of the PR over the 5 phases {np.sqrt(np.mean(sd ** 2)):.1f} ms RMS (largest {sd.max():.1f} ms); "
          f"PR(100 Hz) - PR(500 Hz) {_ms(list(d))} ms; within the reported 100 Hz PR uncertainty u in "
          f"{100 * np.mean(np.abs(d) <= u):.0f} % of records (within 2u: {100 * np.mean(np.abs(d) <= 2 * u):.0f} %); "
          f"one sample period / sqrt(12) = {10 / np.sqrt(12):.1f} ms.")
    print()
    cmd = "python bench/ludb_pr.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    print(f"Command: `{cmd}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
