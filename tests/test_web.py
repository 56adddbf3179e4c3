"""The HTTP API (`ragecg serve --http`) through httpx/TestClient on real records: every endpoint and every
error (RFC 9457 problem+json with the exit codes), the OpenAPI schema, the bearer token, the limits, the
bounded queue, a load test on loopback (none lost, none mixed), the refusal to bind a non-loopback
address without a token, and the serial comparison through the API and the command line."""
from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ragecg.errors import ModelError, UsageError
from ragecg.pipeline import Resources, diagnose_ecg
from ragecg.reading import read_record
from ragecg.settings import get_settings
from ragecg.values import STANDARD_LEADS

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ragecg.app.webapi import Problem, Worker, check_bind, create_app, parse_address  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PTBXL_HR = "ptbxl/records500/00000/00009_hr"
MUSE_WITH_PATIENT = "formats/ge_muse_xml/musephi_muse_ecg1.xml"
MUSE_IDENTIFIERS = ["JAX01234", "TEST 05", "Doe, John", "123456", "FL Research"]
PROBLEM = "application/problem+json"
TOKEN = "t0ken-for-the-tests-0123456789"


def wfdb_files(data_dir: Path, rel: str) -> list[tuple[str, tuple[str, bytes]]]:
    base = data_dir / rel
    return [("files", (base.name + ext, (base.parent / (base.name + ext)).read_bytes())) for ext in (".hea", ".dat")]


def settings_for(home: Path, **overrides):
    return get_settings(home=home, **overrides)


@pytest.fixture(scope="module")
def client(session_home):
    settings = settings_for(session_home)
    app = create_app(settings, Resources(settings=settings, use_llm=False))
    with TestClient(app) as c:
        _wait_ready(c)
        yield c


def _wait_ready(c, timeout_s: float = 600) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout_s:
        if c.get("/v1/health").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("server never became ready")


