"""DICOM waveform ECGs (12-lead, General ECG and Hemodynamic Waveform Storage), read and written with pydicom.

The multiplex group read is the rhythm group: the one labelled RHYTHM, else the longest group that
holds ECG leads (median-beat groups are skipped). Leads are identified by their coded source
(SCPECG `5.6.3-9-n` or MDC `2:n`), falling back to the code meaning ("Lead I (Einthoven)" -> I).
A resting ECG stored under the Hemodynamic SOP class (a cart export seen in practice) is read the same
way when its channels are ECG leads.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.reading.leads import standard_lead_name
from ragecg.values import STANDARD_LEADS, Ecg
from ._common import age_from, build_ecg, check_samples_per_lead, check_size, clean_statements, measurements, \
    sex_from, uv_per_unit

FORMAT = "dicom"

TWELVE_LEAD_ECG_SOP = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG_SOP = "1.2.840.10008.5.1.4.1.1.9.1.2"
WAVEFORM_SOPS = {TWELVE_LEAD_ECG_SOP, GENERAL_ECG_SOP, "1.2.840.10008.5.1.4.1.1.9.2.1",  # hemodynamic
                 "1.2.840.10008.5.1.4.1.1.9.1.3"}  # ambulatory ECG

# SCPECG lead numbers (EN 1064 / DICOM PS3.16 CID 3001): 1 I, 2 II, 3-8 V1-V6, 61 III, 62 aVR, 63 aVL, 64 aVF.
_SCP_LEADS = {1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
              61: "III", 62: "aVR", 63: "aVL", 64: "aVF"}
_UNIT_MV = {"uv": 1e-3, "mv": 1.0, "v": 1e3}
# DICOM CID 3250 / LOINC numeric annotation codes -> ragecg measurement names
_NUMERIC_CODES = {
    "5.10.2.5-1": "heart_rate_bpm", "8867-4": "heart_rate_bpm", "5.13.5-7": "pr_interval_ms",
    "5.13.5-9": "qrs_duration_ms", "5.13.5-11": "qt_interval_ms", "5.10.2.5-5": "qtc_ms",  # formula not coded
    "5.10.3-11": "p_axis_deg", "5.10.3-13": "qrs_axis_deg", "5.10.3-15": "t_axis_deg",
}


def _lead_label(channel) -> str:
    src = channel.get("ChannelSourceSequence")
    item = src[0] if src else None
    code = str(item.get("CodeValue", "")) if item is not None else ""
    m = re.fullmatch(r"5\.6\.3-9-(\d+)|2:(\d+)|(13\d{4})", code)
    if m:
        n = int(m.group(1) or m.group(2) or int(m.group(3)) - 131072)
        if n in _SCP_LEADS:
            return _SCP_LEADS[n]
    meaning = str(item.get("CodeMeaning", "")) if item is not None else ""
    meaning = re.sub(r"\(.*?\)", "", meaning).strip()
    return meaning or str(channel.get("ChannelLabel", ""))


def _pick_group(ds, name: str) -> int:
    groups = list(ds.get("WaveformSequence") or [])
    if not groups:
        raise InputError("DICOM file has no waveform (WaveformSequence is empty)", path=name)
    best, best_key = None, None
    for i, g in enumerate(groups):
        label = str(g.get("MultiplexGroupLabel", "")).upper()
        if "MEDIAN" in label or "TEMPLATE" in label:
            continue
        n_leads = sum(standard_lead_name(_lead_label(c)) is not None for c in g.get("ChannelDefinitionSequence") or [])
        duration = float(g.get("NumberOfWaveformSamples", 0)) / max(float(g.get("SamplingFrequency", 1) or 1), 1e-9)
        key = (label == "RHYTHM", n_leads > 0, duration)
        if best_key is None or key > best_key:
            best, best_key = i, key
    if best is None:
        raise InputError("DICOM file holds only median-beat waveforms, no rhythm strip", path=name)
    return best


def _check_channel_scale(ch, i: int, name: str) -> None:
    """ChannelSensitivity x ChannelSensitivityCorrectionFactor (per stored unit) and ChannelBaseline must be
    finite and plausible before pydicom multiplies the samples by them."""
    units = ch.get("ChannelSensitivityUnitsSequence")
    unit = str(units[0].get("CodeValue", "")).lower() if units else ""
    to_uv = _UNIT_MV.get(unit, 1.0) * 1000.0
    try:
        sensitivity = float(ch.get("ChannelSensitivity", 1) or 1) * float(ch.get("ChannelSensitivityCorrectionFactor", 1) or 1)
        baseline = float(ch.get("ChannelBaseline", 0) or 0)
    except (TypeError, ValueError):
        raise InputError(f"channel {i}: sensitivity or baseline is not a number", path=name) from None
    uv_per_unit(sensitivity * to_uv, name, f"channel {i}: sensitivity")
    if not np.isfinite(baseline) or abs(baseline) > 1e9:
        raise InputError(f"channel {i}: baseline is not finite or implausible", path=name)


def _annotations(ds, group: int) -> tuple[list[str], dict[str, float]]:
    from pydicom.multival import MultiValue

    texts: list[str] = []
    numerics: dict[str, object] = {}
    for ann in ds.get("WaveformAnnotationSequence") or []:
        ref = ann.get("ReferencedWaveformChannels")
        if ref is not None and len(ref) >= 1 and int(ref[0]) not in (group + 1,):
            continue  # refers to another multiplex group (channels are 1-based "group, channel" pairs)
        text = ann.get("UnformattedTextValue")
        if text:
            texts.extend(str(text).splitlines())
        concept = ann.get("ConceptNameCodeSequence")
        value = ann.get("NumericValue")
        if concept and value is not None:
            key = _NUMERIC_CODES.get(str(concept[0].get("CodeValue", "")))
            if key and key not in numerics:
                numerics[key] = value[0] if isinstance(value, (list, tuple, MultiValue)) else value
    return clean_statements(texts), measurements(numerics)


def read_dicom(path: str | Path) -> Ecg:
    """Read a DICOM waveform ECG."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    name = path.name
    check_size(path)
    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError:
        raise InputError("not a valid DICOM file", path=name) from None
    except Exception as exc:  # truncated files raise EOFError, struct errors, ...
        raise InputError(f"DICOM file cannot be parsed ({type(exc).__name__}); truncated or corrupt?",
                         path=name) from None
    sop = str(ds.get("SOPClassUID", ""))
    if sop and sop not in WAVEFORM_SOPS:
        raise InputError(f"DICOM object is not a waveform (SOP class {sop}); an ECG waveform is required", path=name)
    g = _pick_group(ds, name)
    group = ds.WaveformSequence[g]
    fs = float(group.get("SamplingFrequency", 0) or 0)
    check_samples_per_lead(float(group.get("NumberOfWaveformSamples", 0) or 0), name)
    for i, ch in enumerate(group.get("ChannelDefinitionSequence") or [], start=1):
        _check_channel_scale(ch, i, name)      # pydicom applies them in waveform_array
    try:
        raw = ds.waveform_array(g)
    except Exception as exc:
        raise InputError(f"DICOM waveform data cannot be decoded ({type(exc).__name__}); truncated?", path=name) from None
    channels = list(group.ChannelDefinitionSequence)
    if raw.ndim != 2 or raw.shape[1] != len(channels):
        raise InputError("DICOM waveform shape does not match its channel definitions", path=name)
    leads: dict[str, np.ndarray] = {}
    for i, ch in enumerate(channels):
        units = ch.get("ChannelSensitivityUnitsSequence")
        unit = str(units[0].get("CodeValue", "")).lower() if units else ""
        if unit not in _UNIT_MV:     # the unit code is text from the file: not echoed
            raise InputError(f"channel {i + 1} is not in a voltage unit (uV, mV or V)", path=name)
        label = _lead_label(ch)
        leads[label if label not in leads else f"{label}#{i}"] = raw[:, i] * _UNIT_MV[unit]
    statements, device = _annotations(ds, g)
    age = str(ds.get("PatientAge", "") or "")
    return build_ecg(leads, fs, path, FORMAT, units="mV", sex=sex_from(ds.get("PatientSex")),
                     age_years=age_from(age[:-1]) if age.upper().endswith("Y") else None,
                     device_statements=statements, device_measurements=device)


