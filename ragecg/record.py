"""Stage 1 — read a record into an `Ecg`: mV, the standard 12-lead order, sampling rate from the file.

WFDB is read with `wfdb`; other formats live in `ragecg.formats` and return the same value.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

STANDARD_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")

_ALIASES = {
    "i": "I", "ii": "II", "iii": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF",
    "lead i": "I", "lead ii": "II", "lead iii": "III", "mli": "I", "mlii": "II", "mliii": "III",
    "-avr": None,  # inverted aVR (Cabrera) is not accepted silently
}
for _n in range(1, 7):
    _ALIASES[f"v{_n}"] = f"V{_n}"
    _ALIASES[f"lead v{_n}"] = f"V{_n}"

MIN_SAMPLING_RATE_HZ = 50.0
MAX_SAMPLING_RATE_HZ = 20_000.0
MIN_DURATION_S = 2.0
MAX_DURATION_S = 600.0 + 1e-6  # 10 minutes; longer records are refused (bounded memory)


def standard_lead_name(name: str) -> str | None:
    """Map a lead label (PTB-XL, LUDB, Challenge, MUSE spellings; any case) to the standard name."""
    key = re.sub(r"[\s_]+", " ", str(name).strip()).lower()
    return _ALIASES.get(key)


@dataclass
class Ecg:
    """A 12-lead ECG in mV, columns in STANDARD_LEADS order. A missing lead is NaN and listed."""

    signals_mv: np.ndarray            # samples x 12, float32
    sampling_rate_hz: float
    source_path: str
    source_format: str
    missing_leads: list[str] = field(default_factory=list)
    derived_leads: list[str] = field(default_factory=list)
    sex: str | None = None            # "M" / "F" when the file says; patient data: never logged
    age_years: float | None = None
    header_comments: list[str] = field(default_factory=list, repr=False)  # never logged
    device_statements: list[str] = field(default_factory=list, repr=False)
    device_measurements: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def duration_s(self) -> float:
        return self.signals_mv.shape[0] / self.sampling_rate_hz

    @property
    def n_samples(self) -> int:
        return int(self.signals_mv.shape[0])

    def lead(self, name: str) -> np.ndarray:
        return self.signals_mv[:, STANDARD_LEADS.index(name)]

    def __repr__(self) -> str:  # no signal values, no patient data
        return (f"Ecg(source={Path(self.source_path).name!r}, format={self.source_format}, "
                f"fs={self.sampling_rate_hz} Hz, duration={self.duration_s:.1f} s)")


def ecg_from_leads(leads: dict[str, np.ndarray], sampling_rate_hz: float, *, source_path: str,
                   source_format: str, units: str = "mV", **meta) -> Ecg:
    """Build an `Ecg` from named lead arrays: checks, unit conversion, lead derivation.

    Every format reader ends here, so every format gets the same checks.
    """
    name = Path(source_path).name
    if not np.isfinite(sampling_rate_hz) or sampling_rate_hz < MIN_SAMPLING_RATE_HZ or sampling_rate_hz > MAX_SAMPLING_RATE_HZ:
        raise InputError(f"sampling rate {sampling_rate_hz:g} Hz is outside {MIN_SAMPLING_RATE_HZ:g}-{MAX_SAMPLING_RATE_HZ:g} Hz",
                         path=name)
    mapped: dict[str, np.ndarray] = {}
    unknown = []
    for label, values in leads.items():
        std = standard_lead_name(label)
        if std is None:
            unknown.append(str(label))
            continue
        if std in mapped:
            raise InputError(f"lead {std} appears more than once", path=name)
        mapped[std] = np.asarray(values, dtype=np.float64)
    if not mapped:
        raise InputError(f"no standard ECG lead names found (got {len(leads)} signals)", path=name)
    lengths = {v.shape[0] for v in mapped.values()}
    if len(lengths) != 1:
        raise InputError("leads have different lengths", path=name)
    n = lengths.pop()
    duration = n / sampling_rate_hz
    if duration < MIN_DURATION_S:
        raise InputError(f"record is {duration:.2f} s long; at least {MIN_DURATION_S:g} s is needed", path=name)
    if duration > MAX_DURATION_S:
        raise InputError(f"record is {duration:.0f} s long; at most 600 s (10 min) is accepted — cut it first", path=name)

    scale = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}.get(units.strip().lower())
    if scale is None:
        raise InputError(f"unknown signal unit {units!r} (expected mV, uV or V)", path=name)

    derived: list[str] = []
    if "I" in mapped and "II" in mapped and not all(ld in mapped for ld in LIMB_DERIVED):
        lead_i, lead_ii = mapped["I"], mapped["II"]
        with np.errstate(invalid="ignore"):   # inf - inf in a damaged sample: NaN, handled by quality
            formulas = {"III": lead_ii - lead_i, "aVR": -(lead_i + lead_ii) / 2,
                        "aVL": lead_i - lead_ii / 2, "aVF": lead_ii - lead_i / 2}
        for lead_name, values in formulas.items():
            if lead_name not in mapped:
                mapped[lead_name] = values
                derived.append(lead_name)
    missing = [ld for ld in STANDARD_LEADS if ld not in mapped]
    if missing:
        raise InputError(f"missing lead(s) {', '.join(missing)}; a 12-lead ECG is required"
                         + (f" (unrecognised labels: {', '.join(unknown[:6])})" if unknown else ""), path=name)
    signals = np.column_stack([mapped[ld] * scale for ld in STANDARD_LEADS]).astype(np.float32)
    return Ecg(signals_mv=signals, sampling_rate_hz=float(sampling_rate_hz), source_path=str(source_path),
               source_format=source_format, missing_leads=[], derived_leads=derived, **meta)


def _parse_demographics(comments: list[str]) -> dict:
    """Sex and age from WFDB header comments (LUDB `<sex>: F`, Challenge `Sex: Male`)."""
    out: dict = {}
    for line in comments:
        m = re.match(r"\s*<?(sex|gender)>?\s*:\s*(\w+)", line, re.I)
        if m:
            v = m.group(2).upper()[:1]
            if v in ("M", "F"):
                out["sex"] = v
        m = re.match(r"\s*<?age>?\s*:\s*([\d.]+)", line, re.I)
        if m:
            try:
                age = float(m.group(1))
                if 0 <= age < 130:
                    out["age_years"] = age
            except ValueError:
                pass
    return out


def resolve_wfdb_path(path: str | Path) -> Path:
    """The record path without extension; accepts `rec.hea`, `rec.dat`, `rec.mat` or `rec`."""
    p = Path(path)
    if p.suffix.lower() in (".hea", ".dat", ".mat"):
        p = p.with_suffix("")
    return p


def read_wfdb(path: str | Path) -> Ecg:
    """Read a WFDB record (PTB-XL, LUDB, Challenge 2021 `.mat`), any lead order, any gain."""
    import wfdb

    given = Path(path)
    base = resolve_wfdb_path(given)
    hea = base.with_name(base.name + ".hea")
    shown = given.name
    if given.is_dir():
        raise InputError("is a directory, not a record (give the .hea file)", path=shown)
    if not hea.is_file():
        raise InputError("no such record (the .hea header file does not exist)", path=shown)
    if hea.stat().st_size == 0:
        raise InputError("header file is empty", path=shown)
    _check_header_text(hea, shown)
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises many types for malformed headers
        raise InputError(f"not a valid WFDB header ({type(exc).__name__})", path=shown) from None
    if not header.fs or header.fs <= 0:
        raise InputError(f"header gives sampling rate {header.fs!r}; it must be positive", path=shown)
    if not header.n_sig or not header.sig_len:
        raise InputError("header describes no signal samples", path=shown)
    if len(header.sig_name or []) != header.n_sig:
        raise InputError(f"header says {header.n_sig} signals but describes {len(header.sig_name or [])}", path=shown)
    if not MIN_SAMPLING_RATE_HZ <= header.fs <= MAX_SAMPLING_RATE_HZ:
        raise InputError(f"sampling rate {header.fs:g} Hz is outside {MIN_SAMPLING_RATE_HZ:g}-{MAX_SAMPLING_RATE_HZ:g} Hz",
                         path=shown)
    if header.sig_len / header.fs > MAX_DURATION_S:
        raise InputError(f"record is {header.sig_len / header.fs:.0f} s long; at most 600 s (10 min) is accepted", path=shown)
    for fname in sorted(set(header.file_name or [])):
        f = base.parent / fname
        if not f.is_file():
            raise InputError(f"signal file {fname} named by the header does not exist", path=shown)
    size_warnings = _check_signal_file_sizes(header, base, shown)
    try:
        rec = wfdb.rdrecord(str(base), physical=False)
        signals = rec.dac()   # physical units; WFDB's invalid-sample value becomes NaN
    except Exception as exc:
        raise InputError(f"cannot read the signal data ({type(exc).__name__}); the file may be truncated or corrupt",
                         path=shown) from None
    _check_checksums(rec, shown)
    for msg in size_warnings:
        logging.getLogger("ragecg").warning(msg)
    if signals is None or signals.ndim != 2 or signals.shape[0] != header.sig_len:
        raise InputError("signal data is shorter than the header says (truncated file?)", path=shown)
    units = {str(u).strip() for u in (rec.units or ["mV"])}
    if len(units) != 1:
        raise InputError(f"leads are in different units ({', '.join(sorted(units))})", path=shown)
    comments = list(rec.comments or [])
    leads = {name: signals[:, i] for i, name in enumerate(rec.sig_name)}
    dup = {standard_lead_name(n) for n in rec.sig_name if standard_lead_name(n)}
    if len(dup) < len([n for n in rec.sig_name if standard_lead_name(n)]):
        raise InputError("a lead name appears more than once", path=shown)
    return ecg_from_leads(leads, float(rec.fs), source_path=str(hea), source_format="wfdb",
                          units=units.pop() or "mV", header_comments=comments, **_parse_demographics(comments))


_FMT_BYTES = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "310": 4 / 3,
              "311": 4 / 3}


MAX_HEADER_BYTES = 1 << 20      # WFDB headers are a few KiB; a larger ".hea" is not one (bounded memory)
_FS_FIELD = re.compile(r"^(\d+\.?\d*|\.\d+)(?:/[\d.]*(?:\([-\d.]*\))?)?$")   # fs[/counter_freq[(base)]]


def _check_header_text(hea: Path, shown: str) -> None:
    """Checks wfdb skips: it decodes headers as ASCII dropping other bytes (so a non-ASCII file name is
    silently changed) and assumes 250 Hz when the sampling-rate field is absent or unparsable (`-500`)."""
    if hea.stat().st_size > MAX_HEADER_BYTES:
        raise InputError(f"header file is larger than {MAX_HEADER_BYTES >> 20} MiB; not a WFDB header", path=shown)
    raw = hea.read_bytes()
    try:
        if b"\x00" in raw:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a valid WFDB header (binary content, not text)", path=shown) from None
    lines = [ln for ln in raw.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")]
    if not lines:
        raise InputError("header has no record line", path=shown)
    if any(not ln.isascii() for ln in lines):
        raise InputError("header record/signal lines are not ASCII (WFDB record and file names must be ASCII "
                         "letters, digits, _ and -)", path=shown)
    fields = lines[0].decode("ascii").split()
    if len(fields) < 2 or not re.fullmatch(r"[-\w]+(/\d+)?", fields[0]) or not fields[1].isdigit():
        raise InputError("not a valid WFDB header (the first line is not a record line)", path=shown)
    if len(fields) < 3:
        raise InputError("header gives no sampling rate (WFDB would assume 250 Hz); refused", path=shown)
    if not _FS_FIELD.match(fields[2]):
        raise InputError("header sampling-rate field is not a positive number", path=shown)


def _check_checksums(rec, shown: str) -> None:
    """The header's per-signal 16-bit checksums must match the samples read (WFDB header spec); a mismatch
    means a wrong format field, a corrupt file or a header for other data. All 4,648 LUDB/PTB-XL/MIT-BIH
    records in the shared data match."""
    given = rec.checksum
    if not given or any(c is None for c in given) or rec.d_signal is None:
        return
    calc = rec.calc_checksum()
    bad = [name for name, c, g in zip(rec.sig_name, calc, given) if (int(c) - int(g)) % 65536]
    if bad:
        raise InputError(f"checksum mismatch in {len(bad)} signal(s): the data does not match the header "
                         "(wrong format field, corrupt file, or another record's header)", path=shown)


def _check_signal_file_sizes(header, base: Path, shown: str) -> list[str]:
    """A `.dat` shorter than the header says is truncated; wfdb would otherwise pad or fail obscurely.
    A longer one is read as the header says (the header is authoritative; checksums are verified after
    reading) with a warning on stderr: the warnings are returned, to be logged once the data is verified."""
    per_file: dict[str, float] = {}
    extra: list[str] = []
    for fname, fmt in zip(header.file_name or [], header.fmt or []):
        if fname.lower().endswith(".mat") or fmt is None:
            continue
        if str(fmt) not in _FMT_BYTES:
            raise InputError(f"unsupported WFDB signal format {fmt}", path=shown)
        per_file[fname] = per_file.get(fname, 0.0) + _FMT_BYTES[str(fmt)]
    for fname, bytes_per_frame in per_file.items():
        size = (base.parent / fname).stat().st_size
        offsets = [o or 0 for f, o in zip(header.file_name, header.byte_offset or [0] * header.n_sig) if f == fname]
        needed = int(np.floor(bytes_per_frame * header.sig_len)) + (max(offsets) if offsets else 0)
        if size < needed:
            raise InputError(f"signal file {fname} is truncated ({size} of {needed} bytes)", path=shown)
        if size > needed + 1:
            extra.append(f"warning: {shown}: signal file {fname} holds {size - needed} bytes more than the header "
                         f"describes; only the {header.sig_len} samples per lead the header gives were read")
    return extra


def read_record(path: str | Path, *, sampling_rate_hz: float | None = None, leads: list[str] | None = None,
                units: str | None = None) -> Ecg:
    """Read any supported record. The format is decided from the content, not only the extension.

    `sampling_rate_hz`, `leads` and `units` are for files that cannot state them (CSV/TSV, .npy); formats
    that state their own (WFDB, XML, DICOM, SCP-ECG, EDF) ignore them.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory, not a record", path=p.name)
    try:
        from .formats import detect_and_read  # optional readers for clinical formats
    except ImportError:
        detect_and_read = None
    if detect_and_read is not None and p.is_file() and p.suffix.lower() != ".hea":
        ecg = detect_and_read(p, sampling_rate_hz=sampling_rate_hz, leads=leads, units=units)
        if ecg is not None:
            return ecg
    return read_wfdb(p)
