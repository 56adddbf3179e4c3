"""Clinical ECG formats: every real sample file in data/formats is read into the same `Ecg` (leads, rate,
duration, Einthoven, device statements), formats are detected from content, bad files give InputError
without identifiers, and LUDB / PTB-XL records survive EDF, CSV and DICOM round trips."""
from __future__ import annotations

import dataclasses
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from ragecg.errors import InputError
from ragecg.reading.formats import detect_and_read, detect_format
from ragecg.reading.formats.arrays import read_csv, read_npy, write_csv
from ragecg.reading.formats.dicom import write_dicom
from ragecg.reading.formats.edf import write_edf
from ragecg.values import STANDARD_LEADS
from ragecg.reading.record import read_record

# file -> (format, sampling rate Hz, duration s, largest |II - I - III| in mV allowed) — from formats/SOURCES.md.
# The Einthoven tolerance is the file's own quantisation (1-2 LSB), or 0 where the readers derive III.
SAMPLES = {
    "ge_muse_xml/braveheart_example1.xml": ("ge_muse_xml", 500, 10.0, 1e-6),
    "ge_muse_xml/braveheart_example4.xml": ("ge_muse_xml", 500, 10.0, 1e-6),
    "ge_muse_xml/musephi_muse_ecg1.xml": ("ge_muse_xml", 500, 10.0, 1e-6),
    "ge_muse_xml/musephi_muse_ecg2.xml": ("ge_muse_xml", 500, 10.0, 1e-6),
    "ge_cardiosoft_xml/ecgvisualizer_example1.xml": ("ge_cardiosoft_xml", 500, 10.0, 0.0051),
    "ge_cardiosoft_xml/ecgvisualizer_example2.xml": ("ge_cardiosoft_xml", 500, 10.0, 0.0051),
    "hl7_aecg/Example_aECG.xml": ("hl7_aecg", 500, 10.0, 0.0026),
    "dicom_ecg/waveform_ecg.dcm": ("dicom", 1000, 10.0, 0.0013),
    "dicom_ecg/ecgtoolkit_Example.dcm": ("dicom", 500, 10.0, 0.0026),
    "dicom_ecg/ecgprocess_example-DICOM1.dcm": ("dicom", 500, 10.0, 0.0049),
    "dicom_ecg/ecgprocess_example-DICOM2.dcm": ("dicom", 500, 10.0, 0.0051),
    "dicom_ecg/hemodynamic_test_ecg.dcm": ("dicom", 240, 10.0, 0.0013),
    "philips_xml/129DYPRG.XML": ("philips_xml", 500, None, 0.0101),
    "philips_xml/3191723_ZZDEMOPTONLY_1-04_orig.xml": ("philips_xml", 500, None, 0.0101),
    "philips_xml/ad4d3d80-d165_1-04_orig.xml": ("philips_xml", 500, None, 0.0101),
    "philips_xml/2020-5-18_15-48-11.xml": ("philips_xml", 500, None, 0.0101),
    "scp_ecg/ecgtoolkit_Example.scp": ("scp_ecg", 500, 10.0, 0.0026),
    "edf/contec_0000050.ECG.edf": ("edf", 800, 47.31875, 0.0306),
}

# Names, IDs, places that the sample files carry (SOURCES.md): none may leave the reader.
IDENTIFIERS = ["JAX01234", "TEST 05", "TEST 04", "FL Research", "Doe, John", "123456", "Clark", "SBJ-123",
               "River City", "642341", "Galliera", "66954", "VUMC", "Patient^Test", "Test Hospital",
               "ZZDEMOPTONLY", "Masoudi", "1112010721168bdc", "xxxxxx", "Surname", "Komporel", "1971",
               "19530508", "GE EMS", "PUK-123", "John Smith"]


@lru_cache(maxsize=None)
def _read(path: str):
    return detect_and_read(Path(path))


@pytest.fixture(scope="module")
def fdir(data_dir) -> Path:
    d = data_dir / "formats"
    if not d.is_dir():
        pytest.skip("formats samples not present")
    return d


def _strings(ecg) -> str:
    """Every text the Ecg exposes except its source path (the user's own file name)."""
    parts = [repr(ecg).replace(Path(ecg.source_path).name, "")]
    for f in dataclasses.fields(ecg):
        if f.name == "source_path":
            continue
        v = getattr(ecg, f.name)
        if isinstance(v, (str, list, dict)):
            parts.append(repr(v))
    return "\n".join(parts)


def _einthoven_mv(ecg) -> float:
    return float(np.max(np.abs(ecg.lead("II") - ecg.lead("I") - ecg.lead("III"))))


