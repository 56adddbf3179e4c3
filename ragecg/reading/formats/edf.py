"""EDF / EDF+ / BDF files, read and written with pyEDFlib.

Signals whose labels are ECG lead names are read in physical units (each signal's own physical
dimension is converted to mV); other signals (respiration, annotations) are ignored. A file without
the leads of a 12-lead ECG (e.g. an abdominal fetal ECG) is refused, naming the missing leads.
"""
from __future__ import annotations

import warnings
from math import gcd
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.reading.leads import MAX_DURATION_S, standard_lead_name
from ragecg.values import STANDARD_LEADS, Ecg
from ._common import build_ecg, check_samples_per_lead, check_size, sex_from, uv_per_unit

FORMAT = "edf"
_UNIT_MV = {"uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "mv": 1.0, "v": 1e3}


def _label(raw: str) -> str:
    """EDF labels often read 'ECG I' or 'EKG V1': drop the signal-type prefix (EDF+ spec, section 2.2)."""
    parts = raw.strip().split()
    if len(parts) == 2 and parts[0].upper() in ("ECG", "EKG"):
        return parts[1]
    return raw.strip()


def _check_edf_size(path: Path) -> None:
    """Refuse a truncated file before pyEDFlib opens it (it would print its complaint to stdout)."""
    with open(path, "rb") as fh:
        head = fh.read(256)
        try:
            header_bytes, n_records, ns = int(head[184:192]), int(head[236:244]), int(head[252:256])
            if path.stat().st_size < header_bytes or header_bytes < 256 * (ns + 1):
                raise InputError("EDF file is truncated inside its header", path=path.name)
            fh.seek(256 + ns * 216)
            per_record = [int(fh.read(8)) for _ in range(ns)]
        except ValueError:
            raise InputError("EDF header is malformed (non-numeric size fields)", path=path.name) from None
    width = 3 if head[:8] == b"\xffBIOSEMI" else 2
    needed = header_bytes + max(n_records, 0) * sum(per_record) * width
    size = path.stat().st_size
    if n_records < 0 or size < needed:
        raise InputError(f"EDF file is truncated ({size} of {needed} bytes)", path=path.name)


def read_edf(path: str | Path) -> Ecg:
    """Read the ECG leads of an EDF/EDF+/BDF file."""
    import pyedflib

    path = Path(path)
    name = path.name
    check_size(path)
    _check_edf_size(path)
    try:
        reader = pyedflib.EdfReader(str(path))
    except Exception as exc:  # pyedflib raises OSError with its own reason text for damaged files
        raise InputError(f"EDF file cannot be opened ({type(exc).__name__}); truncated or not EDF?",
                         path=name) from None
    try:
        labels = [_label(s) for s in reader.getSignalLabels()]
        picked = [i for i, lab in enumerate(labels) if standard_lead_name(lab)]
        if not picked:               # labels are free text from the file: counted, not shown
            raise InputError(f"not a 12-lead ECG: missing leads {', '.join(STANDARD_LEADS)} "
                             f"(the file has {len(labels)} signal(s), none with a recognised lead label)", path=name)
        rates = {float(reader.getSampleFrequency(i)) for i in picked}
        counts = {int(reader.getNSamples()[i]) for i in picked}
        if len(rates) != 1 or len(counts) != 1:
            raise InputError("ECG leads have different sampling rates or lengths", path=name)
        fs, n = rates.pop(), counts.pop()
        if fs > 0 and n / fs > MAX_DURATION_S:
            raise InputError(f"record is {n / fs:.0f} s long; at most 600 s (10 min) is accepted — cut it first",
                             path=name)
        check_samples_per_lead(n, name)
        leads: dict[str, np.ndarray] = {}
        for i in picked:
            dim = reader.getPhysicalDimension(i).strip().lower()
            if dim not in _UNIT_MV:     # the dimension is text from the file: not echoed
                raise InputError(f"signal {standard_lead_name(labels[i])} is not in a voltage unit (uV, mV or V)",
                                 path=name)
            h = reader.getSignalHeader(i)
            digital_span = float(h["digital_max"]) - float(h["digital_min"])
            if digital_span == 0:
                raise InputError(f"signal {standard_lead_name(labels[i])}: digital range is empty", path=name)
            uv_per_unit((float(h["physical_max"]) - float(h["physical_min"])) / digital_span * _UNIT_MV[dim] * 1000,
                        name, f"signal {standard_lead_name(labels[i])}: scale")
            leads[labels[i]] = reader.readSignal(i, digital=False) * _UNIT_MV[dim]
        sex = sex_from(reader.getSex() if hasattr(reader, "getSex") else None)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"EDF signal data cannot be read ({type(exc).__name__}); truncated?", path=name) from None
    finally:
        reader.close()
    return build_ecg(leads, fs, path, FORMAT, units="mV", sex=sex)


def write_edf(ecg: Ecg, path: str | Path) -> Path:
    """Write an `Ecg` as EDF+ (16 bit, mV, one signal per standard lead). No patient fields are written.

    Each lead's physical range is its own min..max, so the quantisation step is range / 65535.
    """
    import pyedflib

    path = Path(path)
    fs = ecg.sampling_rate_hz
    if abs(fs - round(fs)) > 1e-9:
        raise InputError(f"EDF needs a whole sampling rate to write (got {fs:g} Hz)", path=path.name)
    fs_int = int(round(fs))
    per_record = gcd(ecg.n_samples, fs_int) or 1       # whole data records: no zero padding at the end
    if per_record / fs < 0.001:
        raise InputError("cannot write whole EDF data records for this length and rate", path=path.name)
    x = np.nan_to_num(ecg.signals_mv.astype(np.float64))
    headers = []
    for j, lead in enumerate(STANDARD_LEADS):
        # the header holds 8 characters per limit: round outwards to 1 uV so no sample is clipped
        lo = round(float(np.floor(x[:, j].min() * 1000)) / 1000 - 0.001, 3)
        hi = round(float(np.ceil(x[:, j].max() * 1000)) / 1000 + 0.001, 3)
        headers.append({"label": lead, "dimension": "mV", "sample_frequency": fs_int,
                        "physical_min": lo, "physical_max": hi, "digital_min": -32768,
                        "digital_max": 32767, "transducer": "", "prefilter": ""})
    writer = pyedflib.EdfWriter(str(path), len(STANDARD_LEADS), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        if per_record != fs_int:
            with warnings.catch_warnings():   # pyedflib warns whenever the record duration is set
                warnings.simplefilter("ignore")
                writer.setDatarecordDuration(per_record / fs)
        writer.setSignalHeaders(headers)
        # digital values rounded here (pyEDFlib truncates), so the error is at most half a step
        digital = []
        for j, h in enumerate(headers):
            step = (h["physical_max"] - h["physical_min"]) / 65535.0
            d = np.round((x[:, j] - h["physical_min"]) / step) - 32768
            digital.append(np.ascontiguousarray(np.clip(d, -32768, 32767).astype(np.int32)))
        writer.writeSamples(digital, digital=True)
    finally:
        writer.close()
    return path
