"""Reading — a record path into an `Ecg`: WFDB here (with `wfdb`); the clinical formats in
`ragecg.reading.formats`, decided from the file's content; all return the same value.
"""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.values import Ecg

from .formats import detect_and_read
from .leads import (MAX_DURATION_S, MAX_SAMPLES_PER_LEAD, MAX_SAMPLING_RATE_HZ, MAX_WFDB_DURATION_S,
                    MIN_SAMPLING_RATE_HZ, ecg_from_leads, shown_unit, standard_lead_name)


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


def _check_regular(p: Path) -> None:
    """A FIFO, socket or device is not reported as missing (and never opened: a FIFO would block)."""
    if p.exists() and not p.is_file() and not p.is_dir():
        raise InputError("is not a regular file (a FIFO, socket or device); give a record file", path=p.name)


def resolve_wfdb_path(path: str | Path) -> Path:
    """The record path without extension; accepts `rec.hea`, `rec.dat`, `rec.mat` or `rec`."""
    p = Path(path)
    if p.suffix.lower() in (".hea", ".dat", ".mat"):
        p = p.with_suffix("")
    return p


def read_wfdb(path: str | Path) -> Ecg:
    """Read a WFDB record (PTB-XL, LUDB, PhysioNet Challenge 2020/2021 `.mat`), any lead order, any gain.

    Challenge 2020 headers whose record line names the signal file (`E00001.mat 12 500 5000 05-May-2020
    09:49:17`) are read through a corrected copy of the header (`challenge_header_fix`). A record longer
    than 10 minutes (INCART's 30-minute records) is read for its first 10 minutes, with a warning.
    """
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
    fixed = challenge_header_fix(hea.read_text(encoding="ascii", errors="replace"))
    if fixed is None:
        return _read_wfdb_checked(base, hea, shown)

    with tempfile.TemporaryDirectory(prefix="ragecg-hea-") as tmp:
        tmp_base = Path(tmp) / base.name
        tmp_base.with_name(base.name + ".hea").write_text(fixed, encoding="ascii")
        for fname in _signal_file_names(fixed):
            src = base.parent / fname
            if not src.is_file():
                raise InputError(f"signal file {fname} named by the header does not exist", path=shown)
            try:
                (Path(tmp) / fname).symlink_to(src.resolve())
            except OSError:           # no symlinks (Windows without privilege): a copy
                shutil.copyfile(src, Path(tmp) / fname)
        return _read_wfdb_checked(tmp_base, hea, shown)


_WFDB_TIME = re.compile(r"^\d{1,2}:\d{1,2}(:\d{1,2}(\.\d+)?)?$")
_WFDB_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")


def challenge_header_fix(text: str) -> str | None:
    """The header text with the PhysioNet Challenge 2020 variants made standard WFDB, or None when it is
    standard already. Variants (Perez Alday et al., Physiol Meas 2020;41:124003, the Challenge 2020 data
    as distributed): the record line names the signal file (`E00001.mat 12 500 5000`) and carries the
    date before the time in `dd-Mon-yyyy` (`05-May-2020 09:49:17`); WFDB wants the record name and
    `time date` as `hh:mm:ss dd/mm/yyyy`. The date and time are dropped (not used here)."""
    lines = text.splitlines()
    idx = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")), None)
    if idx is None:
        return None
    fields = lines[idx].split()
    changed = False
    name = fields[0]
    seg = ""
    if "/" in name:
        name, seg = name.split("/", 1)
        seg = "/" + seg
    if re.fullmatch(r"[-\w]+\.(mat|dat|hea|MAT|DAT|HEA)", name):
        fields[0] = name.rsplit(".", 1)[0] + seg
        changed = True
    extra = fields[4:]
    standard = (not extra or (len(extra) <= 2 and _WFDB_TIME.match(extra[0])
                              and (len(extra) == 1 or _WFDB_DATE.match(extra[1]))))
    if not standard:
        fields = fields[:4]
        changed = True
    if not changed:
        return None
    lines[idx] = " ".join(fields)
    return "\n".join(lines) + "\n"


def _signal_file_names(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    names = []
    for ln in lines[1:]:
        f = ln.split()[0]
        if f not in names and f != "~":
            if not re.fullmatch(r"[-\w.]+", f):
                raise InputError("the header names a signal file outside the record's folder", path=f)
            names.append(f)
    return names


def _read_wfdb_checked(base: Path, hea: Path, shown: str) -> Ecg:
    import wfdb

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
    sampto = None
    if header.sig_len / header.fs > MAX_DURATION_S:
        if header.sig_len / header.fs > MAX_WFDB_DURATION_S:
            raise InputError(f"record is {header.sig_len / header.fs:.0f} s long; at most 600 s (10 min) is accepted",
                             path=shown)
        sampto = int(600 * header.fs)
    if min(header.sig_len, sampto or header.sig_len) > MAX_SAMPLES_PER_LEAD:
        raise InputError(f"record holds {header.sig_len:,} samples per lead; at most {MAX_SAMPLES_PER_LEAD:,} are "
                         "accepted (e.g. 600 s at 1 kHz): resample or cut it first", path=shown)
    for fname in sorted(set(header.file_name or [])):
        f = base.parent / fname
        if not f.is_file():
            raise InputError(f"signal file {fname} named by the header does not exist", path=shown)
    size_warnings = _check_signal_file_sizes(header, base, shown)
    try:
        rec = wfdb.rdrecord(str(base), physical=False, sampto=sampto)
        signals = rec.dac()   # physical units; WFDB's invalid-sample value becomes NaN
    except Exception as exc:
        raise InputError(f"cannot read the signal data ({type(exc).__name__}); the file may be truncated or corrupt",
                         path=shown) from None
    if sampto is None:
        _check_checksums(rec, shown)
    else:
        size_warnings.append(f"warning: {shown}: record is {header.sig_len / header.fs:.0f} s long; only its first "
                             "600 s (10 min) were read")
    for msg in size_warnings:
        logging.getLogger("ragecg").warning(msg)
    if signals is None or signals.ndim != 2 or signals.shape[0] != (sampto or header.sig_len):
        raise InputError("signal data is shorter than the header says (truncated file?)", path=shown)
    units = {str(u).strip() for u in (rec.units or ["mV"])}
    if len(units) != 1:
        raise InputError(f"leads are in different units ({', '.join(sorted(shown_unit(u) for u in units))})",
                         path=shown)
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
    if (len(fields) < 2 or not re.fullmatch(r"[-\w]+(\.(mat|dat|hea|MAT|DAT|HEA))?(/\d+)?", fields[0])
            or not fields[1].isdigit()):
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
    _check_regular(p)
    base = resolve_wfdb_path(p)
    _check_regular(base.with_name(base.name + ".hea"))
    # numpy/pydicom/wfdb RuntimeWarnings (overflow in a scale, a cast) would print a line of their own
    # on stderr; values they concern are refused or flagged by the checks and the quality gate.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if p.is_file() and p.suffix.lower() != ".hea":
            ecg = detect_and_read(p, sampling_rate_hz=sampling_rate_hz, leads=leads, units=units)
            if ecg is not None:
                return ecg
        return read_wfdb(p)