@pytest.mark.parametrize("rel", sorted(SAMPLES))
def test_sample_file_reads(fdir, rel):
    fmt, fs, duration, einthoven_tol = SAMPLES[rel]
    path = fdir / rel
    assert detect_format(path) == fmt
    ecg = _read(str(path))
    assert ecg.source_format == fmt
    assert ecg.sampling_rate_hz == fs
    assert ecg.signals_mv.dtype == np.float32 and ecg.signals_mv.shape[1] == 12
    assert np.all(np.isfinite(ecg.signals_mv)) and not ecg.missing_leads
    if duration is not None:
        assert ecg.duration_s == pytest.approx(duration, abs=1e-6)
    assert _einthoven_mv(ecg) <= einthoven_tol
    # amplitudes in mV: a typical lead spans 0.3-10 mV peak to peak (not volts, not microvolts)
    ptp = np.ptp(ecg.signals_mv, axis=0)
    assert 0.3 < float(np.median(ptp[ptp > 0])) < 10.0
    text = _strings(ecg)
    for ident in IDENTIFIERS:
        assert ident not in text, f"identifier leaked from {rel}"
    assert ecg.header_comments == []


def test_muse_stores_eight_leads_and_derives_four(fdir):
    ecg = _read(str(fdir / "ge_muse_xml/braveheart_example1.xml"))
    assert sorted(ecg.derived_leads) == ["III", "aVF", "aVL", "aVR"]
    np.testing.assert_allclose(ecg.lead("aVR"), -(ecg.lead("I") + ecg.lead("II")) / 2, atol=1e-6)
    # 4.88 uV per bit: every stored sample is a multiple of 4.88 uV
    steps = ecg.lead("V2").astype(np.float64) * 1000 / 4.88
    assert np.max(np.abs(steps - np.round(steps))) < 1e-3


@pytest.mark.parametrize("rel,expected", [
    ("ge_muse_xml/braveheart_example1.xml", dict(heart_rate_bpm=48, pr_interval_ms=138, qrs_duration_ms=96,
                                                  qt_interval_ms=452, qtc_bazett_ms=403, p_axis_deg=51,
                                                  qrs_axis_deg=20, t_axis_deg=40)),
    ("ge_muse_xml/braveheart_example4.xml", dict(heart_rate_bpm=61, pr_interval_ms=209, qrs_duration_ms=128,
                                                  qt_interval_ms=459, qtc_bazett_ms=463, qrs_axis_deg=-66)),
    ("ge_cardiosoft_xml/ecgvisualizer_example1.xml", dict(heart_rate_bpm=42, pr_interval_ms=250, qrs_duration_ms=106,
                                                          qtc_bazett_ms=385, qrs_axis_deg=83)),
    ("hl7_aecg/Example_aECG.xml", dict(pr_interval_ms=148, qrs_duration_ms=120, qt_interval_ms=420, qtc_ms=443,
                                       p_axis_deg=44, qrs_axis_deg=-61, t_axis_deg=86)),
    ("dicom_ecg/waveform_ecg.dcm", dict(pr_interval_ms=161, qrs_duration_ms=75, qt_interval_ms=368, qtc_ms=370,
                                        qrs_axis_deg=52)),
    ("dicom_ecg/ecgprocess_example-DICOM2.dcm", dict(heart_rate_bpm=81, qrs_duration_ms=92, qt_interval_ms=378,
                                                     qrs_axis_deg=26, t_axis_deg=-168)),
    ("dicom_ecg/hemodynamic_test_ecg.dcm", dict(heart_rate_bpm=69)),
    ("philips_xml/129DYPRG.XML", dict(p_axis_deg=66, qrs_axis_deg=-21, t_axis_deg=59)),
    ("philips_xml/3191723_ZZDEMOPTONLY_1-04_orig.xml", dict(heart_rate_bpm=84, pr_interval_ms=144, qrs_duration_ms=84,
                                                            qt_interval_ms=352, qtc_bazett_ms=417)),
    ("philips_xml/2020-5-18_15-48-11.xml", dict(heart_rate_bpm=64, qtc_fridericia_ms=408, qrs_axis_deg=22)),
    ("scp_ecg/ecgtoolkit_Example.scp", dict(p_axis_deg=44, qrs_axis_deg=-61, t_axis_deg=86)),
])
def test_device_measurements(fdir, rel, expected):
    got = _read(str(fdir / rel)).device_measurements
    for key, value in expected.items():
        assert got.get(key) == value, key


