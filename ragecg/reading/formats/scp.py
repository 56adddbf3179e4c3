"""SCP-ECG (EN 1064 / ISO 11073-91064) binary files, decoded by `ecgdatakit`'s SCP-ECG parser.

ecgdatakit handles the Huffman tables, first/second-difference encoding and reference-beat
subtraction; this module only maps its record to an `Ecg` (no patient fields are copied except sex).
"""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.values import Ecg
from ._common import build_ecg, check_size, clean_statements, measurements, sex_from

FORMAT = "scp_ecg"

_MEASUREMENT_FIELDS = {
    "heart_rate": "heart_rate_bpm", "pr_interval": "pr_interval_ms", "qrs_duration": "qrs_duration_ms",
    "qt_interval": "qt_interval_ms", "qtc_bazett": "qtc_bazett_ms", "qtc_fridericia": "qtc_fridericia_ms",
    "p_axis": "p_axis_deg", "qrs_axis": "qrs_axis_deg", "t_axis": "t_axis_deg",
}


def looks_like_scp(head: bytes) -> bool:
    """SCP-ECG has no magic number: check the layout (EN 1064 section 5.3) — the record size, section 0's
    header (id 0, a length of 16 + 10 per pointer) and its first pointer, which points to section 0 at
    byte 7. The same test as ecgdatakit's `SCPECGParser.can_parse`, without importing it."""
    if len(head) < 32:
        return False
    record_size, sec0_id, sec0_len = struct.unpack_from("<I2xHI", head, 2)
    if sec0_id != 0 or sec0_len < 26 or (sec0_len - 16) % 10 or record_size < 6 + sec0_len:
        return False
    first_id, first_offset = struct.unpack_from("<H4xI", head, 22)
    return first_id == 0 and first_offset == 7


def read_scp(path: str | Path) -> Ecg:
    """Read an SCP-ECG file (rhythm data of Section 6)."""
    from ecgdatakit.exceptions import ECGDataKitError
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser

    path = Path(path)
    name = path.name
    check_size(path)
    try:
        with warnings.catch_warnings():       # its warnings could quote header fields: not shown
            warnings.simplefilter("ignore")
            rec = SCPECGParser().parse(path)
    except ECGDataKitError as exc:
        raise InputError(f"SCP-ECG file cannot be decoded ({type(exc).__name__}); truncated or corrupt?",
                         path=name) from None
    except Exception as exc:  # defensive: malformed sections can raise ValueError, KeyError, ...
        raise InputError(f"SCP-ECG file cannot be decoded ({type(exc).__name__})", path=name) from None
    if not rec.leads:
        raise InputError("SCP-ECG file holds no rhythm leads", path=name)
    rates = {float(ld.sampling_rate) for ld in rec.leads}
    if len(rates) != 1:
        raise InputError("SCP-ECG leads have different sampling rates", path=name)
    leads: dict[str, np.ndarray] = {}
    units = set()
    for ld in rec.leads:
        try:
            phys = ld.to_physical()
        except Exception:
            raise InputError(f"SCP-ECG lead {ld.label} has no amplitude scale", path=name) from None
        units.add(phys.units)
        leads[ld.label] = np.asarray(phys.samples, dtype=np.float64)
    if len(units) != 1:
        raise InputError("SCP-ECG leads are in different units", path=name)
    statements = [f"{left} ({right})" if right else left for left, right in rec.interpretation.statements]
    if rec.interpretation.severity:
        statements.append(rec.interpretation.severity)
    device = measurements({key: getattr(rec.measurements, f, None) for f, key in _MEASUREMENT_FIELDS.items()})
    return build_ecg(leads, rates.pop(), path, FORMAT, units=units.pop(), sex=sex_from(rec.patient.sex),
                     device_statements=clean_statements(statements), device_measurements=device)
