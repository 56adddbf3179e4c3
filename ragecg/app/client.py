"""The client side of `ragecg serve` (see `ragecg.app.serve`): the fingerprint of settings, code and
knowledge, the JSON-lines messages over the owner-only Unix socket, and `diagnose_on_server`, which a
one-off `ragecg diagnose` tries before loading anything itself.
"""
from __future__ import annotations

import hashlib
import json
import socket
import sys
from pathlib import Path
from typing import NamedTuple, Optional

from ragecg import bounded
from ragecg.errors import EXIT_PARTIAL, RagecgError
from ragecg.settings import PACKAGE_ROOT, Settings

MAX_REQUEST_BYTES = 1 << 20


def fingerprint(settings: Settings) -> str:
    """sha256 over the settings that shape a report (not the API key or the socket), the package's
    code files and the knowledge files (path, size, mtime: an edited or added guideline document
    means a server started before it is not used)."""
    h = hashlib.sha256()
    http_only = {"api_token"} | {k for k in Settings.model_fields if k.startswith("http_")}   # app/webapi.py's
    h.update(json.dumps(settings.model_dump(mode="json", exclude={"llm_api_key", "openai_api_key", "server_socket",
                                                                  "use_server"} | http_only),
                        sort_keys=True,
                        default=str).encode())
    h.update(sys.version.encode())
    files = sorted(PACKAGE_ROOT.rglob("*.py"))
    for folder in settings.all_knowledge_dirs():
        files += sorted(f for f in Path(folder).rglob("*") if f.is_file())
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def send_message(conn: socket.socket, obj: dict) -> None:
    conn.sendall(json.dumps(obj).encode() + b"\n")


def read_messages(conn: socket.socket):
    """The JSON objects arriving on `conn`, one per line (ValueError for a line longer than
    MAX_REQUEST_BYTES, nested too deeply or not JSON: `ragecg.bounded`)."""
    buf = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield bounded.loads(line, max_bytes=MAX_REQUEST_BYTES)
        if len(buf) > MAX_REQUEST_BYTES:
            raise ValueError("message too long")


class DiagnoseJob(NamedTuple):
    """What `diagnose` was asked to do, in plain values (sent as JSON to `ragecg serve`)."""
    paths: list[str]
    fmt: str
    out: Optional[str]
    paper: str
    read_opts: dict
    no_llm: bool
    no_retrieval: bool
    prior: Optional[str] = None             # a prior ECG of the same patient (serial comparison)


def answers(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(path))
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- client

def diagnose_on_server(settings: Settings, job) -> int | None:
    """Run `job` (cli.DiagnoseJob) on a running server: its output printed here, its exit code
    returned. None when there is no usable server (no socket, nobody listening, other settings or
    code): the caller then diagnoses in its own process."""
    path = settings.socket_path
    if not path.is_socket():
        return None
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(2.0)
        conn.connect(str(path))
        conn.settimeout(None)
    except OSError:
        return None
    with conn:
        started = False
        try:
            send_message(conn, {"op": "diagnose", "fingerprint": fingerprint(settings), "job": job._asdict()})
            for msg in read_messages(conn):
                if msg.get("mismatch"):
                    print(f"ragecg: the server on {path} runs other settings or code; diagnosing in this process",
                          file=sys.stderr)
                    return None
                started = True
                if "out" in msg:
                    print(msg["out"], flush=True)
                elif "err" in msg:
                    print(msg["err"], file=sys.stderr, flush=True)
                elif "exit" in msg:
                    return int(msg["exit"])
        except (OSError, ValueError):
            pass
        if not started:
            return None
    raise ServerGoneError("the ragecg server stopped before finishing the job (results above may be partial)")


class ServerGoneError(RagecgError):
    exit_code = EXIT_PARTIAL
