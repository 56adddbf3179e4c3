"""GE MUSE `<RestingECG>` XML: base64 little-endian int16 per lead, usually 8 stored leads (I, II, V1-V6).

The `Rhythm` waveform is read (the `Median` beat is not); III, aVR, aVL, aVF are derived by
`ecg_from_leads` when absent. Statements: `<Diagnosis>` (the record's current statements, after any
over-read), else `<OriginalDiagnosis>` (the cart's); fragments are joined into lines at `ENDSLINE`.
"""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.values import Ecg
from ._common import age_from, build_ecg, check_samples_per_lead, child, clean_statements, find_all, local, \
    measurements, number, parse_xml, sex_from, text_of, uv_per_unit

FORMAT = "ge_muse_xml"

_MEASUREMENT_KEYS = {
    "VentricularRate": "heart_rate_bpm", "PRInterval": "pr_interval_ms", "QRSDuration": "qrs_duration_ms",
    "QTInterval": "qt_interval_ms", "QTCorrected": "qtc_bazett_ms", "QTcFrederica": "qtc_fridericia_ms",
    "PAxis": "p_axis_deg", "RAxis": "qrs_axis_deg", "TAxis": "t_axis_deg",
}
_UNITS = {"MICROVOLTS": "uV", "MILLIVOLTS": "mV", "VOLTS": "V"}


def _statements(root) -> list[str]:
    block = child(root, "Diagnosis")
    if block is None or not find_all(block, "StmtText"):
        block = child(root, "OriginalDiagnosis")
    if block is None:
        return []
    lines, current = [], []
    for stmt in find_all(block, "DiagnosisStatement"):
        text = text_of(stmt, "StmtText")
        if text:
            current.append(text)
        flags = {(f.text or "").strip().upper() for f in stmt if local(f.tag) == "StmtFlag"}
        if "ENDSLINE" in flags and current:
            lines.append(" ".join(current).replace(" ,", ","))
            current = []
    if current:
        lines.append(" ".join(current).replace(" ,", ","))
    return clean_statements(lines)


def _rhythm_waveform(root, name: str):
    for wf in find_all(root, "Waveform"):
        if (text_of(wf, "WaveformType") or "").lower() == "rhythm":
            return wf
    raise InputError("MUSE file has no Rhythm waveform (only median beats?)", path=name)


def read_muse(path: str | Path) -> Ecg:
    """Read a GE MUSE XML export."""
    path = Path(path)
    name = path.name
    root = parse_xml(path, "MUSE XML")
    wf = _rhythm_waveform(root, name)
    base = number(text_of(wf, "SampleBase"))
    exponent = number(text_of(wf, "SampleExponent")) or 0.0
    if base is None or base <= 0:
        raise InputError("MUSE Rhythm waveform has no SampleBase (sampling rate)", path=name)
    if exponent != int(exponent) or abs(exponent) > 6:      # 10**400 overflowed; real files write 0
        raise InputError("MUSE SampleExponent is not a small whole number; corrupt file?", path=name)
    fs = base * 10.0 ** exponent
    leads: dict[str, np.ndarray] = {}
    # lead labels are free text from the file: messages name a lead by its position
    for i, lead in enumerate(find_all(wf, "LeadData"), start=1):
        label = text_of(lead, "LeadID")
        data = text_of(lead, "WaveFormData")
        if not label or not data:
            raise InputError("MUSE lead without LeadID or WaveFormData", path=name)
        check_samples_per_lead(len(data) * 3 / 8, name)     # base64: 4 characters per 3 bytes, 2 bytes a sample
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InputError(f"lead {i}: WaveFormData is not valid base64", path=name) from None
        if len(raw) % 2:
            raise InputError(f"lead {i}: odd number of data bytes (truncated?)", path=name)
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float64)
        expected = number(text_of(lead, "LeadSampleCountTotal"))
        if expected is not None and int(expected) != samples.size:
            raise InputError(f"lead {i}: {samples.size} samples decoded, header says {int(expected)}", path=name)
        per_bit = number(text_of(lead, "LeadAmplitudeUnitsPerBit"))
        unit = _UNITS.get((text_of(lead, "LeadAmplitudeUnits") or "MICROVOLTS").upper())
        if per_bit is None or unit is None:
            raise InputError(f"lead {i}: missing or unknown amplitude scale", path=name)
        scale_uv = uv_per_unit(per_bit * {"uV": 1.0, "mV": 1e3, "V": 1e6}[unit], name, f"lead {i}: amplitude scale")
        leads[label] = samples * scale_uv
    if not leads:
        raise InputError("MUSE Rhythm waveform holds no leads", path=name)
    demo = child(root, "PatientDemographics")
    meas = child(root, "RestingECGMeasurements")
    device = measurements({key: text_of(meas, tag) for tag, key in _MEASUREMENT_KEYS.items()}) if meas is not None else {}
    return build_ecg(leads, fs, path, FORMAT, units="uV",
                     sex=sex_from(text_of(demo, "Gender")) if demo is not None else None,
                     age_years=age_from(text_of(demo, "PatientAge"), text_of(demo, "AgeUnits") or "years")
                     if demo is not None else None,
                     device_statements=_statements(root), device_measurements=device)
