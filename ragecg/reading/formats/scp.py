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


def check_crcs(data: bytes, name: str) -> None:
    """The CRC-CCITT checksums EN 1064 puts on the whole record (bytes 0-1, over bytes 2..record size)
    and on every section that section 0 points to (the section's bytes 0-1, over the rest of it):
    a mutated file is refused instead of decoded with changed values."""
    import binascii

    record_crc, record_size = struct.unpack_from("<HI", data, 0)
    if record_size > len(data):
        raise InputError(f"SCP-ECG file is truncated ({len(data)} of {record_size} bytes)", path=name)
    if binascii.crc_hqx(data[2:record_size], 0xFFFF) != record_crc:
        raise InputError("SCP-ECG record CRC does not match: the file is corrupt or was altered", path=name)
    sec0_len = struct.unpack_from("<I", data, 10)[0]
    for k in range((sec0_len - 16) // 10):
        if 6 + 16 + 10 * k + 10 > record_size:
            raise InputError("SCP-ECG section table is truncated", path=name)
        section_id, length, index = struct.unpack_from("<HII", data, 6 + 16 + 10 * k)
        if length == 0:
            continue
        start = index - 1
        if start < 6 or length < 16 or start + length > record_size:
            raise InputError(f"SCP-ECG section {section_id} lies outside the record", path=name)
        if binascii.crc_hqx(data[start + 2:start + length], 0xFFFF) != struct.unpack_from("<H", data, start)[0]:
            raise InputError(f"SCP-ECG section {section_id} CRC does not match: the file is corrupt or was altered",
                             path=name)


def read_scp(path: str | Path) -> Ecg:
    """Read an SCP-ECG file (rhythm data of Section 6)."""
    from ecgdatakit.exceptions import ECGDataKitError
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser

    path = Path(path)
    name = path.name
    check_size(path)
    check_crcs(path.read_bytes(), name)
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
        except Exception:          # the lead label is text from the file: not echoed
            raise InputError("SCP-ECG lead has no amplitude scale", path=name) from None
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