def test_pr_zero_in_atrial_fibrillation_is_not_a_measurement(fdir):
    assert "pr_interval_ms" not in _read(str(fdir / "dicom_ecg/ecgprocess_example-DICOM2.dcm")).device_measurements


@pytest.mark.parametrize("rel,must,must_not", [
    ("ge_muse_xml/musephi_muse_ecg1.xml", ["Ventricular-paced rhythm", "No significant change."], ["Confirmed by"]),
    ("ge_muse_xml/musephi_muse_ecg2.xml", ["Statement Text(22)", "Statement Text(1300)"], []),
    ("philips_xml/129DYPRG.XML", ["Inferior infarct, acute (LCx) (ST>0.10mV, II III aVF, STd V1-V3)",
                                  ">>> Acute MI <<<", "- ABNORMAL ECG -"], []),
    ("philips_xml/ad4d3d80-d165_1-04_orig.xml", ["SINUS BRADYCARDIA (V-rate<60)"], ["Confirmed by"]),
    ("dicom_ecg/ecgprocess_example-DICOM2.dcm", ["ATRIAL FIBRILLATION", "ANTEROLATERAL ST-T CHANGES"], []),
    ("dicom_ecg/waveform_ecg.dcm", ["RITMO SINUSALE", "ECG NORMALE"], []),
    ("hl7_aecg/Example_aECG.xml", ["Sinus Rhythm"], []),
])
def test_device_statements(fdir, rel, must, must_not):
    statements = _read(str(fdir / rel)).device_statements
    for s in must:
        assert s in statements
    for s in must_not:
        assert not any(s in line for line in statements)


def test_muse_fragments_join_into_lines(fdir, tmp_path):
    # OriginalDiagnosis splits "Lateral infarct" / ", age undetermined" over two statements (one ENDSLINE)
    src = (fdir / "ge_muse_xml/musephi_muse_ecg1.xml").read_bytes()
    start, end = src.index(b"<Diagnosis>"), src.index(b"</Diagnosis>") + len(b"</Diagnosis>")
    p = tmp_path / "original_only.xml"
    p.write_bytes(src[:start] + src[end:])
    statements = detect_and_read(p).device_statements
    assert "Lateral infarct, age undetermined" in statements and "Wide QRS rhythm" in statements


def test_cross_format_same_ecg(fdir):
    """The HL7 example ECG as aECG, SCP-ECG and DICOM: identical samples (all 2.5 uV steps)."""
    aecg = _read(str(fdir / "hl7_aecg/Example_aECG.xml"))
    scp = _read(str(fdir / "scp_ecg/ecgtoolkit_Example.scp"))
    dcm = _read(str(fdir / "dicom_ecg/ecgtoolkit_Example.dcm"))
    assert aecg.signals_mv.shape == scp.signals_mv.shape == dcm.signals_mv.shape == (5000, 12)
    np.testing.assert_array_equal(scp.signals_mv, aecg.signals_mv)
    np.testing.assert_array_equal(dcm.signals_mv, aecg.signals_mv)
    assert np.ptp(aecg.signals_mv) > 1.0
    for key in ("qrs_axis_deg", "p_axis_deg", "t_axis_deg"):
        assert aecg.device_measurements[key] == scp.device_measurements[key] == dcm.device_measurements[key]


def test_philips_calibration_pulse_excluded(fdir):
    for rel in [r for r in SAMPLES if r.startswith("philips")]:
        ecg = _read(str(fdir / rel))
        # the file holds 5500 samples; the 1 mV pulse (samples 5350-5449) and the zero gap before it are cut
        assert 10.0 <= ecg.duration_s < 10.7
        flat_1mv = np.all(np.isclose(ecg.signals_mv, 1.0, atol=1e-6), axis=1)
        assert not flat_1mv.any()


def test_hemodynamic_dicom_read_in_millivolts(fdir):
    ecg = _read(str(fdir / "dicom_ecg/hemodynamic_test_ecg.dcm"))
    assert ecg.n_samples == 2400 and not ecg.derived_leads
    # stored in mV (not uV like the 12-lead SOP class files): typical leads span 0.5-5 mV
    assert 0.5 < float(np.median(np.ptp(ecg.signals_mv, axis=0))) < 5.0


def test_contec_edf_flat_chest_leads(fdir):
    ecg = _read(str(fdir / "edf/contec_0000050.ECG.edf"))
    for lead in ("V1", "V2", "V3", "V4", "V5", "V6"):
        assert float(np.ptp(ecg.lead(lead))) == 0.0
    assert float(np.ptp(ecg.lead("II"))) > 0.5