def assert_problem(r, status: int, exit_code: int | None = None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    p = r.json()
    assert p["status"] == status and p["title"] and p["type"].startswith("urn:ragecg:problem:")
    if exit_code is not None:
        assert p["exit_code"] == exit_code
    return p


# ------------------------------------------------------------------------------------------ endpoints
def test_openapi_schema_lists_every_endpoint(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"/v1/diagnose", "/v1/reports/{report_id}", "/v1/reports/{report_id}/signal",
            "/v1/reports/{report_id}/comparison/{prior_id}", "/v1/health", "/v1/version"} <= set(paths)
    post = paths["/v1/diagnose"]["post"]
    body = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    ref = body["$ref"].split("/")[-1]
    fields = schema["components"]["schemas"][ref]["properties"]
    assert {"files", "no_llm", "format", "prior_id", "sampling_rate", "units", "leads"} <= set(fields)
    assert {"400", "413", "422", "503"} <= set(post["responses"])
    fmt = paths["/v1/reports/{report_id}"]["get"]["parameters"]
    assert any(p["name"] == "format" for p in fmt)
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert "/" not in paths                                  # the viewer is not part of the API


def test_health_and_version(client):
    h = client.get("/v1/health")
    assert h.status_code == 200 and h.json()["status"] == "ready"
    assert h.json()["queue"]["limit"] == get_settings().http_queue_size
    v = client.get("/v1/version").json()
    assert v["api"] == "1" and v["ragecg"] and v["knowledge_documents"] > 40 and len(v["knowledge_hash"]) >= 8
    assert all("location" not in b for b in v["backends"])  # no server paths


def test_diagnose_wfdb_record_and_every_representation(client, data_dir):
    r = client.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR), data={"no_llm": "true"})
    assert r.status_code == 200, r.text
    env = r.json()
    rid = env["id"]
    assert r.headers["location"] == f"/v1/reports/{rid}" and len(rid) >= 20
    report = env["report"]
    assert report["source"] == "00009_hr.hea" and report["sampling_rate_hz"] == 500
    # the same record through the pipeline in this process gives the same findings
    resources = client.app.state.ragecg.resources.variant(use_llm=False, use_retrieval=True)
    direct = diagnose_ecg(read_record(data_dir / (PTBXL_HR + ".hea")), resources)
    assert report["measurements"]["heart_rate_bpm"] == pytest.approx(direct.measurements.heart_rate_bpm)
    assert [c["code"] for c in report["diagnosis"]["codes"]] == [c.code for c in direct.diagnosis.codes]
    assert env["comparison"] is None and env["device_comparison"] == []

    j = client.get(f"/v1/reports/{rid}")
    assert j.status_code == 200 and j.json()["source"] == "00009_hr.hea"
    html = client.get(f"/v1/reports/{rid}", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and 'id="ecg-plot"' in html.text
    assert "script-src" not in html.headers["content-security-policy"]           # no script in a report
    pdf = client.get(f"/v1/reports/{rid}", params={"format": "pdf"})
    assert pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"
    fhir = client.get(f"/v1/reports/{rid}", params={"format": "fhir"})
    assert fhir.headers["content-type"].startswith("application/fhir+json") and fhir.json()["resourceType"] == "Bundle"
    md = client.get(f"/v1/reports/{rid}", params={"format": "md"})
    assert md.text.startswith("# ECG report: 00009_hr.hea")
    sig = client.get(f"/v1/reports/{rid}/signal").json()
    assert list(sig["leads"]) == list(STANDARD_LEADS) and sig["units"] == "uV"
    ecg = read_record(data_dir / (PTBXL_HR + ".hea"))
    assert len(sig["leads"]["II"]) == ecg.n_samples
    assert np.allclose(np.array(sig["leads"]["V1"][:500]) / 1000, ecg.lead("V1")[:500], atol=0.0011)

    assert client.delete(f"/v1/reports/{rid}").status_code == 204
    assert_problem(client.get(f"/v1/reports/{rid}"), 404)
    assert_problem(client.delete(f"/v1/reports/{rid}"), 404)


def test_diagnose_answers_in_the_format_asked(client, data_dir):
    r = client.post("/v1/diagnose", params={"format": "fhir", "no_llm": "1"}, files=wfdb_files(data_dir, PTBXL_HR))
    assert r.status_code == 200 and r.json()["resourceType"] == "Bundle" and r.headers["x-report-id"]
    r = client.post("/v1/diagnose", data={"format": "pdf"}, files=wfdb_files(data_dir, PTBXL_HR))
    assert r.content.startswith(b"%PDF") and "attachment" in r.headers["content-disposition"]


def test_clinical_file_device_statements_and_no_identifiers(client, data_dir, capfd):
    path = data_dir / MUSE_WITH_PATIENT
    r = client.post("/v1/diagnose", files=[("files", (path.name, path.read_bytes()))])
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["device_comparison"] and env["report"]["device_statements"]
    outputs = [r.text] + [client.get(f"/v1/reports/{env['id']}", params={"format": f}).text
                          for f in ("json", "html", "md", "fhir")]
    outputs.append(capfd.readouterr().err)                   # the server's log
    for text in outputs:
        for ident in MUSE_IDENTIFIERS:
            assert ident not in text


def test_csv_upload_with_options(client, data_dir):
    ecg = read_record(data_dir / "ludb/data/1.hea")
    buf = io.StringIO()
    np.savetxt(buf, ecg.signals_mv * 1000, delimiter=",", fmt="%.1f", header=",".join(STANDARD_LEADS), comments="")
    files = [("files", ("leads.csv", buf.getvalue().encode()))]
    assert_problem(client.post("/v1/diagnose", files=files), 400, exit_code=3)          # no sampling rate
    r = client.post("/v1/diagnose", files=files, data={"sampling_rate": "500", "units": "uV"})
    assert r.status_code == 200, r.text
    assert r.json()["report"]["sampling_rate_hz"] == 500
    assert_problem(client.post("/v1/diagnose", files=files, data={"sampling_rate": "500", "units": "furlong"}), 400, 2)


# --------------------------------------------------------------------------------------------- errors
def test_bad_requests_are_problems_with_exit_codes(client, data_dir):
    hea = data_dir / (PTBXL_HR + ".hea")
    assert_problem(client.post("/v1/diagnose", data={"no_llm": "true"}), 400, exit_code=2)       # no file
    assert_problem(client.post("/v1/diagnose", files=[("files", ("x.xml", b"not an ECG at all"))]), 400, exit_code=3)
    assert_problem(client.post("/v1/diagnose", files=[("files", (hea.name, hea.read_bytes()))]), 400, exit_code=3)
    two = [("files", ("a.xml", b"x")), ("files", ("b.xml", b"y"))]
    assert_problem(client.post("/v1/diagnose", files=two), 400, exit_code=2)                     # not one record
    same = [("files", ("a.xml", b"x")), ("files", ("a.xml", b"y"))]
    assert_problem(client.post("/v1/diagnose", files=same), 400, exit_code=2)
    assert_problem(client.post("/v1/diagnose", files=[("files", ("bad;name.xml", b"x"))]), 400, exit_code=2)
    assert_problem(client.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR), data={"format": "docx"}), 400, 2)
    assert_problem(client.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR), data={"prior_id": "nope"}), 404)
    assert_problem(client.get("/v1/reports/does-not-exist"), 404)
    assert_problem(client.get("/v1/reports/does-not-exist/signal"), 404)
    assert_problem(client.get("/v1/reports/x/comparison/y"), 404)
    assert_problem(client.get("/v1/nothing-here"), 404)
    # a folder name in the upload is dropped: only the file's own name is used
    moved = [("files", ("../../etc/" + name, data)) for _, (name, data) in wfdb_files(data_dir, PTBXL_HR)]
    r = client.post("/v1/diagnose", files=moved)
    assert r.status_code == 200 and r.json()["report"]["source"] == "00009_hr.hea"


