"""Readers for clinical ECG file formats. The format is decided from the file's content (magic bytes,
XML root element), never from its extension; every reader returns the same `Ecg` via `ecg_from_leads`.

| format             | detected by                                   | module      |
|--------------------|-----------------------------------------------|-------------|
| GE MUSE XML        | root element `RestingECG`                     | muse        |
| GE CardioSoft XML  | root element `CardiologyXML`                  | cardiosoft  |
| HL7 aECG           | root element `AnnotatedECG`                   | aecg        |
| Philips XML        | root element `restingecgdata`                 | philips     |
| DICOM waveform     | `DICM` at byte 128                            | dicom       |
| SCP-ECG            | record/section-0 layout (no magic number)     | scp         |
| EDF/EDF+/BDF       | `0       ` / `\\xffBIOSEMI` header version     | edf         |
| NumPy .npy         | `\\x93NUMPY`                                   | arrays      |
| CSV/TSV            | text with consistent separated columns         | arrays      |

WFDB records are not handled here: `detect_and_read` returns None and `ragecg.reading.record.read_record`
reads them with `wfdb`.
"""
from __future__ import annotations

import re
from pathlib import Path

from ragecg.errors import InputError
from ragecg.values import Ecg

from . import aecg, cardiosoft, dicom, edf, muse, philips, scp
from .arrays import read_csv, read_npy, sniff_delimiter

HEAD_BYTES = 4096

XML_ROOTS = {"RestingECG": "ge_muse_xml", "CardiologyXML": "ge_cardiosoft_xml", "AnnotatedECG": "hl7_aecg",
             "restingecgdata": "philips_xml"}
SUPPORTED = "WFDB, GE MUSE/CardioSoft XML, HL7 aECG, Philips XML, DICOM, SCP-ECG, EDF, CSV/TSV, .npy"


def _xml_text(head: bytes) -> str | None:
    """The head decoded as text when it looks like XML (any BOM/encoding), else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    elif len(head) > 1 and head[0] == 0 and head[1] == ord("<"):
        text = head.decode("utf-16-be", errors="ignore")
    elif len(head) > 1 and head[0] == ord("<") and head[1] == 0:
        text = head.decode("utf-16-le", errors="ignore")
    else:
        text = head[3:].decode("latin-1") if head.startswith(b"\xef\xbb\xbf") else head.decode("latin-1")
    text = text.lstrip("\ufeff \t\r\n")
    return text if text.startswith("<") else None


def xml_root_name(head: bytes) -> str | None:
    """The local name of the first element after the prolog (declaration, comments, DOCTYPE)."""
    text = _xml_text(head)
    if text is None:
        return None
    text = re.sub(r"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", "", text, flags=re.S)
    m = re.search(r"<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)", text)
    return m.group(2) if m else ""


def detect_format(path: str | Path) -> str | None:
    """The format name of a file from its first bytes, or None when it is none of the formats here."""
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if len(head) >= 256 and (head[:8] == b"0       " or head[:8] == b"\xffBIOSEMI") and head[184:192].strip().isdigit():
        return "edf"
    root = xml_root_name(head)
    if root is not None:
        return XML_ROOTS.get(root, "xml")
    if scp.looks_like_scp(head):
        return "scp_ecg"
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if sniff_delimiter(text) is not None:
        return "csv"
    return None


def _looks_like_wfdb(p: Path) -> bool:
    base = p.with_suffix("") if p.suffix else p
    return base.with_name(base.name + ".hea").is_file() or p.with_name(p.name + ".hea").is_file()


def detect_and_read(path: str | Path, *, sampling_rate_hz: float | None = None, leads: list[str] | None = None,
                    units: str | None = None) -> Ecg | None:
    """Read a clinical-format ECG file into an `Ecg`; None when the file is (part of) a WFDB record.

    `sampling_rate_hz`, `leads` and `units` are used only by formats that cannot state them (CSV, .npy).
    """
    p = Path(path)
    if not p.is_file():
        return None
    if p.stat().st_size == 0:
        raise InputError("file is empty", path=p.name)
    fmt = detect_format(p)
    if fmt in (None, "xml", "scp_ecg", "csv") and _looks_like_wfdb(p):
        return None   # a WFDB signal file beside its header: weak content guesses do not override it
    if fmt is None:
        raise InputError(f"unrecognised file format (supported: {SUPPORTED})", path=p.name)
    if fmt == "xml":
        raise InputError("XML file of an unsupported kind (not GE MUSE/CardioSoft, HL7 aECG or Philips)", path=p.name)
    if fmt in _READERS:
        return _READERS[fmt](p)
    reader = read_npy if fmt == "npy" else read_csv
    return reader(p, sampling_rate_hz=sampling_rate_hz, leads=leads, units=units or "mV")


# format -> reader for the formats that say everything about themselves (each reader imports its
# third-party parser when called, so reading a MUSE file never imports pydicom or pyedflib).
_READERS = {
    "ge_muse_xml": muse.read_muse, "ge_cardiosoft_xml": cardiosoft.read_cardiosoft,
    "hl7_aecg": aecg.read_aecg, "philips_xml": philips.read_philips,
    "dicom": dicom.read_dicom, "scp_ecg": scp.read_scp, "edf": edf.read_edf,
}

__all__ = ["detect_and_read", "detect_format", "xml_root_name", "SUPPORTED"]
