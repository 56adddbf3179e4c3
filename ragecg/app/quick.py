"""The quick path of `ragecg diagnose`: a plain served request (record files, --json / --format,
--no-llm, --no-retrieval) is handed to a running `ragecg serve` before the command line (typer,
rich) is imported, which was most of a served request's wall time without the LLM. Anything else,
or no usable server, goes the ordinary way (`ragecg.app.cli`), with the same output and exit codes.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ragecg.errors import RagecgError
from ragecg.settings import get_settings

from .client import DiagnoseJob, diagnose_on_server, note_server_tried

FORMATS = ("text", "md", "html", "json", "fhir")     # app/cli.py's FORMATS (tests/test_serve.py checks)
FLAGS = {"--json": "json_out", "--no-llm": "no_llm", "--no-retrieval": "no_retrieval"}


def plain_diagnose_job(argv: list[str]) -> DiagnoseJob | None:
    """The job of `ragecg diagnose ARGS` when ARGS are only record files and the flags above (the
    job `app.cli.diagnose` would build from them); None for anything else (other options, folders,
    --help, a bad --format: the ordinary command line handles and reports those)."""
    if not argv or argv[0] != "diagnose":
        return None
    flags = {"json_out": False, "no_llm": False, "no_retrieval": False}
    fmt = "text"
    paths: list[str] = []
    rest = iter(argv[1:])
    for arg in rest:
        if arg in FLAGS:
            flags[FLAGS[arg]] = True
        elif arg == "--format" or arg.startswith("--format="):
            value = arg.split("=", 1)[1] if "=" in arg else next(rest, None)
            if value is None or value.lower() not in FORMATS:
                return None
            fmt = value.lower()
        elif arg.startswith("-") or not arg:
            return None
        else:
            paths.append(arg)
    if not paths or any(Path(p).is_dir() for p in paths):
        return None
    return DiagnoseJob(paths=[str(Path(p).resolve()) for p in paths], fmt="json" if flags["json_out"] else fmt,
                       out=None, paper="a4", read_opts={}, no_llm=flags["no_llm"],
                       no_retrieval=flags["no_retrieval"], prior=None)


def served_diagnose(argv: list[str]) -> int | None:
    """The exit code of `ragecg ARGV` answered by `ragecg serve` (its output printed here), or None:
    not a plain `diagnose`, settings that do not load, RAGECG_USE_SERVER=never, or no server with
    these settings and code (then the ordinary command line does not ask the server again)."""
    job = plain_diagnose_job(argv)
    if job is None:
        return None
    try:
        settings = get_settings()
    except Exception:                 # the ordinary command line reports it
        return None
    if settings.server.use_server != "auto":
        return None
    try:
        rc = diagnose_on_server(settings, job)
    except RagecgError as exc:        # the server went away mid-job: as app.cli.main reports it
        print(f"ragecg: {exc}", file=sys.stderr)
        return exc.exit_code
    if rc is None:
        note_server_tried()
    return rc
