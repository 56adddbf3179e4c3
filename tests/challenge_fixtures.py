"""Writers of PhysioNet Challenge 2020/2021 records as distributed (MATLAB v4 `.mat` with a `val` matrix,
`16+24` signal lines), for the tests of the Challenge header variants."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import savemat

CHALLENGE_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def write_challenge_record(folder: Path, name: str, signals_mv: np.ndarray, fs: float, *, gain: float = 1000.0,
                           leads=CHALLENGE_LEADS, record_line_names_file: bool = False,
                           date_time: str = "05-May-2020 09:49:17", comments=("Age: 74", "Sex: Male",
                                                                             "Dx: 426783006", "Rx: Unknown")) -> Path:
    """A Challenge record: `name.mat` (MATLAB v4, int16 `val`, leads x samples) and `name.hea`."""
    folder.mkdir(parents=True, exist_ok=True)
    digital = np.round(np.asarray(signals_mv, dtype=np.float64) * gain).astype(np.int16)   # samples x leads
    savemat(str(folder / f"{name}.mat"), {"val": digital.T}, format="4")
    head = f"{name}.mat" if record_line_names_file else name
    lines = [f"{head} {len(leads)} {fs:g} {digital.shape[0]} {date_time}".rstrip()]
    for j, ld in enumerate(leads):
        col = digital[:, j].astype(np.int64)
        checksum = int(col.sum()) % 65536
        checksum = checksum - 65536 if checksum >= 32768 else checksum
        lines.append(f"{name}.mat 16+24 {gain:g}/mV 16 0 {int(col[0])} {checksum} 0 {ld}")
    lines += [f"#{c}" for c in comments]
    hea = folder / f"{name}.hea"
    hea.write_text("\n".join(lines) + "\n")
    return hea
