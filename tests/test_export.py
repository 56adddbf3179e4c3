"""Clinical outputs on real records: device vs ragecg table (GE MUSE, Philips), FHIR R4 bundle (validated
with fhir.resources), printable PDF (rendered by poppler, true 25 mm/s scale), report.html rendered by
headless Chromium, the CSV options of the command line and `ragecg export`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from ragecg.render.fhir import EKG_STUDY, LOINC, OBSERVATIONS, SCP_ECG, SNOMED, report_to_fhir, scp_to_snomed, validate_bundle
from ragecg.render.pdf import report_to_pdf
from ragecg.pipeline import Resources, diagnose_ecg
from ragecg.values import STANDARD_LEADS
from ragecg.reading.record import read_record
from ragecg.render import render
from ragecg.render.text import device_comparison
from ragecg.values import DISCLAIMER

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
MUSE = "formats/ge_muse_xml/braveheart_example1.xml"
MUSE_WITH_PATIENT = "formats/ge_muse_xml/musephi_muse_ecg1.xml"       # test patient "TEST 05", ID JAX01234
PHILIPS = "formats/philips_xml/3191723_ZZDEMOPTONLY_1-04_orig.xml"
LUDB = "ludb/data/1.hea"
# identifiers stored in MUSE_WITH_PATIENT (formats/SOURCES.md); none may reach any output
MUSE_IDENTIFIERS = ["JAX01234", "TEST 05", "Doe, John", "123456", "FL Research"]


@lru_cache(maxsize=None)
def _diagnosed(path: str):
    ecg = read_record(path)
    return ecg, diagnose_ecg(ecg, Resources(use_llm=False, use_retrieval=False))


def _need_tool(path: str | None, name: str) -> str:
    if path and Path(path).exists():
        return path
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{name} is missing (scripts/install.sh installs it)")
    pytest.skip(f"{name} is not installed")


def _png_rgb(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg
    img = mpimg.imread(str(path))
    return (img[..., :3] * 255).astype(np.uint8) if img.dtype != np.uint8 else img[..., :3]


def _grid_pink(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the ECG paper grid (#f4a6a6 / #fbdcdc and their blends with white): red >> green."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r > 200) & (r - g > 25) & (abs(g - b) < 20)


# ------------------------------------------------------------------------------------ device vs ragecg
@pytest.mark.parametrize("rel", [MUSE, PHILIPS])
def test_device_vs_ragecg_table_shows_both_values(data_dir, rel):
    ecg, report = _diagnosed(str(data_dir / rel))
    assert report.device_measurements == ecg.device_measurements and report.device_measurements
    md, html = render(report, "md"), render(report, "html", ecg)
    section = md[md.index("## Device vs ragecg"):]
    rows = device_comparison(report)
    assert {r.device_key for r in rows} >= {"heart_rate_bpm", "pr_interval_ms", "qrs_duration_ms", "qt_interval_ms"}
    for r in rows:
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {r.label} |"))
        assert f"| {r.device_value:.0f} {r.unit} |" in line
        ragecg_value = getattr(report.measurements, r.ragecg_key)
        assert (f"| {ragecg_value:.0f} {r.unit} |" in line) if ragecg_value is not None else "not measurable" in line
        if r.within_limit is not None:
            assert ("| yes |" in line) == (abs(ragecg_value - r.device_value) <= r.limit)
            assert "IEC 60601-2-2" in line
    assert "Device vs ragecg" in html and "<th>device</th>" in html and "<th>ragecg</th>" in html
    for statement in ecg.device_statements:                         # the device's own interpretation ...
        assert statement.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;") in html
    for c in report.diagnosis.codes:                                # ... beside ragecg's codes
        assert f"| {c.code} ({c.description})" in section.split("| device statements")[1]


def test_device_limits_heart_rate_axes_and_unstated_qtc(data_dir):
    _, report = _diagnosed(str(data_dir / MUSE))
    m = report.measurements.model_copy(update={"heart_rate_bpm": 131.0, "pr_interval_ms": 160.0,
                                               "qrs_axis_deg": -170.0, "qtc_bazett_ms": 430.0})
    r = report.model_copy(update={"measurements": m, "device_measurements": {
        "heart_rate_bpm": 120.0, "pr_interval_ms": 149.0, "qrs_axis_deg": 175.0, "qtc_ms": 405.0}})
    rows = {c.device_key: c for c in device_comparison(r)}
    assert rows["heart_rate_bpm"].limit == pytest.approx(12.0) and rows["heart_rate_bpm"].within_limit  # 10 % > 5
    assert rows["pr_interval_ms"].difference == pytest.approx(11.0) and rows["pr_interval_ms"].within_limit is False
    assert rows["qrs_axis_deg"].difference == pytest.approx(15.0) and rows["qrs_axis_deg"].within_limit is None
    assert rows["qtc_ms"].ragecg_key == "qtc_bazett_ms" and rows["qtc_ms"].within_limit   # 25 ms: at the limit
    slow = report.model_copy(update={"measurements": report.measurements.model_copy(update={"heart_rate_bpm": 52.5}),
                                     "device_measurements": {"heart_rate_bpm": 48.0}})
    assert device_comparison(slow)[0].limit == 5.0 and device_comparison(slow)[0].within_limit   # 5 bpm > 10 %


# ------------------------------------------------------------------------------------------------ FHIR
def _loinc_check_digit(number: str) -> int:
    """LOINC's mod-10 check digit (LOINC Users' Guide, appendix on check digits)."""
    rev = number[::-1]
    odd, even = rev[0::2][::-1], rev[1::2][::-1]
    total = sum(int(ch) for ch in even + str(int(odd) * 2))
    return (10 - total % 10) % 10


def test_loinc_codes_have_valid_check_digits():
    for code in [EKG_STUDY[0]] + [v[0] for v in OBSERVATIONS.values()]:
        number, digit = code.split("-")
        assert _loinc_check_digit(number) == int(digit), code


@pytest.mark.parametrize("rel", [MUSE_WITH_PATIENT, LUDB, PHILIPS])
def test_fhir_bundle_valid_coded_and_without_identifiers(data_dir, rel):
    _, report = _diagnosed(str(data_dir / rel))
    bundle = report_to_fhir(report)
    parsed = validate_bundle(bundle)                          # fhir.resources R4B models
    assert parsed.type == "collection"
    resources = [e["resource"] for e in bundle["entry"]]
    kinds = [r["resourceType"] for r in resources]
    assert "Patient" not in kinds and kinds.count("DiagnosticReport") == 1
    text = json.dumps(bundle)
    assert '"subject"' not in text and '"birthDate"' not in text
    for ident in MUSE_IDENTIFIERS:
        assert ident not in text
    dr = next(r for r in resources if r["resourceType"] == "DiagnosticReport")
    assert dr["status"] == "preliminary"
    assert dr["code"]["coding"][0] == {"system": LOINC, "code": "11524-6", "display": "EKG study"}
    assert DISCLAIMER in dr["conclusion"]
    refs = {e["fullUrl"] for e in bundle["entry"]}
    assert all(x["reference"] in refs for x in dr.get("result", []))
    emitted = [c.code for c in report.diagnosis.codes]
    coded = {cc["coding"][0]["code"]: cc["coding"] for cc in dr.get("conclusionCode", [])}
    assert list(coded) == emitted
    for code, codings in coded.items():
        assert codings[0]["system"] == SCP_ECG
        snomed = [c["code"] for c in codings if c["system"] == SNOMED]
        assert snomed == ([scp_to_snomed()[code]] if code in scp_to_snomed() else [])
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    by_loinc = {o["code"]["coding"][0]["code"]: o for o in observations}
    for key, (loinc, _, ucum, _, _) in OBSERVATIONS.items():
        value = getattr(report.measurements, key)
        if value is None:
            assert loinc not in by_loinc
            continue
        q = by_loinc[loinc]["valueQuantity"]
        assert q["system"] == "http://unitsofmeasure.org" and q["code"] == ucum
        assert q["value"] == pytest.approx(value, abs=0.05)
        assert by_loinc[loinc]["status"] == "preliminary"
    assert {"8867-4", "8633-0", "8634-8"} <= set(by_loinc)      # rate, QRS, QT measured on all three records


# ------------------------------------------------------------------------------------------------- PDF
def _pdf_page_sizes_pt(path: Path) -> list[tuple[float, float]]:
    from pypdf import PdfReader
    return [(float(p.mediabox.width), float(p.mediabox.height)) for p in PdfReader(str(path)).pages]


@pytest.mark.parametrize("paper,portrait_pt", [("a4", (595.3, 841.9)), ("letter", (612.0, 792.0))])
def test_pdf_opens_renders_and_prints_at_25_mm_per_s(data_dir, tmp_path, paper, portrait_pt):
    pdftoppm = _need_tool(shutil.which("pdftoppm"), "pdftoppm (poppler-utils)")
    ecg, report = _diagnosed(str(data_dir / LUDB))
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(report_to_pdf(report, ecg, paper))
    sizes = _pdf_page_sizes_pt(pdf)
    assert len(sizes) >= 2
    assert sizes[0] == pytest.approx(portrait_pt[::-1], abs=0.5)                  # page 1 landscape
    assert all(s == pytest.approx(portrait_pt, abs=0.5) for s in sizes[1:])      # text pages portrait
    subprocess.run([pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=60)
    rgb = _png_rgb(next(tmp_path.glob("page*.png")))
    assert (rgb.min(axis=2) < 100).mean() > 0.005                    # dark ink: traces and text
    pink = _grid_pink(rgb)
    cols, rows = np.flatnonzero(pink.any(axis=0)), np.flatnonzero(pink.any(axis=1))
    px_per_mm = 50 / 25.4
    assert (cols[-1] - cols[0]) / px_per_mm == pytest.approx(10.0 * 25, abs=3)    # 10 s at 25 mm/s
    assert (rows[-1] - rows[0]) / px_per_mm == pytest.approx(4 * 30, abs=3)       # 4 rows of 30 mm
    from pypdf import PdfReader
    pages = PdfReader(str(pdf)).pages
    assert "25 mm/s, 10 mm/mV" in pages[0].extract_text()
    assert "over-read" in "".join(p.extract_text() for p in pages[1:])


def test_pdf_without_signal_says_the_plot_is_omitted(data_dir, tmp_path):
    from pypdf import PdfReader
    _, report = _diagnosed(str(data_dir / MUSE))
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(report_to_pdf(report, None))
    pages = PdfReader(str(pdf)).pages
    first = " ".join(pages[0].extract_text().split())
    assert "plot is omitted" in first and "25 mm/s, 10 mm/mV" not in first
    assert "Device vs ragecg" in "".join(p.extract_text() for p in pages[1:])


# --------------------------------------------------------------------------------------------- browser
def test_report_html_renders_in_headless_chromium(data_dir, tmp_path):
    from bs4 import BeautifulSoup

    chromium = _need_tool(CHROMIUM, "chromium")
    ecg, report = _diagnosed(str(data_dir / "ptbxl/records500/00000/00009_hr.hea"))
    page = render(report, "html", ecg)
    probe = ("<script>window.addEventListener('load', () => { const i = document.querySelector('#ecg-plot img');"
             " document.body.dataset.plotWidth = i ? i.naturalWidth : -1; });</script>")
    html_file = tmp_path / "report.html"
    html_file.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000",
            "--virtual-time-budget=3000"]
    dom = subprocess.run(args + ["--dump-dom", html_file.as_uri()], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    soup = BeautifulSoup(dom, "html.parser")
    assert int(soup.body["data-plot-width"]) > 500                   # the PNG decoded in the browser
    assert soup.select_one("#ecg-plot img")["src"].startswith("data:image/png;base64,")
    headers = [[th.get_text(strip=True) for th in t.find_all("th")] for t in soup.find_all("table")]
    assert ["measurement", "value", "key / note"] in headers
    if report.diagnosis.codes:
        assert ["code", "statement", "confidence", "decided by"] in headers
        assert report.diagnosis.codes[0].code in dom
    assert soup.select_one("table#quality") is not None
    shot = tmp_path / "report.png"
    subprocess.run(args + [f"--screenshot={shot}", html_file.as_uri()], capture_output=True, timeout=60, check=True)
    rgb = _png_rgb(shot)
    assert rgb.shape[:2] == (2000, 1280)
    assert (rgb.min(axis=2) < 100).mean() > 0.002                     # text and traces drawn
    pink = _grid_pink(rgb)                                            # the ECG paper grid is on screen,
    cols, rows = np.flatnonzero(pink.any(axis=0)), np.flatnonzero(pink.any(axis=1))
    assert pink.mean() > 0.005 and cols[-1] - cols[0] > 700            # most of the page wide,
    assert (cols[-1] - cols[0]) / (rows[-1] - rows[0]) == pytest.approx(250 / 120, rel=0.03)   # 10 s x 4 rows


# ------------------------------------------------------------------------------------ command line
def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragecg.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(os.environ))


def test_csv_options_and_outputs_through_the_cli(data_dir, tmp_path):
    ecg = read_record(data_dir / LUDB)
    csv_path = tmp_path / "leads.csv"                          # no time column: the rate must be given
    np.savetxt(csv_path, ecg.signals_mv * 1000, delimiter=",", fmt="%.1f", header=",".join(STANDARD_LEADS),
               comments="")
    res = _cli("diagnose", str(csv_path), "--no-llm", "--no-retrieval")
    assert res.returncode == 3 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "sampling rate" in res.stderr
    out = tmp_path / "out"
    res = _cli("diagnose", str(csv_path), "--no-llm", "--no-retrieval", "--sampling-rate", "500", "--units", "uV",
               "--format", "fhir", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["resourceType"] == "Bundle"
    files = {p.name for p in out.iterdir()}
    assert files == {"report.json", "report.md", "report.html", "report.pdf", "report.fhir.json"}
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    saved = json.loads((out / "report.json").read_text())
    assert saved["measurements"]["heart_rate_bpm"] == pytest.approx(
        json.loads(_cli("measure", str(csv_path), "--sampling-rate", "500", "--units", "uV", "--json").stdout)
        ["measurements"]["heart_rate_bpm"])
    plain = tmp_path / "plain.html"
    res = _cli("export", str(out / "report.json"), "--to", "html", "--out", str(plain))
    assert res.returncode == 0, res.stderr
    assert 'id="ecg-plot-omitted"' in plain.read_text() and "data:image/png" not in plain.read_text()
    res = _cli("export", str(out / "report.json"), "--to", "html", "--out", str(plain), "--record", str(csv_path),
               "--sampling-rate", "500", "--units", "uV")
    assert res.returncode == 0, res.stderr
    assert "data:image/png;base64," in plain.read_text()
    res = _cli("export", str(out / "report.json"), "--to", "pdf", "--out", str(tmp_path / "x.pdf"),
               "--record", str(data_dir / "ludb/data/2.hea"))
    assert res.returncode == 3 and "not the record" in res.stderr


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    """The README's Python API block, executed as written (from a folder holding the shipped example)."""
    import re
    code = re.search(r"Python API \(runs as is.*?```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert code, "README lost its Python API example"
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    assert namespace["report"].diagnosis.codes is not None
    assert (tmp_path / "example.pdf").read_bytes()[:5] == b"%PDF-"
    assert type(namespace["measurements"]).__name__ == "Measurements"      # ragecg.measure() after diagnose()
