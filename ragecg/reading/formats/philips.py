"""Philips Sierra ECG / PageWriter XML (`<restingecgdata>`, versions 1.03-1.04.02).

Waveforms (base64, usually XLI-compressed) are decoded by `sierraecg`, which also rebuilds III, aVR,
aVL and aVF from the stored residuals. The record ends with a 1 mV calibration pulse (after a short
all-zero gap): it is cut off, see `_signal_end`. Statements and global measurements are read from the
first `<interpretation>` with defusedxml.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.values import Ecg
from ._common import age_from, build_ecg, check_samples_per_lead, child, clean_statements, find_all, measurements, \
    number, parse_xml, sex_from, text_of, uv_per_unit

FORMAT = "philips_xml"

# 1.04+: <globalmeasurements> inside <interpretation>; 1.03: <interpretationmeasurements>.
_MEASUREMENT_KEYS = {
    "heartrate": "heart_rate_bpm", "pdur": "p_duration_ms", "print": "pr_interval_ms", "meanprint": "pr_interval_ms",
    "qrsdur": "qrs_duration_ms", "meanqrsdur": "qrs_duration_ms", "qtint": "qt_interval_ms",
    "meanqtint": "qt_interval_ms", "qtcb": "qtc_bazett_ms", "qtcf": "qtc_fridericia_ms",
    "meanqtc": "qtc_ms",  # 1.03 does not say which correction
    "pfrontaxis": "p_axis_deg", "qrsfrontaxis": "qrs_axis_deg", "tfrontaxis": "t_axis_deg",
}
CALIBRATION_MIN_S = 0.05   # a flat, identical, non-zero run this long in every lead is the calibration pulse


def _signal_end(x: np.ndarray, fs: float) -> int:
    """Samples before the trailing calibration pulse and the all-zero gap before it (all, when none)."""
    n = x.shape[1]
    run = max(2, int(round(CALIBRATION_MIN_S * fs)))
    start = max(0, n - int(2 * fs))                # the pulse sits in the last second or so
    same = np.all(x == x[:1], axis=0) & (x[0] != 0)
    cal = None
    count = 0
    for i in range(start, n):
        count = count + 1 if same[i] else 0
        if count >= run:
            cal = i - run + 1
            break
    if cal is None:
        return n
    while cal > 0 and not np.any(x[:, cal - 1]):
        cal -= 1
    return cal


def _header_samples_per_lead(root, name: str) -> int:
    """Samples per lead the header announces (durationperchannel ms x samplingrate Hz), checked against
    the sample limit before anything is decompressed."""
    signal = find_all(root, "signalcharacteristics")
    parsed = find_all(root, "parsedwaveforms")
    rate = number(text_of(signal[0], "samplingrate")) if signal else None
    duration_ms = number(parsed[0].get("durationperchannel")) if parsed else None
    if rate is None or duration_ms is None or rate <= 0 or duration_ms <= 0:
        raise InputError("Philips file gives no sampling rate or duration per channel", path=name)
    n = duration_ms * rate / 1000.0
    check_samples_per_lead(n, name)
    return int(n)


class _XliTooLong(Exception):
    pass


@contextmanager
def _bounded_xli(max_bytes: int, name: str):
    """sierraecg's XLI (LZW) decoder, bounded: each lead's decompressed bytes stop at `max_bytes` (2 per
    sample the header announces) and the file is refused beyond it. A 690 KB crafted waveform otherwise
    decompressed without limit (> 4 GB, minutes). sierraecg's own functions do the decoding; only the
    per-lead loop is repeated here, with the bound."""
    import sierraecg.lib
    from sierraecg.lzw import LzwDecoder
    from sierraecg.xli import xli_decode_deltas

    def xli_decode(data: bytes, labels):
        out, offset = [], 0
        while offset < len(data):
            header = data[offset:offset + 8]
            offset += 8
            size = int.from_bytes(header[0:4], byteorder="little", signed=True)
            start = int.from_bytes(header[6:], byteorder="little", signed=True)
            decoder = LzwDecoder(data[offset:offset + size], bits=10)
            offset += size
            buffer = []
            while (b := decoder.read()) != -1:
                buffer.append(b & 0xFF)
                if len(buffer) > max_bytes:
                    raise _XliTooLong
            if len(buffer) % 2 == 1:
                buffer.append(0)
            out.append(xli_decode_deltas(buffer, start))
        return out

    original = sierraecg.lib.xli_decode
    sierraecg.lib.xli_decode = xli_decode
    try:
        yield
    except _XliTooLong:
        raise InputError("Philips compressed waveform decodes to more samples than the header announces; "
                         "corrupt or crafted file", path=name) from None
    finally:
        sierraecg.lib.xli_decode = original


def _statements(interp) -> list[str]:
    lines = []
    for st in (c for c in interp if str(c.tag).endswith("statement")):
        left, right = text_of(st, "leftstatement"), text_of(st, "rightstatement")
        if left:
            lines.append(f"{left} ({right})" if right else left)
    severity = text_of(interp, "severity")
    if severity:
        lines.append(severity)
    return clean_statements(lines)


def read_philips(path: str | Path) -> Ecg:
    """Read a Philips Sierra / PageWriter XML file."""
    import sierraecg

    path = Path(path)
    name = path.name
    root = parse_xml(path, "Philips XML")          # well-formed and safe before sierraecg parses it
    samples_per_lead = _header_samples_per_lead(root, name)
    try:
        with _bounded_xli(2 * samples_per_lead + 16, name):
            sierra = sierraecg.read_file(str(path))
    except InputError:
        raise
    except Exception as exc:  # sierraecg raises RuntimeError subclasses, IndexError on corrupt XLI data, ...
        raise InputError(f"Philips waveform cannot be decoded ({type(exc).__name__})", path=name) from None
    if not sierra.leads:
        raise InputError("Philips file holds no leads", path=name)
    fs = float(sierra.leads[0].sampling_freq)
    if any(float(ld.sampling_freq) != fs for ld in sierra.leads) or len({ld.samples.size for ld in sierra.leads}) != 1:
        raise InputError("Philips leads differ in sampling rate or length", path=name)
    signal = find_all(root, "signalcharacteristics")
    parsed = find_all(root, "parsedwaveforms")
    resolution = None
    if signal:
        resolution = number(text_of(signal[0], "resolution") or text_of(signal[0], "signalresolution"))
    if resolution is None and parsed:
        resolution = number(parsed[0].get("resolution"))
    if resolution is None or resolution <= 0:
        raise InputError("Philips file gives no signal resolution (uV per unit)", path=name)
    uv_per_unit(resolution, name, "Philips signal resolution")
    x = np.vstack([ld.samples.astype(np.int32) for ld in sierra.leads])
    end = _signal_end(x, fs)
    leads = {ld.label: x[i, :end] * resolution for i, ld in enumerate(sierra.leads)}

    interps = find_all(root, "interpretation")
    statements: list[str] = []
    device: dict[str, float] = {}
    if interps:
        statements = _statements(interps[0])
        for block_name in ("globalmeasurements", "interpretationmeasurements"):
            block = child(interps[0], block_name)
            if block is not None:
                device = measurements({key: text_of(block, tag) for tag, key in _MEASUREMENT_KEYS.items()
                                       if text_of(block, tag) is not None})
                break
    patient = find_all(root, "generalpatientdata")
    sex = age = None
    if patient:
        sex = sex_from(text_of(patient[0], "sex"))
        age_elem = child(patient[0], "age")
        age = age_from(text_of(age_elem, "years")) if age_elem is not None else None
    return build_ecg(leads, fs, path, FORMAT, units="uV", sex=sex, age_years=age,
                     device_statements=statements, device_measurements=device)
