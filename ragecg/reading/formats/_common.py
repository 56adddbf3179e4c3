"""Helpers shared by the format readers: safe XML, lead checks, statement cleaning.

Every error names the file by its name only and says what is wrong; never the file's content.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.reading.leads import MAX_SAMPLES_PER_LEAD, ecg_from_leads, standard_lead_name
from ragecg.values import STANDARD_LEADS, Ecg

MAX_FILE_BYTES = 200 * 1024 * 1024   # larger files are refused before parsing (bounded memory)
MAX_XML_ELEMENTS = 200_000           # real ECG XML exports hold 190-1,500 elements; counted before the tree is built
# Amplitude scale factors read from a file (uV per stored unit): real files use 0.5-5 uV; beyond this
# range the factor is a corrupt or hostile field (SampleExponent 400 overflowed a float).
MIN_UV_PER_UNIT, MAX_UV_PER_UNIT = 1e-4, 1e5

# Lines that carry a physician's or technician's name, not a finding: never copied into device_statements.
_SIGNATURE = re.compile(r"^\s*(confirmed|reviewed|overread|over-read|read|signed|electronically signed|referred|"
                        r"requested|edited|interpreted|verified|unconfirmed)\b.*\bby\b", re.I)


def check_size(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise InputError("file is empty", path=path.name)
    if size > MAX_FILE_BYTES:
        raise InputError(f"file is {size / 2**20:.0f} MiB; at most {MAX_FILE_BYTES // 2**20} MiB is accepted",
                         path=path.name)


class _TooMany(Exception):
    pass


def _count_elements(path: Path, what: str) -> None:
    """Refuse an XML file of more than MAX_XML_ELEMENTS elements before building its tree (52 million
    empty elements fit in 200 MiB and took 4.5 GB as a tree): a streaming count with expat that stops
    at the limit. Entity declarations stop it too (refused by defusedxml just after)."""
    import xml.parsers.expat as expat

    parser = expat.ParserCreate()
    count = 0

    def start(*_):
        nonlocal count
        count += 1
        if count > MAX_XML_ELEMENTS:
            raise _TooMany

    def entity(*_):
        raise expat.ExpatError("entity declaration")

    parser.StartElementHandler = start
    parser.EntityDeclHandler = entity
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                parser.Parse(block, False)
            parser.Parse(b"", True)
    except _TooMany:
        raise InputError(f"{what} file holds more than {MAX_XML_ELEMENTS:,} XML elements; not an ECG export",
                         path=path.name) from None
    except expat.ExpatError:
        return                  # malformed or with entities: parse_xml says which


def parse_xml(path: Path, what: str):
    """The root element, parsed with defusedxml (no entity expansion, no external resources), after
    a size check and a streaming element count (bounded memory)."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException
    from xml.etree.ElementTree import ParseError

    check_size(path)
    _count_elements(path, what)
    try:
        return DET.parse(str(path)).getroot()
    except DefusedXmlException:
        raise InputError(f"{what} file declares XML entities or external references, refused for safety",
                         path=path.name) from None
    except ParseError as exc:
        line = getattr(exc, "position", (None,))[0]
        where = f" (line {line})" if line else ""
        raise InputError(f"{what} file is not well-formed XML{where}; truncated or corrupt?", path=path.name) from None


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def child(elem, name: str):
    """The first direct child with this local name, or None."""
    if elem is None:
        return None
    for c in elem:
        if local(c.tag) == name:
            return c
    return None


def find_all(elem, name: str) -> list:
    """All descendants with this local name (any namespace), document order."""
    return [e for e in elem.iter() if local(e.tag) == name]


def text_of(elem, name: str | None = None) -> str | None:
    """Stripped text of `elem` (or of its first direct child `name`); None when absent or empty."""
    e = child(elem, name) if name else elem
    if e is None or e.text is None:
        return None
    t = e.text.strip()
    return t or None


def number(value) -> float | None:
    """A finite float from text, or None (empty, 'Indeterminate', 'Failed', ...)."""
    if value is None:
        return None
    try:
        x = float(str(value).strip())
    except ValueError:
        return None
    return x if np.isfinite(x) else None


def uv_per_unit(value, name: str, what: str = "amplitude scale") -> float:
    """An amplitude scale factor (uV per stored unit) from a file, checked: finite and within
    MIN_UV_PER_UNIT..MAX_UV_PER_UNIT; InputError otherwise (the value itself is not echoed)."""
    v = number(value) if not isinstance(value, (int, float)) else float(value)
    if v is None or not np.isfinite(v) or not MIN_UV_PER_UNIT <= abs(v) <= MAX_UV_PER_UNIT:
        raise InputError(f"{what} is missing, not finite or implausible (outside {MIN_UV_PER_UNIT:g}-"
                         f"{MAX_UV_PER_UNIT:g} uV per unit)", path=name)
    return v


def check_samples_per_lead(n: float, name: str) -> None:
    """Refuse, before the samples are decoded, a lead longer than MAX_SAMPLES_PER_LEAD (bounded memory)."""
    if n > MAX_SAMPLES_PER_LEAD:
        raise InputError(f"record holds {n:,.0f} samples per lead; at most {MAX_SAMPLES_PER_LEAD:,} are accepted "
                         "(e.g. 600 s at 1 kHz): resample or cut it first", path=name)


def measurements(pairs: dict[str, object]) -> dict[str, float]:
    """Keep the numeric, finite device measurements; ragecg key names (units in the name).

    Devices write 0 for an interval they could not measure (PR in atrial fibrillation): intervals and
    rates <= 0 are dropped; axes keep their sign.
    """
    out: dict[str, float] = {}
    for key, raw in pairs.items():
        v = number(raw)
        if v is None or (key.endswith(("_ms", "_bpm")) and v <= 0):
            continue
        out[key] = v
    return out


def clean_statements(lines) -> list[str]:
    """Device statements: whitespace collapsed, empty and signature lines (names of physicians) dropped."""
    out: list[str] = []
    for line in lines:
        s = re.sub(r"\s+", " ", str(line or "")).strip()
        if s and not _SIGNATURE.match(s):
            out.append(s)
    return out


def sex_from(value) -> str | None:
    v = str(value or "").strip().upper()[:1]
    return v if v in ("M", "F") else None


def age_from(value, units: str | None = "years") -> float | None:
    age = number(value)
    if age is None or (units and not str(units).strip().lower().startswith("year")):
        return None
    return age if 0 <= age < 130 else None


def build_ecg(leads: dict[str, np.ndarray], fs: float, path: Path, source_format: str, *, units: str = "mV",
              **meta) -> Ecg:
    """`ecg_from_leads`, after a check that names the missing leads when none of the signals is an ECG lead."""
    if not any(standard_lead_name(k) for k in leads):
        # labels are free text from the file (names, identifiers have been seen there): counted, not shown
        raise InputError(f"not a 12-lead ECG: missing leads {', '.join(STANDARD_LEADS)} "
                         f"(the file has {len(leads)} signal(s), none with a recognised lead label)", path=path.name)
    return ecg_from_leads(leads, float(fs), source_path=str(path), source_format=source_format, units=units, **meta)