def test_fetal_edf_refused_naming_missing_leads(fdir):
    with pytest.raises(InputError) as exc:
        read_record(fdir / "edf/r01.edf")
    msg = str(exc.value)
    assert msg.startswith("r01.edf:") and "missing leads" in msg and "V1" in msg and "II" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("suffix", [".dat", ".txt", ""])
def test_muse_detected_from_content_not_extension(fdir, tmp_path, suffix):
    p = tmp_path / f"renamed{suffix}"
    shutil.copy(fdir / "ge_muse_xml/braveheart_example1.xml", p)
    ecg = read_record(p)
    assert ecg.source_format == "ge_muse_xml"
    np.testing.assert_array_equal(ecg.signals_mv, _read(str(fdir / "ge_muse_xml/braveheart_example1.xml")).signals_mv)


@pytest.mark.parametrize("rel,new_name", [("dicom_ecg/waveform_ecg.dcm", "ecg.xml"),
                                          ("edf/contec_0000050.ECG.edf", "ecg.csv"),
                                          ("scp_ecg/ecgtoolkit_Example.scp", "ecg.bin"),
                                          ("philips_xml/129DYPRG.XML", "ecg.dcm")])
def test_other_formats_detected_from_content(fdir, tmp_path, rel, new_name):
    p = tmp_path / new_name
    shutil.copy(fdir / rel, p)
    assert detect_format(p) == SAMPLES[rel][0]


def test_wfdb_signal_file_still_goes_to_wfdb(data_dir):
    ecg = read_record(data_dir / "ludb/data/1.dat")
    assert ecg.source_format == "wfdb"


@pytest.mark.parametrize("rel", ["ge_muse_xml/musephi_muse_ecg1.xml", "hl7_aecg/Example_aECG.xml",
                                 "philips_xml/3191723_ZZDEMOPTONLY_1-04_orig.xml",
                                 "ge_cardiosoft_xml/ecgvisualizer_example1.xml", "dicom_ecg/waveform_ecg.dcm",
                                 "dicom_ecg/ecgprocess_example-DICOM2.dcm", "scp_ecg/ecgtoolkit_Example.scp",
                                 "edf/contec_0000050.ECG.edf"])
@pytest.mark.parametrize("fraction", [0.3, 0.97])
def test_truncated_files_give_input_error(fdir, tmp_path, rel, fraction):
    data = (fdir / rel).read_bytes()
    p = tmp_path / "cut_file"
    p.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(InputError) as exc:
        read_record(p)
    msg = str(exc.value)
    assert msg.startswith("cut_file:") and "\n" not in msg
    for ident in IDENTIFIERS:
        assert ident not in msg


@pytest.mark.parametrize("content,needle", [
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><RestingECG>&b;</RestingECG>',
     "refused for safety"),
    (b"<RestingECG><Waveform><WaveformType>Rhythm", "not well-formed"),
    (b"<?xml version='1.0'?><SomethingElse><a/></SomethingElse>", "unsupported kind"),
    (b"<RestingECG><Waveform><WaveformType>Median</WaveformType></Waveform></RestingECG>", "no Rhythm"),
    (b"", "empty"),
    (bytes(range(256)) * 8, "unrecognised file format"),
])
def test_bad_inputs(tmp_path, content, needle):
    p = tmp_path / "bad.xml"
    p.write_bytes(content)
    with pytest.raises(InputError, match=needle):
        read_record(p)


# --- round trips: WFDB -> EDF / CSV / DICOM -> read back -------------------------------------------------

ROUND_TRIP_RECORDS = ["ludb/data/1.hea", "ptbxl/records500/00000/00009_hr.hea"]


@pytest.mark.parametrize("rec", ROUND_TRIP_RECORDS)
@pytest.mark.parametrize("fmt", ["edf", "csv", "dicom"])
def test_round_trip(data_dir, tmp_path, rec, fmt):
    original = read_record(data_dir / rec)
    x = original.signals_mv.astype(np.float64)
    if fmt == "edf":
        path = write_edf(original, tmp_path / "rt.edf")
        # 16-bit over each lead's range (widened by 1 uV each side): step = range / 65535, error <= step / 2
        tol = (np.ptp(x, axis=0) + 0.004) / 65535 / 2 + 1e-6
    elif fmt == "csv":
        path = write_csv(original, tmp_path / "rt.csv")
        tol = np.full(12, 0.5e-5 + 1e-6)      # 5 decimals of mV
    else:
        path = write_dicom(original, tmp_path / "rt.dcm")
        tol = np.full(12, 0.5e-3 + 1e-6)      # whole-microvolt sensitivity
    back = read_record(path)
    assert back.source_format == fmt
    assert back.sampling_rate_hz == original.sampling_rate_hz
    assert back.signals_mv.shape == original.signals_mv.shape
    err = np.max(np.abs(back.signals_mv.astype(np.float64) - x), axis=0)
    assert np.all(err <= tol), dict(zip(STANDARD_LEADS, err))


