"""Peak RSS and wall time of `ragecg measure` on the memory/time attacks of issue 22 (each refused from
its header or bounded), and of `ragecg diagnose --no-llm` on the largest record accepted (600,000
samples per lead: 600 s at 1 kHz, 12 leads). Inputs are generated in a temporary folder; peak RSS is
the child's own ru_maxrss (os.wait4) from a small parent. Figures go to docs/reliability.md.

    python bench/hostile.py [--skip-accepted]
"""
from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run(args: list[str]) -> tuple[int, float, float, str]:
    """(exit code, peak RSS MiB, wall s, last stderr line) of `python -m ragecg.cli ARGS`."""
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "ragecg.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    lines = err.strip().splitlines()
    return p.returncode, usage.ru_maxrss / 1024, time.perf_counter() - t, (lines[-1] if lines else "")


def make_inputs(root: Path, data_dir: Path) -> dict[str, Path]:
    from tests.reliability.test_hardening import _lzw_bomb
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    out: dict[str, Path] = {}
    n = 20_000 * 600                                         # WFDB 20 kHz x 600 s, sparse .dat
    (root / "big.hea").write_text(f"big 12 20000 {n}\n" + "".join(f"big.dat 16 1000/mV 16 0 0 0 0 {ld}\n" for ld in leads))
    with open(root / "big.dat", "wb") as fh:
        fh.truncate(n * 12 * 2)
    out["wfdb_20khz_600s"] = root / "big.hea"
    csv_path = root / "long.csv"                             # 8.6 million rows
    with open(csv_path, "wb") as fh:
        fh.write(b"I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6\n")
        for _ in range(86):
            fh.write(b"0,0,0,0,0,0,0,0,0,0,0,0\n" * 100_000)
    out["csv_8.6M_rows"] = csv_path
    xml = root / "many.xml"                                  # 52 million empty elements (200 MiB)
    with open(xml, "wb") as fh:
        fh.write(b"<?xml version='1.0'?><RestingECG>")
        for _ in range(52):
            fh.write(b"<a/>" * 1_000_000)
        fh.write(b"</RestingECG>")
    out["xml_52M_elements"] = xml
    src = next(p for p in sorted((data_dir / "formats" / "philips_xml").glob("*"))
               if 'compressmethod="XLI"' in p.read_text(errors="replace"))
    payload = _lzw_bomb(550_000)                             # 690 KB of codes
    chunk = len(payload).to_bytes(4, "little") + b"\0\0\0\0" + payload
    text = re.sub(r"(<parsedwaveforms[^>]*>)[^<]*(</parsedwaveforms>)",
                  lambda m: m.group(1) + base64.b64encode(chunk).decode() + m.group(2),
                  src.read_text(encoding="utf-8", errors="replace"), flags=re.S)
    (root / "lzw.xml").write_text(text, encoding="utf-8")
    out["philips_lzw_690KB"] = root / "lzw.xml"
    muse = next(iter(sorted((data_dir / "formats" / "ge_muse_xml").glob("*.xml"))))
    t = muse.read_text(encoding="utf-8", errors="replace")
    t = re.sub(r"<SampleExponent>[^<]*</SampleExponent>", "<SampleExponent>400</SampleExponent>", t) \
        if "<SampleExponent>" in t else t.replace("<SampleBase>", "<SampleExponent>400</SampleExponent><SampleBase>")
    (root / "muse_exp400.xml").write_text(t, encoding="utf-8")
    out["muse_sample_exponent_400"] = root / "muse_exp400.xml"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-accepted", action="store_true", help="skip the 600 s at 1 kHz diagnose (minutes)")
    a = ap.parse_args()
    from ragecg.settings import get_settings
    data_dir = get_settings().data_dir
    print(f"command: python bench/hostile.py{' --skip-accepted' if a.skip_accepted else ''}")
    print("| input | exit | peak RSS MiB | wall s | stderr |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in make_inputs(Path(tmp), data_dir).items():
            rc, rss, wall, err = run(["measure", str(path)])
            print(f"| {name} | {rc} | {rss:.0f} | {wall:.1f} | {err[:150]} |", flush=True)
        if not a.skip_accepted:
            import numpy as np
            import wfdb
            r = wfdb.rdrecord(str(REPO / "examples" / "example_sinus"))
            x = np.repeat(np.tile(r.p_signal, (60, 1)), 2, axis=0)        # 600 s at 1 kHz
            wfdb.wrsamp("big1k", fs=1000, units=["mV"] * 12, sig_name=r.sig_name, p_signal=x, fmt=["16"] * 12,
                        adc_gain=[1000] * 12, baseline=[0] * 12, write_dir=tmp)
            rc, rss, wall, err = run(["diagnose", "--no-llm", "--json", str(Path(tmp) / "big1k.hea")])
            print(f"| accepted: WFDB 1 kHz x 600 s (600,000 samples per lead), diagnose --no-llm | {rc} | {rss:.0f} | "
                  f"{wall:.1f} | {err[:150]} |", flush=True)


if __name__ == "__main__":
    main()
