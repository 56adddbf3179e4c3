"""Run the real command line (`ragecg.cli:main`, the console-script entry point) in a subprocess.

`run_cli` starts one process per call (exactly what a user runs). `run_batch` starts ONE process that
calls `main()` once per argument list, capturing each call's stdout, stderr and exit status: the same
code path without paying the ~2 s import per call, so the whole corpus runs in CI time. An exception
that escapes `main()` is recorded as rc None with its type (that would be a traceback for a user).

    python -m tests.reliability.clirun < jobs.json > results.json
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "ragecg.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def run_batch(jobs: list[list[str]], env_extra: dict | None = None, timeout: int = 900) -> list[dict]:
    """Each job's {"args", "rc", "stdout", "stderr", "escaped"} from one subprocess."""
    env = {**os.environ, **(env_extra or {})}
    res = subprocess.run([sys.executable, "-m", "tests.reliability.clirun"], input=json.dumps(jobs),
                         capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"batch runner failed (rc {res.returncode}): {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def _run_jobs(jobs: list[list[str]]) -> list[dict]:
    from ragecg.app.cli import main

    out = []
    for args in jobs:
        so, se = io.StringIO(), io.StringIO()
        rc, escaped = None, None
        sys.argv = ["ragecg", *args]
        with redirect_stdout(so), redirect_stderr(se):
            try:
                main()
                rc = 0
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException as exc:  # noqa: BLE001 - an escaped exception is what we look for
                escaped = type(exc).__name__
        out.append({"args": args, "rc": rc, "stdout": so.getvalue(), "stderr": se.getvalue(), "escaped": escaped})
    return out


if __name__ == "__main__":
    jobs = json.load(sys.stdin)
    results = _run_jobs(jobs)
    sys.__stdout__.write(json.dumps(results))
