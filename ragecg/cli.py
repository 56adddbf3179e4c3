"""`python -m ragecg.cli` and the `ragecg` console script. A plain `ragecg diagnose` that a running
`ragecg serve` answers is forwarded before the command line (typer, rich) is imported
(`ragecg.app.quick`); every other command, and `diagnose` without a usable server, runs
`ragecg.app.cli`, where the command line lives."""
import os
import sys

from ragecg.app.quick import served_diagnose


def entry() -> None:
    """The console script: the quick served path, else `ragecg.app.cli.entry`."""
    rc = served_diagnose(sys.argv[1:])
    if rc is None:
        from ragecg.app.cli import entry as full_entry
        full_entry()
        return
    try:                                     # as app.cli.entry: no interpreter teardown after the answer
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(rc)


def __getattr__(name: str):
    """`from ragecg.cli import app, main` (the typer app and its main), imported on first use."""
    if name in ("app", "main"):
        from ragecg.app import cli
        return getattr(cli, name)
    raise AttributeError(f"module 'ragecg.cli' has no attribute {name!r}")


__all__ = ["entry"]

if __name__ == "__main__":
    entry()