def test_unusable_signal_is_422(client):
    flat = np.zeros((5000, 12))
    buf = io.StringIO()
    np.savetxt(buf, flat, delimiter=",", fmt="%.1f", header=",".join(STANDARD_LEADS), comments="")
    r = client.post("/v1/diagnose", files=[("files", ("flat.csv", buf.getvalue().encode()))],
                    data={"sampling_rate": "500"})
    p = assert_problem(r, 422, exit_code=4)
    assert "unusable" in p["detail"]


def test_not_ready_model_error_and_full_queue_are_503(client, data_dir):
    state = client.app.state.ragecg
    files = wfdb_files(data_dir, PTBXL_HR)
    state.ready.clear()
    try:
        r = client.post("/v1/diagnose", files=files)
        assert_problem(r, 503, exit_code=5)
        assert r.headers["retry-after"] == "5"
        assert client.get("/v1/health").status_code == 503
        state.load_error = ModelError("model file corrupt (sha256 mismatch)")
        p = assert_problem(client.post("/v1/diagnose", files=files), 503, exit_code=5)
        assert "sha256" in p["detail"] and client.get("/v1/health").json()["status"] == "error"
    finally:
        state.load_error = None
        state.ready.set()
    state.worker.pending += state.worker.limit                 # as if the queue were full
    try:
        r = client.post("/v1/diagnose", files=files)
        assert_problem(r, 503)
        assert int(r.headers["retry-after"]) >= 1
    finally:
        state.worker.pending -= state.worker.limit
    assert client.post("/v1/diagnose", files=files).status_code == 200


def test_internal_error_is_500_without_details(client, data_dir, monkeypatch, capfd):
    import ragecg.app.webapi

    def broken(ecg, resources):
        raise RuntimeError("secret patient detail")
    monkeypatch.setattr(ragecg.app.webapi, "diagnose_ecg", broken)
    r = client.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR))
    p = assert_problem(r, 500, exit_code=1)
    assert p["detail"] == "internal error (RuntimeError)"
    err = capfd.readouterr().err
    assert "secret patient detail" not in r.text + err and "Traceback" not in err


def test_worker_queue_is_bounded_and_releases():
    async def scenario():
        w = Worker(limit=2)
        gate = threading.Event()
        first = asyncio.ensure_future(w.run(gate.wait))
        second = asyncio.ensure_future(w.run(lambda: 42))
        await asyncio.sleep(0.05)
        with pytest.raises(Problem) as exc:
            await w.run(lambda: 0)
        assert exc.value.status == 503 and int(exc.value.headers["Retry-After"]) >= 1
        gate.set()
        assert await first is True and await second == 42
        await asyncio.sleep(0.05)
        assert w.pending == 0 and await w.run(lambda: 7) == 7
        w.shutdown()
    asyncio.run(scenario())


