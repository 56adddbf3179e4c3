"""Record-reading options that the command line and the HTTP API take alike (CSV/.npy rate, leads, units),
checked once here; light to import (the CLI imports it at start)."""
from __future__ import annotations

import math

from ragecg.errors import UsageError

UNITS = {"mv": "mV", "uv": "uV", "µv": "uV", "μv": "uV", "v": "V"}


def read_options(sampling_rate_hz: float | None, leads: str | None, units: str | None, *,
                 names: tuple[str, str, str] = ("--sampling-rate", "--leads", "--units")) -> dict:
    """read_record keyword arguments from the CSV/.npy options; a bad value is a UsageError naming the
    option as the caller spells it (`names`: the command line's flags, or the API's form fields)."""
    rate_name, leads_name, units_name = names
    opts: dict = {}
    if sampling_rate_hz is not None:
        if not (math.isfinite(sampling_rate_hz) and sampling_rate_hz > 0):
            raise UsageError(f"{rate_name} must be a positive number of Hz (got {sampling_rate_hz:g})")
        opts["sampling_rate_hz"] = float(sampling_rate_hz)
    if leads:
        lead_names = [n.strip() for n in leads.split(",") if n.strip()]
        if not lead_names:
            raise UsageError(f"{leads_name} must list lead names separated by commas")
        opts["leads"] = lead_names
    if units:
        if units.strip().lower() not in UNITS:
            raise UsageError(f"{units_name} must be mV, uV or V")
        opts["units"] = UNITS[units.strip().lower()]
    return opts
