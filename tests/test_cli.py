"""End to end through the command line on real records: exit codes, schema-valid JSON, grounded
narrative, and one-line errors (no traceback) for bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parent.parent

REAL_RECORDS = [
    "ludb/data/1.hea", "ludb/data/8.hea", "ludb/data/25", "ludb/data/104.hea", "ludb/data/150.hea",
    "ptbxl/records100/00000/00009_lr.hea", "ptbxl/records100/00000/00038_lr.hea",
    "ptbxl/records100/00000/00040_lr.hea",
    "ptbxl/records500/00000/00009_hr.hea", "ptbxl/records500/00000/00038_hr.hea",
]


def run_cli(*args: str, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "ragecg.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def schema() -> dict:
    res = run_cli("schema")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _existing(data_dir: Path, rel: str) -> Path:
    p = data_dir / rel
    if not p.exists() and not p.with_suffix(".hea").exists() and not Path(str(p) + ".hea").exists():
        pytest.fail(f"expected record {rel} in the shared data")
    return p


def test_diagnose_ten_real_records_schema_valid_and_grounded(data_dir, schema):
    paths = [str(_existing(data_dir, r)) for r in REAL_RECORDS]
    ok = 0
    for path in paths:
        res = run_cli("diagnose", path, "--json", "--no-llm")
        assert res.returncode == 0, (path, res.stderr[-500:])
        assert "Traceback" not in res.stderr
        doc = json.loads(res.stdout)
        jsonschema.validate(doc, schema)
        keys = set(doc["evidence"]["measurements"]) | {p["passage_id"] for p in doc["evidence"]["passages"]}
        assert doc["diagnosis"]["narrative"], path
        for sentence in doc["diagnosis"]["narrative"]:
            assert set(sentence["evidence"]) <= keys, (path, sentence)
        assert len(doc["candidate_scores"]) == 71
        assert doc["evidence"]["passages"], "retrieval returned no passage"
        assert "physician" in doc["disclaimer"]
        ok += 1
    assert ok == len(REAL_RECORDS)


def test_out_dir_writes_json_md_html(data_dir, tmp_path):
    res = run_cli("diagnose", str(data_dir / "ludb/data/1.hea"), "--no-llm", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert {"report.json", "report.md", "report.html"} <= {p.name for p in tmp_path.iterdir()}
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "25 mm/s" in html
    assert "physician" in (tmp_path / "report.md").read_text()


def test_measure_json(data_dir):
    res = run_cli("measure", str(data_dir / "ludb/data/1.hea"), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert 40 < doc["measurements"]["heart_rate_bpm"] < 70   # LUDB 1: sinus bradycardia


def _bad(tmp_path: Path, data_dir: Path, kind: str) -> Path:
    src = data_dir / "ludb/data/9"
    if kind == "missing":
        return tmp_path / "absent.hea"
    if kind in ("no_dat", "truncated", "zero_lead", "nan"):
        for ext in (".hea", ".dat"):
            shutil.copy(src.with_suffix(ext), tmp_path / ("9" + ext))
        dat = tmp_path / "9.dat"
        if kind == "no_dat":
            dat.unlink()
        elif kind == "truncated":
            dat.write_bytes(dat.read_bytes()[:4000])
        return tmp_path / "9.hea"
    raise AssertionError(kind)


def _write_modified(data_dir: Path, tmp_path: Path, modify) -> Path:
    import wfdb
    rec = wfdb.rdrecord(str(data_dir / "ludb/data/9"))
    sig = modify(rec.p_signal.copy())
    names = list(rec.sig_name)[: sig.shape[1]]
    wfdb.wrsamp("mod", fs=500, units=["mV"] * len(names), sig_name=names, p_signal=sig, fmt=["16"] * len(names),
                adc_gain=[1000.0] * len(names), baseline=[0] * len(names), write_dir=str(tmp_path))
    return tmp_path / "mod.hea"


@pytest.mark.parametrize("kind,code,needle", [
    ("missing", 3, "does not exist"),
    ("no_dat", 3, "does not exist"),
    ("truncated", 3, "truncated"),
])
def test_bad_files_one_line_error(data_dir, tmp_path, kind, code, needle):
    res = run_cli("diagnose", str(_bad(tmp_path, data_dir, kind)), "--no-llm")
    assert res.returncode == code, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_bad_file_error_is_printed_while_the_model_loads(data_dir, tmp_path, kind):
    """With the LLM on, the model loads in a background thread while the record is read: the
    record's one-line error must still reach stderr (llama-cpp-python's quiet loading used to point
    fd 2 at /dev/null, process-wide) and the process must exit with its code."""
    res = run_cli("diagnose", str(_bad(tmp_path, data_dir, kind)), "--local")
    assert res.returncode == 3, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ragecg: ") and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_fewer_than_twelve_leads(data_dir, tmp_path):
    """A 6-lead limb recording is interpreted (issue 18): the report names the chest leads it lacks."""
    path = _write_modified(data_dir, tmp_path, lambda s: s[:, :6])
    res = run_cli("diagnose", str(path), "--no-llm")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "leads not in the recording: V1, V2, V3, V4, V5, V6" in res.stdout


def test_all_zero_leads_leave_a_two_lead_interpretation(data_dir, tmp_path):
    """Ten all-zero channels (as some exports store absent leads): interpreted from I and II (issue 18),
    the flat leads named, and the statements that need them not evaluated (NORM among them)."""
    def zero(s):
        s[:, 2:] = 0.0
        return s
    res = run_cli("diagnose", str(_write_modified(data_dir, tmp_path, zero)), "--no-llm", "--json")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    q = json.loads(res.stdout)["quality"]
    assert q["verdict"] == "limited"
    assert set(q["unusable_leads"]) == {"III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
    assert any("flat" in r for r in q["reasons"])
    assert "NORM" in q["not_evaluated_codes"] and "CLBBB" in q["not_evaluated_codes"]


def test_one_zero_lead_is_reported_not_measured(data_dir, tmp_path):
    def zero(s):
        s[:, 7] = 0.0   # V2
        return s
    res = run_cli("diagnose", str(_write_modified(data_dir, tmp_path, zero)), "--no-llm", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["quality"]["leads"]["V2"]["state"] == "flat"
    v2 = doc["measurements"]["leads"].get("V2") or {}
    assert all(v is None for v in v2.values())


def test_nan_samples(data_dir, tmp_path):
    """All six limb leads lost (NaN): the chest leads are interpreted, the limb leads named as unusable
    and the statements that read them not evaluated; no traceback."""
    import numpy as np
    import wfdb
    rec = wfdb.rdrecord(str(data_dir / "ludb/data/9"))
    sig = rec.p_signal.copy()
    sig[:, :6] = np.nan   # all limb leads lost
    wfdb.wrsamp("nan", fs=500, units=["mV"] * 12, sig_name=rec.sig_name, p_signal=sig, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    res = run_cli("diagnose", str(tmp_path / "nan.hea"), "--no-llm", "--json")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    q = json.loads(res.stdout)["quality"]
    assert set(q["unusable_leads"]) == {"I", "II", "III", "aVR", "aVL", "aVF"}
    assert any("NaN" in r for r in q["reasons"])
    assert {"IMI", "LAFB", "NORM"} <= set(q["not_evaluated_codes"])


def test_help_and_version():
    res = run_cli("--help")
    assert res.returncode == 0 and "diagnose" in res.stdout and "knowledge" in res.stdout
    for sub in ("diagnose", "measure", "knowledge", "schema", "version", "models"):
        r = run_cli(sub, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, sub
    res = run_cli("version", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["ragecg"] and info["knowledge_hash"] and "models" in info and "index" in info


def test_usage_error_exit_2():
    res = run_cli("diagnose", "--format", "pdf", "x.hea")
    assert res.returncode == 2