def test_limits_size_duration_and_length_required(session_home, data_dir):
    settings = settings_for(session_home, http_max_upload_mb=0.05, http_max_duration_s=5.0)
    with TestClient(create_app(settings, Resources(settings=settings, use_llm=False, use_retrieval=False),
                               warm=False)) as c:
        _wait_ready(c)
        p = assert_problem(c.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR)), 413, exit_code=3)
        assert "MB" in p["detail"]
        lr = data_dir / "ptbxl/records100/00000/00009_lr"
        small = [("files", (lr.name + e, (lr.parent / (lr.name + e)).read_bytes())) for e in (".hea", ".dat")]
        p = assert_problem(c.post("/v1/diagnose", files=small), 413, exit_code=3)          # 10 s > 5 s
        assert "5 s" in p["detail"]

        def chunks():
            yield b"--x\r\n"
        r = c.post("/v1/diagnose", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        assert_problem(r, 411)


def test_reports_expire(session_home, data_dir):
    settings = settings_for(session_home, http_retention_s=0.5)
    with TestClient(create_app(settings, Resources(settings=settings, use_llm=False, use_retrieval=False),
                               warm=False)) as c:
        _wait_ready(c)
        rid = c.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR)).json()["id"]
        assert c.get(f"/v1/reports/{rid}").status_code == 200
        time.sleep(0.8)
        assert_problem(c.get(f"/v1/reports/{rid}"), 404)


def test_run_folder_holds_reports_until_they_expire(session_home, data_dir, tmp_path):
    settings = settings_for(session_home, http_retention_s=0.5, http_run_dir=tmp_path / "run")
    with TestClient(create_app(settings, Resources(settings=settings, use_llm=False, use_retrieval=False),
                               warm=False)) as c:
        _wait_ready(c)
        rid = c.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR)).json()["id"]
        assert (tmp_path / "run/reports" / rid / "report.json").is_file()
        assert list((tmp_path / "run/uploads").iterdir()) == []          # the upload was deleted once read
        time.sleep(0.8)
        c.get("/v1/health")
        c.get(f"/v1/reports/{rid}")
        assert not (tmp_path / "run/reports" / rid).exists()


def test_bearer_token(session_home, data_dir):
    settings = settings_for(session_home, api_token=TOKEN)
    with TestClient(create_app(settings, Resources(settings=settings, use_llm=False, use_retrieval=False),
                               warm=False)) as c:
        _wait_ready(c)                                        # health needs no token
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + TOKEN}):
            r = c.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR), headers=headers)
            assert_problem(r, 401, exit_code=2)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert_problem(c.get("/v1/version", headers=headers), 401)
        ok = {"Authorization": f"Bearer {TOKEN}"}
        r = c.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR), headers=ok)
        assert r.status_code == 200
        assert_problem(c.get(f"/v1/reports/{r.json()['id']}"), 401)
        assert c.get(f"/v1/reports/{r.json()['id']}", headers=ok).status_code == 200
        assert c.get("/").status_code == 200                  # the viewer page itself (it asks for the token)


def test_viewer_and_static_files_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/viewer.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text          # no CDN
    assert "default-src 'self'" in page.headers["content-security-policy"]
    js = client.get("/static/viewer.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text and "https://" not in js.text
    assert client.get("/static/viewer.css").status_code == 200


# -------------------------------------------------------------------------------------------- binding
def test_parse_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    assert parse_address("8080", "10.0.0.2") == ("10.0.0.2", 8080)


def _serve_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAGECG_API_TOKEN"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "ragecg.cli", "serve", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)


def test_non_loopback_bind_without_token_refuses_to_start():
    r = _serve_cli("--http", "0.0.0.0:0")
    assert r.returncode == 2, r.stderr
    assert "RAGECG_API_TOKEN" in r.stderr and "Traceback" not in r.stderr
    r = _serve_cli("--http", "0", "--host", "192.0.2.1", env_extra={"RAGECG_API_TOKEN": "short"})
    assert r.returncode == 2 and "too short" in r.stderr
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.org"):          # the same check, in this process
        with pytest.raises(UsageError, match="RAGECG_API_TOKEN"):
            check_bind(get_settings(), host)
    for host in ("127.0.0.1", "::1", "localhost"):
        check_bind(get_settings(), host)
    check_bind(get_settings(api_token=TOKEN), "0.0.0.0")
    with pytest.raises(UsageError, match=r"\[HOST:\]PORT"):
        parse_address("localhost:notaport")


# ------------------------------------------------------------------------------------- live server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn on loopback in a thread, around `create_app`."""

    def __init__(self, settings, resources):
        import uvicorn
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, resources)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import httpx
        self.thread.start()
        t = time.monotonic()
        while time.monotonic() - t < 600:
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("live server never became ready")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def fold9_records(data_dir: Path, n: int) -> list[Path]:
    """The first `n` PTB-XL fold-9 records (100 Hz): design data."""
    import pandas as pd
    db = pd.read_csv(data_dir / "ptbxl/ptbxl_database.csv", usecols=["ecg_id", "strat_fold", "filename_lr"])
    rows = db[db.strat_fold == 9].sort_values("ecg_id").head(n)
    return [data_dir / "ptbxl" / f for f in rows.filename_lr]


