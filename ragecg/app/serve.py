"""`ragecg serve`: a resident process that keeps the pipeline loaded, so that a one-off
`ragecg diagnose` does not import the signal stack, load the model and read the static prompt
prefix again (bench/llm.py --cold: most of a cold command's time).

Transport: a Unix-domain socket (default HOME/run/ragecg.sock) created owner-only (mode 0600), so
no other user and no network can reach it. Protocol, JSON lines:

    client -> {"op": "diagnose", "fingerprint": F, "job": {client.DiagnoseJob fields}}
    server -> {"out": text} / {"err": text} ...  then  {"exit": code}
           or {"mismatch": true} when F is not the server's fingerprint (the client then works alone)

F hashes the settings, the package's code files and the knowledge files, so a server started with
another model, other settings, older code or older guidelines is never used: the output is the one
the command would print on its own.
The server runs the same `jobs.run_diagnose_job` as a local command, one job at a time, and logs
no record names or findings (only counts and durations).
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from ragecg.errors import RagecgError, UsageError
from ragecg.pipeline import Resources, diagnose_ecg
from ragecg.reading import read_record
from ragecg.settings import REPO_ROOT, Settings

from .client import DiagnoseJob, answers, fingerprint, read_messages, send_message
from .jobs import run_diagnose_job


MAX_CONNECTIONS = 32          # connections handled at once (each waits its turn for the one model)


# --------------------------------------------------------------------------- server

class Server:
    """Listens on `socket_path` and runs diagnose jobs with `resources` (pipeline.Resources)."""

    def __init__(self, settings: Settings, resources, socket_path: Path | None = None,
                 log: Callable[[str], None] | None = None):
        self.settings = settings
        self.resources = resources
        self.socket_path = Path(socket_path or settings.socket_path)
        self.fingerprint = fingerprint(settings)
        self.log = log or (lambda msg: print(f"ragecg serve: {msg}", file=sys.stderr, flush=True))
        self.stopping = threading.Event()
        self.jobs = 0
        self._sock: socket.socket | None = None
        self._job_lock = threading.Lock()          # one job at a time on the one model
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def bind(self) -> None:
        """Create the socket (owner-only). UsageError when a server already listens there or the
        path cannot be used; a socket file left by a server that died is replaced."""
        path = self.socket_path
        if path.exists() or path.is_symlink():
            if answers(path):
                raise UsageError("a ragecg server already listens on this socket", path=str(path))
            if not path.is_socket():
                raise UsageError("exists and is not a socket", path=str(path))
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            old = os.umask(0o177)               # the socket is created rw for its owner only
            try:
                sock.bind(str(path))
            finally:
                os.umask(old)
            sock.listen(8)
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot listen on this socket ({exc.strerror or exc})", path=str(path)) from None
        sock.settimeout(0.5)                    # so that stop() is noticed
        self._sock = sock

    def serve_forever(self) -> None:
        if self._sock is None:
            self.bind()
        try:
            while not self.stopping.is_set():
                try:
                    conn, _ = self._sock.accept()
                except socket.timeout:
                    continue
                if not self._slots.acquire(blocking=False):
                    conn.close()                # too many clients at once: they work alone
                    continue
                threading.Thread(target=self._serve_connection, args=(conn,), daemon=True,
                                 name="ragecg-serve-conn").start()
        finally:
            self.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        """One client, in its own thread: an idle or slow client cannot hold up the others (its
        request must arrive within `server_request_timeout_s`; the job then waits for the model)."""
        try:
            with conn:
                conn.settimeout(self.settings.server_request_timeout_s)
                self._handle(conn)
        finally:
            self._slots.release()

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self.socket_path.unlink(missing_ok=True)

    def _handle(self, conn: socket.socket) -> None:
        try:
            request = next(read_messages(conn), None)
            if not isinstance(request, dict):
                return
            if request.get("op") == "diagnose":
                if request.get("fingerprint") != self.fingerprint:
                    send_message(conn, {"mismatch": True})
                    return
                conn.settimeout(self.settings.server_request_timeout_s)   # each send to the client
                with self._job_lock:
                    self._diagnose(conn, request.get("job") or {})
        except (OSError, ValueError) as exc:    # a client that went away or sent garbage: next one
            self.log(f"connection dropped ({type(exc).__name__})")

    def _diagnose(self, conn: socket.socket, job_fields: dict) -> None:
        t = time.perf_counter()
        try:
            job = DiagnoseJob(**job_fields)
        except TypeError:
            send_message(conn, {"err": "ragecg: malformed request"})
            send_message(conn, {"exit": 2})
            return
        resources = self.resources.variant(use_llm=not job.no_llm, use_retrieval=not job.no_retrieval)
        try:
            rc = run_diagnose_job(job, resources, lambda text: send_message(conn, {"out": text}),
                                  lambda text: send_message(conn, {"err": f"ragecg: {text}"}))
        except RagecgError as exc:
            send_message(conn, {"err": f"ragecg: {exc}"})
            rc = exc.exit_code
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the server (no traceback: patient data)
            send_message(conn, {"err": f"ragecg: internal error ({type(exc).__name__}); rerun with --local and "
                                "RAGECG_DEBUG=1 for a traceback"})
            rc = 1
        self.jobs += 1
        send_message(conn, {"exit": rc})
        self.log(f"job {self.jobs}: {len(job.paths)} record(s), exit {rc}, {time.perf_counter() - t:.2f} s")


def warm_up(resources) -> None:
    """Wait for the model and index, and import the signal stack by measuring the shipped example
    record (criteria only), so that the first job runs at the speed of the later ones."""
    example = REPO_ROOT / "examples" / "example_sinus.hea"
    if example.is_file():                       # while the model and index load in their thread
        no_models = Resources(settings=resources.settings, use_llm=False, use_retrieval=False,
                              _docs=resources.docs)
        diagnose_ecg(read_record(example), no_models)
    resources.wait_loaded()                     # a model or index error stops the server here
