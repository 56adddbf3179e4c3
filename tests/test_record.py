"""Reading WFDB records: lead mapping, units, sampling rate, and clear errors on bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ragecg.errors import InputError
from ragecg.reading.leads import standard_lead_name
from ragecg.values import STANDARD_LEADS
from ragecg.reading.record import read_record


def _copy_record(src: Path, dst_dir: Path) -> Path:
    for ext in (".hea", ".dat"):
        shutil.copy(src.with_suffix(ext), dst_dir / (src.name + ext))
    return dst_dir / (src.name + ".hea")


@pytest.mark.parametrize("label,expected", [("i", "I"), ("AVR", "aVR"), ("avl", "aVL"), ("V1", "V1"), ("v6", "V6"),
                                            ("II", "II"), ("Lead III", "III"), ("foo", None)])
def test_standard_lead_names(label, expected):
    assert standard_lead_name(label) == expected


def test_ptbxl_100hz_matches_wfdb(data_dir):
    hea = data_dir / "ptbxl/records100/00000/00009_lr.hea"
    ecg = read_record(hea)
    ref = wfdb.rdrecord(str(hea.with_suffix("")))
    assert ecg.sampling_rate_hz == 100.0 and ecg.signals_mv.shape == (1000, 12)
    for i, name in enumerate(ref.sig_name):
        col = STANDARD_LEADS.index(standard_lead_name(name))
        np.testing.assert_allclose(ecg.signals_mv[:, col], ref.p_signal[:, i], atol=1e-5)


def test_ludb_lowercase_leads_and_demographics(data_dir):
    ecg = read_record(data_dir / "ludb/data/1")  # record name without extension
    assert ecg.sampling_rate_hz == 500.0 and ecg.duration_s == pytest.approx(10.0)
    assert ecg.sex == "F" and ecg.age_years == 51
    assert "51" not in repr(ecg) and "F" not in repr(ecg).replace("Ecg(", "").replace("format", "")


def test_any_lead_order_is_normalised(data_dir, tmp_path):
    src = wfdb.rdrecord(str(data_dir / "ludb/data/2"))
    order = list(reversed(range(12)))
    names = [src.sig_name[i].upper() for i in order]
    wfdb.wrsamp("shuffled", fs=500, units=["mV"] * 12, sig_name=names, p_signal=src.p_signal[:, order],
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    a, b = read_record(data_dir / "ludb/data/2.hea"), read_record(tmp_path / "shuffled.hea")
    np.testing.assert_allclose(a.signals_mv, b.signals_mv, atol=2e-3)


def test_microvolt_units_are_converted(data_dir, tmp_path):
    src = wfdb.rdrecord(str(data_dir / "ludb/data/3"))
    wfdb.wrsamp("uv", fs=500, units=["uV"] * 12, sig_name=src.sig_name, p_signal=src.p_signal * 1000,
                fmt=["16"] * 12, adc_gain=[1.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    ecg = read_record(tmp_path / "uv.hea")
    ref = read_record(data_dir / "ludb/data/3.hea")
    np.testing.assert_allclose(ecg.signals_mv, ref.signals_mv, atol=2e-3)


def test_eight_leads_derive_limb_leads(data_dir, tmp_path):
    src = wfdb.rdrecord(str(data_dir / "ludb/data/4"))
    keep = [i for i, n in enumerate(src.sig_name) if n.lower() in ("i", "ii", "v1", "v2", "v3", "v4", "v5", "v6")]
    wfdb.wrsamp("eight", fs=500, units=["mV"] * 8, sig_name=[src.sig_name[i] for i in keep],
                p_signal=src.p_signal[:, keep], fmt=["16"] * 8, adc_gain=[1000.0] * 8, baseline=[0] * 8,
                write_dir=str(tmp_path))
    ecg = read_record(tmp_path / "eight.hea")
    full = read_record(data_dir / "ludb/data/4.hea")
    assert sorted(ecg.derived_leads) == ["III", "aVF", "aVL", "aVR"]
    # LUDB's own III is recorded (with its own DC offset); Einthoven's law holds for the waveform
    derived, recorded = ecg.lead("III") - ecg.lead("III").mean(), full.lead("III") - full.lead("III").mean()
    assert np.corrcoef(derived, recorded)[0, 1] > 0.95
    assert np.median(np.abs(derived - recorded)) < 0.05


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "nope.hea", "does not exist"),
    (lambda d: d, "directory"),
])
def test_missing_and_directory(tmp_path, make, needle):
    with pytest.raises(InputError, match=needle):
        read_record(make(tmp_path))


def test_header_without_signal_file(data_dir, tmp_path):
    hea = _copy_record(data_dir / "ludb/data/5", tmp_path)
    (tmp_path / "5.dat").unlink()
    with pytest.raises(InputError, match="does not exist"):
        read_record(hea)


def test_truncated_dat(data_dir, tmp_path):
    hea = _copy_record(data_dir / "ludb/data/5", tmp_path)
    dat = tmp_path / "5.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    with pytest.raises(InputError, match="truncated"):
        read_record(hea)


def test_fewer_than_twelve_leads(data_dir, tmp_path):
    src = wfdb.rdrecord(str(data_dir / "ludb/data/6"))
    wfdb.wrsamp("three", fs=500, units=["mV"] * 3, sig_name=["v1", "v2", "v3"], p_signal=src.p_signal[:, 6:9],
                fmt=["16"] * 3, adc_gain=[1000.0] * 3, baseline=[0] * 3, write_dir=str(tmp_path))
    ecg = read_record(tmp_path / "three.hea")     # a reduced-lead ECG: read, the absent leads listed
    assert ecg.missing_leads == ["I", "II", "III", "aVR", "aVL", "aVF", "V4", "V5", "V6"]
    assert np.isnan(ecg.lead("I")).all() and np.isfinite(ecg.lead("V2")).all()


def test_garbage_header(tmp_path):
    p = tmp_path / "junk.hea"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError):
        read_record(p)


def test_duplicated_leads(data_dir, tmp_path):
    hea = _copy_record(data_dir / "ludb/data/7", tmp_path)
    lines = hea.read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " i"   # the second signal (ii) renamed to i
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="more than once"):
        read_record(hea)


def test_too_short(data_dir, tmp_path):
    src = wfdb.rdrecord(str(data_dir / "ludb/data/7"))
    wfdb.wrsamp("short", fs=500, units=["mV"] * 12, sig_name=src.sig_name, p_signal=src.p_signal[:500],
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    with pytest.raises(InputError, match="at least 2 s"):
        read_record(tmp_path / "short.hea")
