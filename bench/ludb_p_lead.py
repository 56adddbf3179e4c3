"""Lead II P-wave duration against the cardiologists' lead II P boundaries on LUDB (design records 1-100).

    python bench/ludb_p_lead.py                  # records 1-100
    python bench/ludb_p_lead.py --lead V1 --last 20
    python bench/ludb_p_lead.py --decimate 5     # the records at 100 Hz (PTB-XL's rate), same reference

Reference: in the lead's own annotation file (LUDB `.ii`), every P wave with an annotated onset and
offset gives offset - onset; the record's reference is the median over its P waves (records without
an annotated P wave in the lead - AF, flutter, paced without P - have no reference and are left out).

Compared with it, on the same records: ragecg's `p_duration_ms[LEAD]` (the lead's own P boundaries on
its median beat) and ragecg's global `p_duration_ms` (median over the leads of the per-lead
boundaries). Errors are ragecg - reference, mean +/- SD over the records where the value is measured;
"both" rows use only the records where both ragecg values exist (a paired comparison). The number of
records with a reference but no ragecg value is reported too, and how many records are above 120 ms
(AHA/ACCF/HRS 2009 Part V's P-duration threshold for left atrial abnormality) by each value.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ludb import decimate_ecg, lead_waves  # noqa: E402
from bench.ludb_uv import read_ludb_uv  # noqa: E402
from ragecg.errors import RagecgError  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402
from ragecg.signal.measure import analyse_ecg  # noqa: E402

LAE_P_MS = 120.0      # AHA/ACCF/HRS 2009 Part V: P duration > 120 ms in lead II


def reference_p_ms(rec: Path, ext: str, fs: float) -> float | None:
    d = [(off - on) * 1000.0 / fs for kind, on, _, off in lead_waves(rec, ext)
         if kind == "p" and on is not None and off is not None and off > on]
    return float(np.median(d)) if d else None


def _stats(e: list[float]) -> str:
    if not e:
        return "—"
    a = np.asarray(e)
    return f"{a.mean():+.1f} ± {a.std(ddof=1) if a.size > 1 else 0.0:.1f} (mean abs {np.abs(a).mean():.1f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--last", type=int, default=100)
    ap.add_argument("--lead", default="II")
    ap.add_argument("--decimate", type=int, default=1, help="measure the record decimated by this factor")
    args = ap.parse_args(argv)
    data = (args.data_dir or get_settings().data_dir) / "ludb" / "data"
    lead, ext = args.lead, args.lead.lower()
    rows = []
    for n in range(args.first, args.last + 1):
        rec = data / str(n)
        ecg = read_ludb_uv(data.parent.parent, n)
        ref = reference_p_ms(rec, ext, ecg.sampling_rate_hz)
        if args.decimate > 1:
            ecg = decimate_ecg(ecg, args.decimate)
        try:
            m = analyse_ecg(ecg).measurements
            lm = m.leads.get(lead)
            rows.append((n, ref, None if lm is None else lm.p_duration_ms, m.p_duration_ms,
                         m.uncertainty.get(f"p_duration_ms[{lead}]")))
        except RagecgError:
            rows.append((n, ref, None, None, None))
        print(f"\r{n}/{args.last}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    with_ref = [r for r in rows if r[1] is not None]
    e_lead = [r[2] - r[1] for r in with_ref if r[2] is not None]
    e_glob = [r[3] - r[1] for r in with_ref if r[3] is not None]
    both = [r for r in with_ref if r[2] is not None and r[3] is not None]
    unc = [r[4] for r in with_ref if r[4] is not None]
    print(f"LUDB records {args.first}-{args.last} (measured at {500 // args.decimate} Hz): {len(with_ref)} with an annotated P wave in {lead} "
          f"(reference median {np.median([r[1] for r in with_ref]):.0f} ms)")
    print(f"| value vs the cardiologists' {lead} P duration | n | error, ms (mean ± SD) |")
    print("|---|---|---|")
    print(f"| ragecg `p_duration_ms[{lead}]` (the lead's own P) | {len(e_lead)} | {_stats(e_lead)} |")
    print(f"| ragecg `p_duration_ms` (global) | {len(e_glob)} | {_stats(e_glob)} |")
    print(f"| `p_duration_ms[{lead}]`, records with both values | {len(both)} | {_stats([r[2] - r[1] for r in both])} |")
    print(f"| `p_duration_ms` (global), records with both values | {len(both)} | {_stats([r[3] - r[1] for r in both])} |")
    print(f"records with a reference, no `p_duration_ms[{lead}]`: {len(with_ref) - len(e_lead)} "
          f"(of which {sum(1 for r in with_ref if r[2] is None and r[3] is not None)} with a global value)")
    if unc:
        print(f"beat-to-beat uncertainty of `p_duration_ms[{lead}]`: median {np.median(unc):.1f} ms (n {len(unc)})")
    print(f"> {LAE_P_MS:g} ms: reference {sum(1 for r in with_ref if r[1] > LAE_P_MS)}, "
          f"{lead} {sum(1 for r in with_ref if r[2] is not None and r[2] > LAE_P_MS)}, "
          f"global {sum(1 for r in with_ref if r[3] is not None and r[3] > LAE_P_MS)} (of {len(with_ref)})")
    for name, k in ((lead, 2), ("global", 3)):
        pairs = [(r[k] > LAE_P_MS, r[1] > LAE_P_MS) for r in both]
        tp = sum(1 for p, y in pairs if p and y)
        tn = sum(1 for p, y in pairs if not p and not y)
        print(f"{name} > {LAE_P_MS:g} ms vs the reference > {LAE_P_MS:g} ms (records with both values, n {len(both)}): "
              f"agree {tp + tn}, sensitivity {tp}/{sum(1 for _, y in pairs if y)}, "
              f"specificity {tn}/{sum(1 for _, y in pairs if not y)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