def post_record(http, base: Path, retries: int = 200):
    """POST one WFDB record; on 503 wait Retry-After (capped at 1 s here) and try again."""
    files = [("files", (base.name + e, (base.parent / (base.name + e)).read_bytes())) for e in (".hea", ".dat")]
    busy = 0
    for _ in range(retries):
        r = http.post("/v1/diagnose", files=files, data={"no_llm": "true"})
        if r.status_code != 503:
            return r, busy
        assert int(r.headers["retry-after"]) >= 1
        busy += 1
        time.sleep(min(1.0, float(r.headers["retry-after"])))
    raise AssertionError("never admitted")


def test_load_on_loopback_none_lost_none_mixed(session_home, data_dir):
    """50 uploads from 8 concurrent clients, the queue bounded at 4: every upload answered (503s retried),
    each answer is its own record's report and signal."""
    import httpx
    settings = settings_for(session_home, http_queue_size=4)
    records = fold9_records(data_dir, 50)
    with LiveServer(settings, Resources(settings=settings, use_llm=False)) as srv:
        def one(base: Path):
            with httpx.Client(base_url=srv.url, timeout=300) as http:
                r, busy = post_record(http, base)
                assert r.status_code == 200, r.text
                env = r.json()
                sig = http.get(env["links"]["signal"]).json()
                return base, env, sig, busy
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, records))
    assert len(results) == 50 and len({env["id"] for _, env, _, _ in results}) == 50
    assert sum(busy for *_, busy in results) > 0                # the bound was reached and answered with 503
    for base, env, sig, _ in results:
        assert env["report"]["source"] == base.name + ".hea"
        ecg = read_record(str(base) + ".hea")
        assert np.allclose(np.array(sig["leads"]["II"], dtype=float) / 1000, ecg.lead("II"), atol=0.0011)
        hr = env["report"]["measurements"]["heart_rate_bpm"]
        if hr is not None:
            assert abs(60000 / env["report"]["measurements"]["rr_mean_ms"] - hr) < 1.0


# ---------------------------------------------------------------------------------- serial comparison
def test_serial_comparison_through_the_api(client, data_dir):
    lr = "ptbxl/records100/00000/00009_lr"
    prior = client.post("/v1/diagnose", files=wfdb_files(data_dir, lr)).json()
    same = client.post("/v1/diagnose", files=wfdb_files(data_dir, lr), data={"prior_id": prior["id"]}).json()
    c = same["comparison"]
    assert c["significant_change"] is False and c["summary"] == "No significant change since the prior ECG."
    other = client.post("/v1/diagnose", files=wfdb_files(data_dir, PTBXL_HR), data={"prior_id": prior["id"]}).json()
    c2 = client.get(f"/v1/reports/{other['id']}/comparison/{prior['id']}").json()
    assert c2 == other["comparison"]
    assert {m["key"] for m in c2["measurements"]} >= {"heart_rate_bpm", "pr_interval_ms", "qrs_duration_ms",
                                                      "qt_interval_ms", "qtc_bazett_ms", "qrs_axis_deg"}
    md = client.get(f"/v1/reports/{other['id']}", params={"format": "md"}).text
    assert "## Comparison with the prior ECG" in md


def test_serial_comparison_on_the_command_line(data_dir, tmp_path):
    old, new = (Path(str(p) + ".hea") for p in fold9_records(data_dir, 2))
    r = subprocess.run([sys.executable, "-m", "ragecg.cli", "diagnose", str(new), "--prior", str(old), "--no-llm",
                        "--no-retrieval", "--local", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert f"## Comparison with the prior ECG ({old.name})" in r.stdout
    assert (tmp_path / "out/comparison.json").is_file() and (tmp_path / "out/prior/report.json").is_file()
    r = subprocess.run([sys.executable, "-m", "ragecg.cli", "diagnose", str(new), str(old), "--prior", str(old),
                        "--local"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 2 and "--prior" in r.stderr
