"""LUDB records with their amplitudes read as microvolts (the headers' gains scale every lead to 1 mV
peak-to-peak; SOURCES.md of the data folder): for the benches that use amplitudes (Q waves, P terminal phase)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.reading.leads import ecg_from_leads  # noqa: E402
from ragecg.values import STANDARD_LEADS, Ecg  # noqa: E402


def read_ludb_uv(data_dir: Path, rid: int) -> Ecg:
    """LUDB record `rid` (1-200) from `data_dir`/ludb/data, digital values / 1000 as mV, leads in standard order."""
    import wfdb

    rec = wfdb.rdrecord(str(data_dir / "ludb" / "data" / str(rid)), physical=False)
    x = rec.d_signal.astype(np.float64) / 1000.0
    names = {n.lower(): i for i, n in enumerate(rec.sig_name)}
    return ecg_from_leads({ld: x[:, names[ld.lower()]] for ld in STANDARD_LEADS}, float(rec.fs),
                          source_path=str(rid), source_format="wfdb")
