"""The browser viewer in Debian's headless Chromium (/usr/bin/chromium, driven by Playwright's Python
package with `executable_path`: no browser download): upload a real record, wait for the report, check
the 12-lead plot (true-scale grid and traces drawn from the returned samples), zoom, per-lead view and
calipers, the statements and their evidence, the serial comparison and device vs ragecg. Screenshots
are saved in the test's tmp_path."""
from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from test_web import LiveServer  # tests/ is on sys.path under pytest

from ragecg.pipeline import Resources
from ragecg.settings import get_settings

CHROMIUM = "/usr/bin/chromium"
PTBXL_HR = "ptbxl/records500/00000/00009_hr"
PHILIPS = "formats/philips_xml/3191723_ZZDEMOPTONLY_1-04_orig.xml"   # carries the cart's statements
CSS_PX_PER_MM = 96 / 25.4
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

CANVAS_PIXELS = """() => {
  const c = document.getElementById('ecg-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let dark = 0, pink = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i] < 90 && d[i + 1] < 90 && d[i + 2] < 90) dark++;
    if (d[i] > 200 && d[i] - d[i + 1] > 25 && Math.abs(d[i + 1] - d[i + 2]) < 25) pink++;
  }
  return {cssWidth: parseFloat(c.style.width), cssHeight: parseFloat(c.style.height), dark: dark / (d.length / 4),
          pink: pink / (d.length / 4)};
}"""


def _need(ok: bool, what: str) -> None:
    if not ok:
        if CI:
            pytest.fail(f"{what} is missing (scripts/install.sh installs it)")
        pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def server(session_home):
    settings = get_settings(home=session_home)
    with LiveServer(settings, Resources(settings=settings, use_llm=False)) as srv:
        yield srv


def test_viewer_uploads_and_shows_plot_statements_evidence(server, data_dir, tmp_path):
    _need(Path(CHROMIUM).exists(), "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright (pip)")
    base = data_dir / PTBXL_HR
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        assert page.is_disabled("#go")
        page.set_input_files("#file-new", [str(base) + ".hea", str(base) + ".dat"])
        page.click("#go")
        page.wait_for_selector("body[data-report-id]", timeout=300_000)
        rid = page.evaluate("document.body.dataset.reportId")
        report = httpx.get(f"{server.url}/v1/reports/{rid}").json()

        # the plot: 10 s x 4 rows at 25 mm/s, 10 mm/mV on a 1 mm grid, traces drawn
        px = page.evaluate(CANVAS_PIXELS)
        assert px["cssWidth"] == pytest.approx(250 * CSS_PX_PER_MM, abs=1.5)
        assert px["cssHeight"] == pytest.approx(120 * CSS_PX_PER_MM, abs=1.5)
        assert px["pink"] > 0.05 and px["dark"] > 0.01
        page.screenshot(path=str(tmp_path / "viewer_report.png"), full_page=True)

        # statements with category column and one evidence block each
        codes = [c["code"] for c in report["diagnosis"]["codes"]]
        assert codes, "this record should get at least one statement"
        cells = page.locator("#statements > tbody > tr:not(.evidence-row) > td:first-child").all_text_contents()
        assert cells == codes
        assert page.locator("#statements thead th").all_text_contents()[2] == "category"
        evidence = page.locator("#statements details.evidence")
        assert evidence.count() == len(codes)
        evidence.first.locator("summary").click()
        first = evidence.first
        assert first.locator("table.criteria").is_visible()
        assert "Criteria score" in first.inner_text()
        passages = page.locator("#statements .passage")
        assert passages.count() > 0 and report["evidence"]["passages"]
        assert page.locator("#measurements tbody tr").count() >= 10
        assert page.locator("#quality tbody tr").count() == 12
        assert page.locator("#narrative li").count() == len(report["diagnosis"]["narrative"])
        assert page.is_hidden("#device-section") and page.is_hidden("#comparison-section")
        page.screenshot(path=str(tmp_path / "viewer_evidence.png"), full_page=True)

        # zoom, per-lead view, calipers: a drag of 25 mm at 100 % is 1 s
        page.click("#zoom-in")
        assert page.evaluate(CANVAS_PIXELS)["cssWidth"] == pytest.approx(250 * CSS_PX_PER_MM * 1.25, abs=2)
        page.click("#zoom-reset")
        page.select_option("#view", "V1")
        one = page.evaluate(CANVAS_PIXELS)
        assert one["cssWidth"] == pytest.approx(report["duration_s"] * 25 * CSS_PX_PER_MM, abs=2)
        assert one["dark"] > 0.002
        box = page.locator("#caliper-canvas").bounding_box()
        x0, y0 = box["x"] + 50, box["y"] + 40
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 25 * CSS_PX_PER_MM, y0 + 10 * CSS_PX_PER_MM, steps=5)
        page.mouse.up()
        readout = page.inner_text("#caliper-readout")
        m = re.search(r"Δt (\d+) ms \((\d+) /min\), ΔV ([\d.]+) mV", readout)
        assert m, readout                               # the mouse moves in whole CSS pixels (1 px = 10.6 ms)
        assert abs(int(m[1]) - 1000) <= 15 and abs(int(m[2]) - 60) <= 1 and abs(float(m[3]) - 1.0) <= 0.03
        page.screenshot(path=str(tmp_path / "viewer_calipers.png"))
        page.select_option("#view", "12")

        # serial comparison: the same record as its own prior -> no significant change
        page.set_input_files("#file-prior", [str(base) + ".hea", str(base) + ".dat"])
        page.click("#go")
        page.wait_for_selector(f"body[data-report-id]:not([data-report-id='{rid}'])", state="attached", timeout=300_000)
        assert page.is_visible("#comparison-section")
        assert page.inner_text("#comparison-summary") == "No significant change since the prior ECG."
        assert page.locator("#comparison-measurements tbody tr").count() == 7
        page.screenshot(path=str(tmp_path / "viewer_comparison.png"), full_page=True)

        # a clinical file with the cart's statements: device vs ragecg
        page.click("#clear")
        assert page.inner_text("#caliper-readout").startswith("Calipers: drag")
        page.set_input_files("#file-new", str(data_dir / PHILIPS))
        page.click("#go")
        page.wait_for_selector("#device-section:not([hidden])", timeout=300_000)
        assert page.locator("#device tbody tr").count() > 0
        assert page.is_visible("#device-statements")
        device = httpx.get(f"{server.url}/v1/reports/{page.evaluate('document.body.dataset.reportId')}").json()
        shown = page.locator("#device-statements tbody td:first-child").all_text_contents()
        assert [s for s in shown if s] == device["device_statements"] and shown
        page.screenshot(path=str(tmp_path / "viewer_device.png"), full_page=True)
        browser.close()
    assert not errors, errors
