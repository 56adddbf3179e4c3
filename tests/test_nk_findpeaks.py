"""NeuroKit2's QRS detector loaded without the package (ragecg/signal/nk_findpeaks.py): the same peaks as
`neurokit2.ecg_findpeaks` on real records, and none of NeuroKit2's heavy imports."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragecg.reading import read_record
from ragecg.signal import nk_findpeaks
from ragecg.signal.beats import INTERNAL_FS, detection_signal, filtered, resample_to_internal
from ragecg.values import STANDARD_LEADS

REPO = Path(__file__).resolve().parents[1]


def _detection_signals(data_dir: Path):
    """The multi-lead and single-lead detection signals beats.detect_beats hands the detector, for
    LUDB records (500 Hz) and PTB-XL records (100 Hz, resampled)."""
    paths = [data_dir / "ludb" / "data" / f"{i}.hea" for i in (1, 7, 33, 60, 104, 121, 150, 200)]
    paths += sorted((data_dir / "ptbxl" / "records100").glob("*/*_lr.hea"))[:6]
    for p in paths:
        ecg = read_record(p)
        present = [i for i, ld in enumerate(STANDARD_LEADS) if ld not in ecg.missing_leads]
        x = filtered(resample_to_internal(np.nan_to_num(ecg.signals_mv[:, present].astype(np.float64)),
                                          ecg.sampling_rate_hz), INTERNAL_FS, ecg.sampling_rate_hz)
        yield p.name, detection_signal(x, INTERNAL_FS)
        yield p.name + "[0]", detection_signal(x[:, [0]], INTERNAL_FS)


def test_same_peaks_as_the_neurokit2_package_on_real_records(data_dir):
    import neurokit2

    n = 0
    for name, det in _detection_signals(data_dir):
        ours = nk_findpeaks.ecg_findpeaks(det, sampling_rate=int(INTERNAL_FS), method="neurokit")["ECG_R_Peaks"]
        theirs = neurokit2.ecg_findpeaks(det, sampling_rate=int(INTERNAL_FS), method="neurokit")["ECG_R_Peaks"]
        assert len(theirs) > 0, name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
        n += 1
    assert n >= 20
    assert nk_findpeaks.loaded_alone is True          # the fast path, not the fallback, was compared


def test_detector_loads_without_neurokit2_sklearn_or_matplotlib(data_dir):
    code = ("import sys, numpy as np\n"
            "from ragecg.reading import read_record\n"
            "from ragecg.signal import checked_signal, measure_ecg, nk_findpeaks\n"
            f"ecg, q = checked_signal(read_record({str(data_dir / 'ludb' / 'data' / '121.hea')!r}))\n"
            "m = measure_ecg(ecg, q.usable_leads())\n"
            "assert nk_findpeaks.loaded_alone is True and m.heart_rate_bpm > 0\n"
            "print(sorted(n for n in ('neurokit2', 'sklearn', 'matplotlib', 'pywt') if n in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_neurokit2_imported_later_is_the_real_package(data_dir):
    nk_findpeaks.ecg_findpeaks(np.abs(np.sin(np.linspace(0, 60, 5000))), sampling_rate=500)
    import neurokit2
    assert hasattr(neurokit2, "ecg_process") and Path(neurokit2.__file__).name == "__init__.py"
    assert nk_findpeaks._findpeaks is not neurokit2.ecg_findpeaks     # ours stays a private copy


def test_fallback_is_the_package_function(monkeypatch):
    monkeypatch.setattr(nk_findpeaks, "_findpeaks", None)
    monkeypatch.setattr(nk_findpeaks, "loaded_alone", None)
    monkeypatch.setattr(nk_findpeaks, "ENTRY_FILE", "ecg/no_such_file.py")
    det = np.zeros(5000)
    det[250::400] = 1.0
    out = nk_findpeaks.ecg_findpeaks(det, sampling_rate=500)
    assert nk_findpeaks.loaded_alone is False and len(out["ECG_R_Peaks"]) > 5


@pytest.mark.parametrize("name", ["signal_findpeaks", "signal_zerocrossings"])
def test_other_neurokit2_names_resolve_to_the_package_when_called(name):
    nk_findpeaks.ecg_findpeaks(np.abs(np.sin(np.linspace(0, 60, 5000))), sampling_rate=500)
    fn = nk_findpeaks._findpeaks.__globals__[name]
    import neurokit2
    x = np.sin(np.linspace(0, 20, 500))
    np.testing.assert_array_equal(fn(x) if name == "signal_zerocrossings" else fn(x)["Peaks"],
                                  getattr(neurokit2, name)(x) if name == "signal_zerocrossings"
                                  else getattr(neurokit2, name)(x)["Peaks"])
