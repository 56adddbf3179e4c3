"""HL7 v3 annotated ECG (`<AnnotatedECG xmlns="urn:hl7-org:v3">`, the FDA aECG format).

The first `<series>` coded RHYTHM is read (not the REPRESENTATIVE_BEAT `<derivedSeries>`): its time
sequence gives the sampling interval (`<increment value unit>`), each lead sequence an SLIST_PQ
(`origin + scale * digits`). Global numerics come from the representative-beat annotations when
present, else the first per-beat ones; statements from MDC_ECG_RHY and interpretation annotations.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.values import Ecg
from ._common import MAX_UV_PER_UNIT, build_ecg, check_samples_per_lead, child, clean_statements, find_all, local, \
    measurements, number, parse_xml, sex_from, uv_per_unit

FORMAT = "hl7_aecg"

_LEAD_PREFIX = "MDC_ECG_LEAD_"
_TIME_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_UNITS = {"uv": "uV", "mv": "mV", "v": "V"}
_UV = {"uV": 1.0, "mV": 1e3, "V": 1e6}
_NUMERICS = {
    "MDC_ECG_HEART_RATE": "heart_rate_bpm", "MDC_ECG_TIME_PD_P": "p_duration_ms",
    "MDC_ECG_TIME_PD_PR": "pr_interval_ms", "MDC_ECG_TIME_PD_QRS": "qrs_duration_ms",
    "MDC_ECG_TIME_PD_QT": "qt_interval_ms", "MDC_ECG_TIME_PD_QTc": "qtc_ms",  # formula not stated
    "MDC_ECG_TIME_PD_QTcB": "qtc_bazett_ms", "MDC_ECG_TIME_PD_QTcF": "qtc_fridericia_ms",
    "MDC_ECG_ANGLE_P_FRONT": "p_axis_deg", "MDC_ECG_ANGLE_QRS_FRONT": "qrs_axis_deg",
    "MDC_ECG_ANGLE_T_FRONT": "t_axis_deg",
}


def _code(elem) -> str:
    c = child(elem, "code")
    return c.get("code", "") if c is not None else ""


def _rhythm_series(root, name: str):
    for series in find_all(root, "series"):
        if _code(series).upper() == "RHYTHM":
            return series
    series = find_all(root, "series")
    if series:
        return series[0]
    raise InputError("aECG file has no <series> (no waveform)", path=name)


def _sequences(series, name: str) -> tuple[float, dict[str, np.ndarray], str]:
    for seq_set in find_all(series, "sequenceSet"):
        increment_s = None
        leads: dict[str, np.ndarray] = {}
        units: set[str] = set()
        for i, seq in enumerate(find_all(seq_set, "sequence"), start=1):
            code = _code(seq)
            value = child(seq, "value")
            if value is None:
                continue
            if code.startswith("TIME_"):
                inc = child(value, "increment")
                if inc is not None:
                    factor = _TIME_S.get(inc.get("unit", "s").lower())
                    step = number(inc.get("value"))
                    if factor is None or step is None or step <= 0:
                        raise InputError("aECG time increment is missing or in an unknown unit", path=name)
                    increment_s = step * factor
                continue
            if not code.startswith(_LEAD_PREFIX):
                continue
            origin, scale, digits = child(value, "origin"), child(value, "scale"), child(value, "digits")
            if scale is None or digits is None:
                raise InputError(f"aECG sequence {i} has no scale or digits", path=name)
            unit = _UNITS.get(scale.get("unit", "uV").lower())
            if unit is None or (origin is not None and origin.get("unit", scale.get("unit")) != scale.get("unit")):
                raise InputError("aECG lead scale is in an unknown unit", path=name)
            units.add(unit)
            # lead codes are text from the file: messages name a sequence by its position
            check_samples_per_lead(len(digits.text or "") / 2, name)
            try:
                values = np.array((digits.text or "").split(), dtype=np.float64)
            except ValueError:
                raise InputError(f"aECG sequence {i}: digits are not numbers", path=name) from None
            offset = number(origin.get("value")) if origin is not None else 0.0
            gain = number(scale.get("value"))
            if offset is None or gain is None or gain == 0:
                raise InputError(f"aECG sequence {i}: origin or scale is not a number", path=name)
            uv_per_unit(gain * _UV.get(unit, 1.0), name, f"aECG sequence {i}: scale")
            if abs(offset * _UV.get(unit, 1.0)) > MAX_UV_PER_UNIT * 32768:
                raise InputError(f"aECG sequence {i}: origin is implausible", path=name)
            leads[code[len(_LEAD_PREFIX):]] = offset + gain * values
        if leads:
            if increment_s is None:
                raise InputError("aECG rhythm series gives no sampling interval", path=name)
            if len(units) != 1:
                raise InputError("aECG leads are in different units", path=name)
            return 1.0 / increment_s, leads, units.pop()
    raise InputError("aECG rhythm series holds no lead sequences", path=name)


def _annotations(root) -> tuple[list[str], dict[str, float]]:
    statements: list[str] = []
    numerics: dict[str, object] = {}
    derived = find_all(root, "derivedSeries")
    scopes = [d for d in derived if _code(d).upper() == "REPRESENTATIVE_BEAT"] + [root]
    for scope in scopes:
        for ann in find_all(scope, "annotation"):
            code = _code(ann)
            value = child(ann, "value")
            if value is None:
                continue
            key = _NUMERICS.get(code)
            if key and key not in numerics:
                numerics[key] = value.get("value")
            if scope is root and (code == "MDC_ECG_RHY" or code.startswith("MDC_ECG_INTERPRETATION")):
                text = value.get("displayName") or (value.text or "").strip() or value.get("code")
                if text and text not in statements:
                    statements.append(text)
    return clean_statements(statements), measurements(numerics)


def read_aecg(path: str | Path) -> Ecg:
    """Read an HL7 aECG file."""
    path = Path(path)
    name = path.name
    root = parse_xml(path, "HL7 aECG")
    fs, leads, unit = _sequences(_rhythm_series(root, name), name)
    statements, device = _annotations(root)
    gender = [g.get("code") for g in root.iter() if local(g.tag) == "administrativeGenderCode"]
    return build_ecg(leads, fs, path, FORMAT, units=unit, sex=sex_from(gender[0]) if gender else None,
                     device_statements=statements, device_measurements=device)
