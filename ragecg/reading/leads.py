"""Lead names and the one constructor every reader ends in (`ecg_from_leads`): checks, unit conversion,
limb-lead derivation."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ragecg.errors import InputError
from ragecg.values import STANDARD_LEADS, Ecg

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
# A WFDB record up to 1 h long (INCART's 30-minute records in the Challenge data) is read for its first
# 10 minutes (wfdb reads a window without loading the rest); longer ones are refused.
MAX_WFDB_DURATION_S = 3600.0 + 1e-6
# Samples per lead (600 s at 1 kHz), checked from the header before any sample is read: a 20 kHz x
# 600 s WFDB record peaked at 4.8 GB; at this limit `diagnose --no-llm` peaked at 1.15 GB (docs/reliability.md).
MAX_SAMPLES_PER_LEAD = 600_000


def shown_unit(unit: str) -> str:
    """A unit field from a file as it may appear in a message: a known physical unit (mmHg, mV), else
    'free text' — the field is free text from the file and could hold a name."""
    u = str(unit).strip()
    return u if u.lower() in _KNOWN_UNITS else "free text"


_KNOWN_UNITS = {"mv", "uv", "µv", "μv", "v", "nv", "mmhg", "kpa", "mmh2o", "cmh2o", "%", "bpm", "degc", "nu", "ma",
                "ohm", "l/s", "l", "s", "ms", "g", "mg"}


def standard_lead_name(name: str) -> str | None:
    """Map a lead label (PTB-XL, LUDB, Challenge, MUSE spellings; any case) to the standard name."""
    key = re.sub(r"[\s_]+", " ", str(name).strip()).lower()
    return _ALIASES.get(key)


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
    if n > MAX_SAMPLES_PER_LEAD:
        raise InputError(f"record holds {n:,} samples per lead; at most {MAX_SAMPLES_PER_LEAD:,} are accepted "
                         "(e.g. 600 s at 1 kHz): resample or cut it first", path=name)

    scale = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}.get(units.strip().lower())
    if scale is None:
        raise InputError(f"unknown signal unit {shown_unit(units)!r} (expected mV, uV or V)", path=name)

    derived = derive_limb_leads(mapped)
    missing = [ld for ld in STANDARD_LEADS if ld not in mapped]
    if len(missing) == len(STANDARD_LEADS):
        raise InputError("no standard ECG lead found" + (f" ({len(unknown)} signal label(s) not recognised)"
                                                         if unknown else ""), path=name)
    # labels are free text from the file (names and identifiers have been seen there): counted, never shown
    # A lead not in the file is kept as a NaN column and listed: the quality gate marks it missing, the
    # measurements skip it and the criteria that read it are not evaluated (reduced-lead ECGs).
    nan = np.full(n, np.nan)
    signals = np.column_stack([mapped[ld] * scale if ld in mapped else nan for ld in STANDARD_LEADS]).astype(np.float32)
    return Ecg(signals_mv=signals, sampling_rate_hz=float(sampling_rate_hz), source_path=str(source_path),
               source_format=source_format, missing_leads=missing, derived_leads=derived, **meta)


def derive_limb_leads(mapped: dict[str, np.ndarray]) -> list[str]:
    """Add to `mapped` the limb leads that any two of I, II, III determine (Einthoven's law II = I + III;
    Goldberger's augmented leads aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2); returns their names.
    A lead the file holds is never replaced, even when it is flat (the quality gate judges it)."""
    with np.errstate(invalid="ignore"):   # inf - inf in a damaged sample: NaN, handled by quality
        if "I" in mapped and "II" in mapped:
            lead_i, lead_ii = mapped["I"], mapped["II"]
        elif "I" in mapped and "III" in mapped:
            lead_i, lead_ii = mapped["I"], mapped["I"] + mapped["III"]
        elif "II" in mapped and "III" in mapped:
            lead_i, lead_ii = mapped["II"] - mapped["III"], mapped["II"]
        else:
            return []
        formulas = {"I": lead_i, "II": lead_ii, "III": lead_ii - lead_i, "aVR": -(lead_i + lead_ii) / 2,
                    "aVL": lead_i - lead_ii / 2, "aVF": lead_ii - lead_i / 2}
    derived = []
    for lead_name, values in formulas.items():
        if lead_name not in mapped:
            mapped[lead_name] = values
            derived.append(lead_name)
    return derived