def test_dicom_written_without_identifiers(data_dir, tmp_path):
    import pydicom

    path = write_dicom(read_record(data_dir / "ludb/data/1.hea"), tmp_path / "w.dcm")
    ds = pydicom.dcmread(str(path))
    assert "PatientName" not in ds and "PatientID" not in ds and "InstitutionName" not in ds
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.9.1.1"


# --- CSV / TSV / .npy: the caller supplies what the file cannot say ---------------------------------------

def _ludb(data_dir):
    return read_record(data_dir / "ludb/data/1.hea")


def test_csv_needs_sampling_rate_without_time_column(data_dir, tmp_path):
    ecg = _ludb(data_dir)
    p = tmp_path / "leads.csv"
    np.savetxt(p, ecg.signals_mv, delimiter=",", fmt="%.5f", header=",".join(STANDARD_LEADS), comments="")
    with pytest.raises(InputError, match="sampling rate"):
        read_record(p)
    back = read_csv(p, sampling_rate_hz=500)
    np.testing.assert_allclose(back.signals_mv, ecg.signals_mv, atol=1e-5)


def test_tsv_in_microvolts_with_eight_leads(data_dir, tmp_path):
    ecg = _ludb(data_dir)
    cols = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    p = tmp_path / "leads.tsv"
    data = np.column_stack([ecg.lead(c) * 1000 for c in cols])
    np.savetxt(p, data, delimiter="\t", fmt="%.2f", header="\t".join(cols), comments="")
    back = detect_and_read(p, sampling_rate_hz=500, units="uV")
    assert sorted(back.derived_leads) == ["III", "aVF", "aVL", "aVR"]
    np.testing.assert_allclose(back.lead("V4"), ecg.lead("V4"), atol=1e-5)


def test_csv_without_header_needs_lead_names(data_dir, tmp_path):
    ecg = _ludb(data_dir)
    p = tmp_path / "noheader.csv"
    np.savetxt(p, ecg.signals_mv, delimiter=",", fmt="%.5f")
    with pytest.raises(InputError, match="lead names"):
        read_csv(p, sampling_rate_hz=500)
    back = read_csv(p, sampling_rate_hz=500, leads=list(STANDARD_LEADS))
    np.testing.assert_allclose(back.signals_mv, ecg.signals_mv, atol=1e-5)


def test_npy_orientation_leads_and_pickle(data_dir, tmp_path):
    ecg = _ludb(data_dir)
    p = tmp_path / "ecg.npy"
    np.save(p, ecg.signals_mv.T.copy())            # leads x samples
    with pytest.raises(InputError, match="sampling rate"):
        read_record(p)
    back = read_npy(p, sampling_rate_hz=500)
    np.testing.assert_array_equal(back.signals_mv, ecg.signals_mv)
    six = tmp_path / "six.npy"
    np.save(six, ecg.signals_mv[:, :6])
    with pytest.raises(InputError, match="lead names"):
        read_npy(six, sampling_rate_hz=500)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickle"):
        read_npy(obj, sampling_rate_hz=500)


def test_edf_labels_with_signal_type_prefix_and_microvolts(data_dir, tmp_path):
    """EDF+ labels 'ECG I', 'EKG V1' and a uV physical dimension (as in r01.edf) are understood."""
    import pyedflib

    ecg = _ludb(data_dir)
    path = tmp_path / "prefixed.edf"
    x_uv = ecg.signals_mv.astype(np.float64) * 1000
    writer = pyedflib.EdfWriter(str(path), 12, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders([{"label": f"{'ECG' if j % 2 else 'EKG'} {lead}", "dimension": "uV",
                                  "sample_frequency": 500, "physical_min": -5000.0, "physical_max": 5000.0,
                                  "digital_min": -32768, "digital_max": 32767, "transducer": "", "prefilter": ""}
                                 for j, lead in enumerate(STANDARD_LEADS)])
        writer.writeSamples([np.ascontiguousarray(x_uv[:, j]) for j in range(12)])
    finally:
        writer.close()
    back = read_record(path)
    assert back.source_format == "edf" and not back.derived_leads
    np.testing.assert_allclose(back.signals_mv, ecg.signals_mv, atol=10000 / 65535 / 1000 + 1e-6)
