"""GE CardioSoft `<CardiologyXML>` (resting ECG export; the dialect UK Biobank's ECGs use).

The 10 s `<StripData>` is read: one `<WaveformData lead="...">` of comma-separated integers per lead,
`<Resolution units="uVperLsb">`, `<SampleRate units="Hz">`. Statements: `<Interpretation>`'s
`DiagnosisText` and `ConclusionText`; measurements: `<RestingECGMeasurements>` (12SL).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.values import Ecg
from ._common import age_from, build_ecg, check_samples_per_lead, child, clean_statements, measurements, number, \
    parse_xml, sex_from, text_of, uv_per_unit

FORMAT = "ge_cardiosoft_xml"

# GE 12SL's QTc is Bazett's unless the site configures otherwise (GE 12SL Physician's Guide).
_MEASUREMENT_KEYS = {
    "VentricularRate": "heart_rate_bpm", "PQInterval": "pr_interval_ms", "PDuration": "p_duration_ms",
    "QRSDuration": "qrs_duration_ms", "QTInterval": "qt_interval_ms", "QTCInterval": "qtc_bazett_ms",
    "PAxis": "p_axis_deg", "RAxis": "qrs_axis_deg", "TAxis": "t_axis_deg",
}
_UNIT_PER_LSB = {"uvperlsb": "uV", "mvperlsb": "mV"}


def read_cardiosoft(path: str | Path) -> Ecg:
    """Read a GE CardioSoft XML export."""
    path = Path(path)
    name = path.name
    root = parse_xml(path, "CardioSoft XML")
    strip = child(root, "StripData")
    if strip is None:
        raise InputError("CardioSoft file has no StripData (rhythm) block", path=name)
    fs = number(text_of(strip, "SampleRate"))
    res_elem = child(strip, "Resolution")
    resolution = number(text_of(res_elem))
    unit = _UNIT_PER_LSB.get(str(res_elem.get("units", "uVperLsb")).lower()) if res_elem is not None else None
    if fs is None or resolution is None or resolution <= 0 or unit is None:
        raise InputError("CardioSoft StripData lacks SampleRate or Resolution", path=name)
    uv_per_unit(resolution * {"uV": 1.0, "mV": 1e3, "V": 1e6}.get(unit, 1.0), name, "CardioSoft Resolution")
    expected = number(text_of(strip, "ChannelSampleCountTotal"))
    leads: dict[str, np.ndarray] = {}
    # lead labels are free text from the file: messages name a lead by its position
    for i, wd in enumerate((wd for wd in strip if str(wd.tag).endswith("WaveformData")), start=1):
        label = wd.get("lead") or ""
        check_samples_per_lead((wd.text or "").count(","), name)
        try:
            values = np.array([float(v) for v in (wd.text or "").replace("\n", " ").split(",") if v.strip()])
        except ValueError:
            raise InputError(f"lead {i}: waveform data is not a list of numbers", path=name) from None
        if expected is not None and values.size != int(expected):
            raise InputError(f"lead {i}: {values.size} samples, header says {int(expected)} (truncated?)",
                             path=name)
        leads[label] = values * resolution
    if not leads:
        raise InputError("CardioSoft StripData holds no leads", path=name)
    interp = child(root, "Interpretation")
    statements = []
    if interp is not None:
        statements = [e.text for e in interp.iter() if str(e.tag) in ("DiagnosisText", "ConclusionText")]
    meas = child(root, "RestingECGMeasurements")
    device = measurements({key: text_of(meas, tag) for tag, key in _MEASUREMENT_KEYS.items()}) if meas is not None else {}
    info = child(root, "PatientInfo")
    age_elem = child(info, "Age")
    return build_ecg(leads, fs, path, FORMAT, units=unit,
                     sex=sex_from(text_of(info, "Gender")) if info is not None else None,
                     age_years=age_from(text_of(age_elem), age_elem.get("units", "YEARS")) if age_elem is not None else None,
                     device_statements=clean_statements(statements), device_measurements=device)
