"""`ragecg serve`: a resident process answers `ragecg diagnose` with the output the command gives on
its own (same codes, same narrative), keeps serving after a bad record, refuses clients with other
settings or code (they work alone), and never leaves a command without an answer."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from ragecg.app.client import DiagnoseJob
from ragecg.app.jobs import run_diagnose_job
from ragecg.errors import UsageError
from ragecg.pipeline import Resources
from ragecg.app.client import diagnose_on_server, fingerprint
from ragecg.app.serve import Server
from ragecg.settings import get_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sock_dir():
    """A short folder for sockets (a Unix socket path must stay under ~108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="rgs", dir="/tmp"))
    yield d
    # a server that is still shutting down removes its own socket: the folder may change under us
    shutil.rmtree(d, ignore_errors=True)


def _job(*paths: Path, **kw) -> DiagnoseJob:
    fields = dict(fmt="json", out=None, paper="a4", read_opts={}, no_llm=False, no_retrieval=False) | kw
    return DiagnoseJob(paths=[str(p) for p in paths], **fields)


@pytest.fixture
def running(sock_dir):
    """Start an in-process server on the real embedded model; yields (settings, server)."""
    started: list[Server] = []

    def start(**overrides) -> tuple:
        settings = get_settings(server_socket=sock_dir / "s.sock", **overrides)
        resources = Resources(settings=settings)
        resources.start_loading()
        server = Server(settings, resources, log=lambda msg: None)
        server.bind()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return settings, server

    yield start
    for s in started:
        s.stop()


def _without_timings(text: str) -> dict:
    report = json.loads(text)
    report.pop("timings_s")
    report["diagnosis"]["llm"].pop("seconds")
    report["diagnosis"]["llm"].pop("ttft_s")
    report["diagnosis"]["llm"].pop("cached_prompt_tokens")
    return report


def test_server_answers_as_the_command_would(data_dir, running, capsys):
    settings, server = running()
    rec = data_dir / "ptbxl/records100/00000/00009_lr.hea"
    assert diagnose_on_server(settings, _job(rec)) == 0
    served = capsys.readouterr().out
    assert server.jobs == 1
    local: list[str] = []
    assert run_diagnose_job(_job(rec), Resources(settings=settings), local.append, print) == 0
    a, b = _without_timings(served), _without_timings(local[0])
    assert a["diagnosis"]["llm"]["status"] == "ok"
    assert a == b                          # codes, scores, narrative, evidence, versions


def test_bad_record_gets_its_exit_code_and_the_server_goes_on(data_dir, running, capsys, tmp_path):
    settings, server = running()
    hea = data_dir / "ptbxl/records100/00000/00009_lr.hea"
    (tmp_path / "cut.hea").write_text(hea.read_text().replace("00009_lr", "cut"))
    (tmp_path / "cut.dat").write_bytes((hea.with_suffix(".dat")).read_bytes()[:1000])
    assert diagnose_on_server(settings, _job(tmp_path / "cut.hea")) == 3
    err = capsys.readouterr().err
    assert err.startswith("ragecg: cut.hea:") and "Traceback" not in err
    assert diagnose_on_server(settings, _job(hea, no_llm=True)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["diagnosis"]["mode"] == "criteria-only" and server.jobs == 2


def test_other_settings_or_no_server_means_working_alone(data_dir, running, capsys, sock_dir):
    rec = data_dir / "ptbxl/records100/00000/00009_lr.hea"
    alone = get_settings(server_socket=sock_dir / "s.sock")
    assert diagnose_on_server(alone, _job(rec)) is None            # nothing there
    settings, server = running(llm_timeout_s=77.0)
    assert fingerprint(settings) != fingerprint(alone)
    assert diagnose_on_server(alone, _job(rec)) is None            # other settings: refused
    assert "runs other settings or code" in capsys.readouterr().err
    assert server.jobs == 0
    with pytest.raises(UsageError, match="already listens"):
        Server(settings, Resources(settings=settings)).bind()


def test_a_dead_servers_socket_is_replaced(sock_dir, capsys):
    path = sock_dir / "s.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()                            # the file stays, nobody listens
    settings = get_settings(server_socket=path)
    assert diagnose_on_server(settings, _job(Path("x.hea"))) is None
    server = Server(settings, Resources(settings=settings, use_llm=False, use_retrieval=False))
    server.bind()
    assert oct(path.stat().st_mode & 0o777) == "0o600"      # owner only
    server.close()
    assert not path.exists()


def test_serve_and_diagnose_commands(data_dir, sock_dir):
    """The two commands as users run them: `ragecg serve` in the background, then a `diagnose`
    that it answers; SIGTERM stops the server and removes its socket."""
    path = sock_dir / "s.sock"
    env = {**os.environ, "RAGECG_SERVER_SOCKET": str(path)}
    srv = subprocess.Popen([sys.executable, "-m", "ragecg.cli", "serve"], cwd=REPO, env=env,
                           stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stderr.readline()
        assert "serving on" in line, line
        rec = data_dir / "ptbxl/records100/00000/00009_lr.hea"
        res = subprocess.run([sys.executable, "-m", "ragecg.cli", "diagnose", str(rec), "--json", "--no-llm"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["source"] == "00009_lr.hea"
        missing = subprocess.run([sys.executable, "-m", "ragecg.cli", "diagnose", str(rec.parent / "nope.hea")],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert missing.returncode == 3 and missing.stderr.startswith("ragecg: ")
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(timeout=30) == 0
        log = srv.stderr.read()
        assert "job 1: 1 record(s), exit 0" in log and "job 2: 1 record(s), exit 3" in log
        assert "00009" not in log and "nope" not in log            # no record names in its log
        assert not path.exists()
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()


def test_a_guideline_added_after_the_server_started_means_working_alone(tmp_path):
    """A server keeps the criteria it loaded; a knowledge file added or edited since changes the
    fingerprint, so the client does not get answers from stale criteria."""
    user = tmp_path / "knowledge"
    user.mkdir()
    settings = get_settings(user_knowledge_dir=user)
    before = fingerprint(settings)
    assert fingerprint(settings) == before
    (user / "local-guideline.md").write_text("# Local guideline\n\nQTc above 470 ms in women.\n")
    assert fingerprint(settings) != before
