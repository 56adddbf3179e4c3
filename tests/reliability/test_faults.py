"""Faults around a run: an output folder or RUN_DIR that cannot be written, a disk too full for a run,
a corrupt knowledge index seen from the command line, and an LLM server that is slow, answers HTTP
500, answers a body that is not JSON, or answers prose instead of the JSON schema. Each ends in one
clear line and its documented exit code, or in the documented criteria-only fallback."""
from __future__ import annotations

import json
import shutil
import threading
import time
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .clirun import run_batch, run_cli


def _lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


# ------------------------------------------------------------------ output folders
@pytest.mark.parametrize("where", ["under_a_file", "read_only_fs"])
def test_diagnose_out_unwritable_is_refused_before_any_work(where, tmp_path, cli_env):
    """The --out check comes first: with an absent record AND an unwritable --out, the error is about
    --out (exit 2), so no record was read, measured or diagnosed before the failure."""
    if where == "under_a_file":
        blocker = tmp_path / "a_file"
        blocker.write_text("x")
        out = blocker / "reports"
    else:
        out = Path("/sys/ragecg_reliability_test_out")       # sysfs: mkdir is refused even for root
        if out.exists():
            pytest.skip("unexpected: the sysfs path exists")
    res = run_cli("diagnose", "--no-llm", "--no-retrieval", "--out", str(out), str(tmp_path / "absent.hea"),
                  env_extra=cli_env)
    lines = _lines(res.stderr)
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and lines[0].startswith("ragecg: ") and "cannot write the report files" in lines[0]
    assert str(out) in lines[0] and "absent.hea" not in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not out.exists()


@pytest.fixture(scope="module")
def ptbxl_dir(data_dir) -> Path:
    d = data_dir / "ptbxl"
    if not (d / "ptbxl_database.csv").is_file():
        pytest.skip("PTB-XL not in the shared data")
    return d


def test_evaluate_unwritable_run_dir_is_refused_before_work(ptbxl_dir, tmp_path, cli_env):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run_dir = blocker / "run"
    t = time.perf_counter()
    res = run_cli("evaluate", "--ptbxl", str(ptbxl_dir), "--folds", "9", "--limit", "3", "--no-llm",
                  "--no-retrieval", "--bootstrap", "0", "--out", str(run_dir), env_extra=cli_env)
    lines = [ln for ln in _lines(res.stderr) if not ln.startswith("ragecg: PTB-XL+")]
    assert res.returncode == 3, res.stderr
    assert len(lines) == 1 and "run folder is not writable" in lines[0] and str(run_dir) in lines[0], lines
    assert "Traceback" not in res.stderr and not run_dir.exists()
    assert time.perf_counter() - t < 120


def test_evaluate_refuses_a_disk_too_full_before_writing(tmp_path, monkeypatch):
    """A full disk is checked before the run starts (free space against the rows still to write)."""
    from ragecg.errors import InputError
    from ragecg.app.eval import runner

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    run_dir = tmp_path / "run"
    with pytest.raises(InputError, match="not enough free disk") as info:
        runner.prepare_run_dir(run_dir, {"dataset": "ptbxl"}, n_remaining=1000)
    assert info.value.exit_code == 3 and str(run_dir) in str(info.value)
    assert [p.name for p in run_dir.iterdir()] == []      # nothing written: no run.json, no predictions


# ------------------------------------------------------------------ the knowledge index, from the command line
def test_corrupt_index_through_the_cli_is_exit_5_with_the_fix(data_dir, session_home, tmp_path, cli_env):
    """A truncated FAISS file in the active index: `ragecg diagnose` stops with exit 5 and one line naming
    the fix; criteria-only runs (--no-retrieval) do not need the index and still work."""
    from ragecg.knowledge import index as ix
    from ragecg.settings import get_settings

    built = ix.ensure_index(get_settings(home=session_home))        # the session's index (built once)
    home = tmp_path / "home"
    src_dir = get_settings(home=session_home).indexes_dir
    dst_dir = get_settings(home=home).indexes_dir
    shutil.copytree(src_dir, dst_dir)
    faiss_file = dst_dir / Path(built.path).name / "index.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    rec = str(data_dir / "ludb/data/58.hea")
    env = {**cli_env, "RAGECG_HOME": str(home)}
    broken, no_index = run_batch([["diagnose", "--no-llm", rec], ["diagnose", "--no-llm", "--no-retrieval", rec]],
                                 env_extra=env, timeout=900)
    assert broken["escaped"] is None and broken["rc"] == 5, broken["stderr"][-500:]
    lines = _lines(broken["stderr"])
    assert len(lines) == 1 and "ragecg knowledge build" in lines[0] and broken["stdout"] == ""
    assert no_index["rc"] == 0 and "physician" in no_index["stdout"]