def write_dicom(ecg: Ecg, path: str | Path) -> Path:
    """Write an `Ecg` as DICOM 12-lead (<= 16 s, 200-1000 Hz) or General ECG Waveform Storage.

    Samples are int16 at the finest whole-microvolt sensitivity that holds the largest value. No
    patient or institution attributes are written.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    x_uv = np.nan_to_num(ecg.signals_mv.astype(np.float64) * 1000.0)
    peak = float(np.max(np.abs(x_uv))) if x_uv.size else 0.0
    sensitivity = max(1.0, float(np.ceil(peak / 32767.0)))
    digital = np.clip(np.round(x_uv / sensitivity), -32768, 32767).astype("<i2")
    twelve = ecg.duration_s <= 16.0 and 200.0 <= ecg.sampling_rate_hz <= 1000.0
    sop = TWELVE_LEAD_ECG_SOP if twelve else GENERAL_ECG_SOP

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "ECG"
    ds.Manufacturer = "ragecg"
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = 12
    group.NumberOfWaveformSamples = int(ecg.n_samples)
    group.SamplingFrequency = f"{ecg.sampling_rate_hz:g}"
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    inverse = {v: k for k, v in _SCP_LEADS.items()}
    channels = []
    for lead in STANDARD_LEADS:
        ch = Dataset()
        src = Dataset()
        src.CodeValue = f"5.6.3-9-{inverse[lead]}"
        src.CodingSchemeDesignator = "SCPECG"
        src.CodingSchemeVersion = "1.3"
        src.CodeMeaning = f"Lead {lead}"
        ch.ChannelSourceSequence = [src]
        unit = Dataset()
        unit.CodeValue = "uV"
        unit.CodingSchemeDesignator = "UCUM"
        unit.CodeMeaning = "microvolt"
        ch.ChannelSensitivity = f"{sensitivity:g}"
        ch.ChannelSensitivityUnitsSequence = [unit]
        ch.ChannelSensitivityCorrectionFactor = "1"
        ch.ChannelBaseline = "0"
        ch.WaveformBitsStored = 16
        channels.append(ch)
    group.ChannelDefinitionSequence = channels
    group.WaveformData = digital.tobytes()
    ds.WaveformSequence = [group]
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path
