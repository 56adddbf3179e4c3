"""Plain arrays: CSV/TSV text and NumPy `.npy`. They cannot say the sampling rate, units or (for .npy)
the lead names, so the caller gives them: `sampling_rate_hz` (required unless a CSV has a time column),
`leads` (CSV: the header row; .npy: required unless the array has exactly 12 channels, which are then
taken in the standard order I, II, III, aVR, aVL, aVF, V1-V6) and `units` (default mV).

`.npy` is loaded with `allow_pickle=False`: object arrays (which need pickle) are refused.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.reading.leads import MAX_DURATION_S, MAX_SAMPLES_PER_LEAD, standard_lead_name
from ragecg.values import STANDARD_LEADS, Ecg
from ._common import build_ecg, check_samples_per_lead, check_size

_TIME_COLUMNS = {"time": 1.0, "t": 1.0, "time_s": 1.0, "seconds": 1.0, "sec": 1.0, "s": 1.0, "time_ms": 1e-3,
                 "ms": 1e-3}
_INDEX_COLUMNS = {"sample", "samples", "index", "idx", "n", ""}


def _need_rate(name: str, what: str) -> InputError:
    return InputError(f"{what} does not record the sampling rate; give it (--sampling-rate HZ, or "
                      "sampling_rate_hz=)", path=name)


def sniff_delimiter(text: str) -> str | None:
    """',' ';' or tab when the first two lines split into the same number (>= 2) of fields."""
    lines = [ln for ln in text.splitlines()[:3] if ln.strip()]
    if len(lines) < 2:
        return None
    for delim in ("\t", ",", ";"):
        counts = {ln.count(delim) for ln in lines[:2]}
        if len(counts) == 1 and counts.pop() >= 1:
            return delim
    return None


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_csv(path: str | Path, sampling_rate_hz: float | None = None, leads: list[str] | None = None,
             units: str = "mV") -> Ecg:
    """Read a CSV/TSV file: one column per lead, one row per sample, a header row of lead names."""
    import pandas as pd

    path = Path(path)
    name = path.name
    check_size(path)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        head = fh.read(65536)
    delim = sniff_delimiter(head)
    if delim is None:
        raise InputError("not a CSV/TSV table (no consistent ',', ';' or tab separated columns)", path=name)
    first = next(csv.reader([head.splitlines()[0]], delimiter=delim))
    has_header = not all(_is_number(f) for f in first if f.strip())
    _check_table_size(path, name, n_columns=len(first))
    if not has_header and not leads:
        raise InputError("CSV has no header row of lead names; give the lead names (--leads I,II,... or leads=)",
                         path=name)
    try:
        table = pd.read_csv(path, sep=delim, header=0 if has_header else None, encoding="utf-8-sig",
                            dtype=np.float64, skipinitialspace=True)
    except ValueError:
        raise InputError("CSV holds non-numeric values below the header row", path=name) from None
    except Exception as exc:
        raise InputError(f"CSV cannot be parsed ({type(exc).__name__})", path=name) from None
    columns = [str(c).strip() for c in table.columns] if has_header else []
    if leads:
        data_cols = [c for c in columns if re.sub(r"[\s\[\]()]", "", c).lower() not in _TIME_COLUMNS
                     and c.lower() not in _INDEX_COLUMNS and not c.lower().startswith("unnamed")] if has_header \
            else list(range(table.shape[1]))
        if len(data_cols) != len(leads):
            raise InputError(f"{len(leads)} lead names given but the table has {len(data_cols)} signal columns",
                             path=name)
        names = list(leads)
    else:
        data_cols = [c for c in columns if standard_lead_name(c)]
        names = data_cols
    fs = sampling_rate_hz
    if fs is None:
        time_col = next((c for c in columns if c.lower() in _TIME_COLUMNS), None)
        if time_col is None:
            raise _need_rate(name, "CSV")
        t = table[time_col].to_numpy() * _TIME_COLUMNS[time_col.lower()]
        step = np.diff(t)
        if step.size == 0 or not np.all(np.isfinite(step)) or step.min() <= 0 or \
                (step.max() - step.min()) > 0.01 * np.median(step):
            raise InputError(f"time column {time_col!r} is not evenly spaced; give sampling_rate_hz", path=name)
        fs = float(f"{step.size / (t[-1] - t[0]):.6g}")   # mean step over the record; 6 significant digits
    values = table[data_cols].to_numpy(dtype=np.float64) if has_header else table.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise InputError("CSV has empty or non-numeric cells in the signal columns", path=name)
    signals = {n: values[:, i] for i, n in enumerate(names)}
    return build_ecg(signals, fs, path, "csv", units=units)


MAX_CSV_COLUMNS = 64          # 12 leads, a time column, extra channels; more is not an ECG table


def _check_table_size(path: Path, name: str, *, n_columns: int) -> None:
    """Rows counted by streaming the file (1 MiB blocks) and columns from the first line, before pandas
    parses it: an 8.6-million-row CSV took 2.5 GB before being refused for its length."""
    if n_columns > MAX_CSV_COLUMNS:
        raise InputError(f"table has {n_columns} columns; at most {MAX_CSV_COLUMNS} are accepted", path=name)
    rows = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            rows += block.count(b"\n")
            if rows > MAX_SAMPLES_PER_LEAD + 1:
                raise InputError(f"table has more than {MAX_SAMPLES_PER_LEAD:,} rows (samples per lead); at most "
                                 f"{MAX_SAMPLES_PER_LEAD:,} are accepted (e.g. 600 s at 1 kHz): resample or cut it "
                                 "first", path=name)


def write_csv(ecg: Ecg, path: str | Path) -> Path:
    """Write an `Ecg` as CSV: a `time_s` column (so the sampling rate survives), then the 12 leads in mV
    with 0.01 uV resolution, under a header row of names."""
    path = Path(path)
    t = np.arange(ecg.n_samples, dtype=np.float64) / ecg.sampling_rate_hz
    table = np.column_stack([t, ecg.signals_mv.astype(np.float64)])
    np.savetxt(path, table, delimiter=",", fmt=["%.9f"] + ["%.5f"] * len(STANDARD_LEADS),
               header=",".join(("time_s",) + STANDARD_LEADS), comments="")
    return path


def _check_npy_header(path: Path, name: str) -> None:
    """From the .npy header alone (numpy's own header reader): object arrays (pickle) refused, the
    data size checked against the file size (a truncated file is not "needs pickle"), the sample
    count bounded before the array is mapped."""
    from numpy.lib import format as npformat

    try:
        with open(path, "rb") as fh:
            version = npformat.read_magic(fh)
            read_header = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"version {version}")
            shape, _, dtype = read_header(fh, max_header_size=10000)
            data_start = fh.tell()
    except Exception:  # noqa: BLE001 - any damage to the magic or header dict
        raise InputError(".npy header is damaged or truncated", path=name) from None
    if dtype.hasobject:
        raise InputError(".npy holds Python objects (needs pickle), refused for safety", path=name)
    n_items = int(np.prod(shape, dtype=np.int64)) if shape else 1
    needed = data_start + n_items * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise InputError(f".npy is truncated ({size} of {needed} bytes)", path=name)
    if len(shape) == 2:
        check_samples_per_lead(max(shape) if min(shape) <= 64 else shape[0], name)


def read_npy(path: str | Path, sampling_rate_hz: float | None = None, leads: list[str] | None = None,
             units: str = "mV") -> Ecg:
    """Read a 2-D NumPy array (samples x leads or leads x samples) saved with `np.save`."""
    path = Path(path)
    name = path.name
    check_size(path)
    if sampling_rate_hz is None:
        raise _need_rate(name, "a .npy array")
    _check_npy_header(path, name)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise InputError(f".npy cannot be read ({type(exc).__name__}); truncated?", path=name) from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind not in "iuf":
        raise InputError("a .npy ECG must be a 2-D numeric array (samples x leads)", path=name)
    names = list(leads) if leads else list(STANDARD_LEADS)
    if not leads and 12 not in arr.shape:
        raise InputError(f"array has shape {arr.shape}; give the lead names (--leads or leads=) for "
                         "anything but 12 channels", path=name)
    if arr.shape[1] == len(names):
        data = arr
    elif arr.shape[0] == len(names):
        data = arr.T
    else:
        raise InputError(f"array has shape {arr.shape} but {len(names)} lead names", path=name)
    if data.shape[0] / sampling_rate_hz > MAX_DURATION_S:
        raise InputError(f"record is {data.shape[0] / sampling_rate_hz:.0f} s long; at most 600 s is accepted",
                         path=name)
    data = np.asarray(data, dtype=np.float64)
    return build_ecg({n: data[:, i] for i, n in enumerate(names)}, sampling_rate_hz, path, "npy", units=units)