# ------------------------------------------------------------------ an LLM server that misbehaves
class _Server:
    """A loopback HTTP server answering /v1/chat/completions in one of several broken ways."""

    def __init__(self):
        self.mode = "ok"
        self.calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):          # quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                server.calls += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                mode = server.mode
                if mode == "slow":
                    time.sleep(8)
                if mode == "http500":
                    body, code = b'{"error": "internal"}', 500
                elif mode == "not_json":
                    body, code = b"<html>gateway error</html>", 200
                else:
                    content = ("Sure! The patient has AFIB and a STEMI." if mode in ("prose", "slow")
                               else '{"codes": [], "narrative": []}')
                    body = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
                    code = 200
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:                  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def llm_server():
    s = _Server()
    yield s
    s.close()


@pytest.mark.parametrize("mode, status", [("slow", "timeout"), ("http500", "failed"), ("not_json", "failed"),
                                          ("prose", "invalid")])
def test_misbehaving_llm_server_falls_back_to_criteria(mode, status, llm_server, data_dir):
    """Through the real pipeline and the real HTTP backend: the documented fallback (criteria-only report,
    the same codes as --no-llm, the failure recorded in diagnosis.llm), never an invented code."""
    from ragecg.pipeline import Resources, diagnose_ecg
    from ragecg.reading.record import read_record
    from ragecg.settings import get_settings

    llm_server.mode = mode
    ecg = read_record(data_dir / "ludb/data/58.hea")
    settings = get_settings(llm_url=llm_server.url, llm_timeout_s=2.0)
    t = time.perf_counter()
    report = diagnose_ecg(ecg, Resources(settings=settings, use_llm=True, use_retrieval=False))
    seconds = time.perf_counter() - t
    plain = diagnose_ecg(ecg, Resources(settings=settings, use_llm=False, use_retrieval=False))
    d = report.diagnosis
    assert llm_server.calls >= 1
    assert d.mode == "criteria-only" and d.llm.status == status and d.llm.error, d.llm
    assert [c.code for c in d.codes] == [c.code for c in plain.diagnosis.codes]
    assert "AFIB" not in [c.code for c in d.codes]
    if mode == "slow":
        assert seconds < 7, seconds          # gave up at the 2 s timeout, did not wait for the 8 s answer


# ------------------------------------------------------------------ SIGKILL at random points, several times
ROW_KEYS = ("record_id", "ecg_id", "fold", "status", "error", "codes", "scores", "criteria_scores")


@pytest.mark.slow
def test_evaluate_killed_at_random_points_loses_and_duplicates_nothing(ptbxl_dir, tmp_path, cli_env):
    """`ragecg evaluate` SIGKILLed four times at seeded random moments (after 1-3 more records, plus 0-300 ms:
    between and inside record writes), resumed each time: at the end every record is there once, with the rows of an
    uninterrupted run (tests/test_eval.py kills once, at a fixed point, and adds a torn line)."""
    import os
    import random
    import signal
    import subprocess
    import sys

    from ragecg.app.eval.runner import PREDICTIONS, read_predictions

    from .clirun import REPO

    n = 12
    args = ["evaluate", "--ptbxl", str(ptbxl_dir), "--folds", "9", "--limit", str(n), "--no-llm", "--no-retrieval",
            "--bootstrap", "0", "--tasks", "superdiagnostic"]
    env = {**os.environ, **cli_env}
    run = tmp_path / "killed"
    rng = random.Random(7)
    seen_counts = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-m", "ragecg.cli", *args, "--out", str(run)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill once 1-3 more records are written, after a random 0-300 ms more (inside the next record).
        target = len(read_predictions(run)) + rng.randint(1, 3)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and len(read_predictions(run)) < target:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        rows = read_predictions(run)
        assert len({r["record_id"] for r in rows}) == len(rows)        # never a duplicate, even mid-run
        seen_counts.append(len(rows))
    done = run_cli(*args, "--out", str(run), env_extra=cli_env, timeout=600)
    assert done.returncode == 0, done.stderr[-800:]
    rows = read_predictions(run)
    lines = [ln for ln in (run / PREDICTIONS).read_bytes().split(b"\n") if ln.strip()]
    assert len(rows) == len(lines) == n, (len(rows), len(lines), seen_counts)
    ref_dir = tmp_path / "reference"
    ref = run_cli(*args, "--out", str(ref_dir), env_extra=cli_env, timeout=600)
    assert ref.returncode == 0, ref.stderr[-800:]

    def key(rows):
        return sorted(({k: r.get(k) for k in ROW_KEYS} for r in rows), key=lambda r: r["record_id"])
    assert key(rows) == key(read_predictions(ref_dir))
    print(f"\nrows present after each kill: {seen_counts}")
