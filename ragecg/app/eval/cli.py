"""`ragecg evaluate`: batch evaluation on PTB-XL (or a Challenge 2021 folder), resumable.

Results on stdout (a table, or JSON with --json); progress (records/s, ETA, failures) on stderr.
Exit 0 done, 6 when some records failed (listed), 3 bad input folders, 2 usage.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from ragecg.errors import EXIT_PARTIAL, InputError, UsageError
from ragecg.version import __version__

from . import TASKS

DEFAULT_TASKS = ",".join(TASKS)


def _err(msg: str) -> None:
    print(f"ragecg: {msg}", file=sys.stderr)


def _parse_folds(text: str) -> list[int]:
    try:
        folds = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"--folds must be comma-separated fold numbers 1-10 (got {text!r})") from None
    if not folds or any(f < 1 or f > 10 for f in folds):
        raise UsageError(f"--folds must be comma-separated fold numbers 1-10 (got {text!r})")
    return folds


def _parse_tasks(text: str) -> list[str]:
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if not tasks or bad:
        raise UsageError(f"unknown task(s) {', '.join(bad) or '(none)'}; choose from {DEFAULT_TASKS}")
    return tasks


def command_line() -> str:
    argv = list(sys.argv)
    prog = "ragecg" if not argv or argv[0].endswith(("cli.py", "ragecg", "__main__.py")) else Path(argv[0]).name
    return shlex.join([prog, *argv[1:]])


def _git_commit() -> str | None:
    from ragecg.settings import REPO_ROOT
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return (out.stdout.strip() + ("+modified" if dirty.stdout.strip() else "")) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def source_hash() -> str:
    """sha256 (16 hex) over the package's .py, .json and .csv files: identifies uncommitted code."""
    import hashlib

    from ragecg.settings import PACKAGE_ROOT
    h = hashlib.sha256()
    for p in sorted(PACKAGE_ROOT.rglob("*")):
        if p.suffix in (".py", ".json", ".csv") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(PACKAGE_ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def versions_info(settings, data_files: dict[str, Path]) -> dict:
    import platform

    import numpy
    import sklearn

    from ragecg.knowledge import knowledge_hash, load_criteria_documents
    from ragecg.pipeline import Resources
    from .report import sha256_file

    info = {"ragecg": __version__, "git commit": _git_commit(), "python": platform.python_version(),
            "numpy": numpy.__version__, "scikit-learn": sklearn.__version__}
    try:
        info["knowledge hash"] = knowledge_hash(load_criteria_documents(settings),
                                                Resources(settings=settings, use_llm=False, use_retrieval=False).logic)
    except Exception as exc:  # noqa: BLE001 — provenance must not stop a report
        info["knowledge hash"] = f"unavailable ({type(exc).__name__})"
    info["ragecg source sha256"] = source_hash()
    for name, path in data_files.items():
        info[f"sha256 {name}"] = sha256_file(path)
    return info


class _Progress:
    """rich progress on stderr: records/s, ETA, failures."""

    def __init__(self, total: int, quiet: bool):
        self.failed = 0
        self.done = 0
        self._p = None
        if quiet or total == 0:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self._p = Progress(TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]} rec/s"), TextColumn("ETA"), TimeRemainingColumn(),
                           TimeElapsedColumn(), TextColumn("[red]failed {task.fields[failed]}"),
                           console=Console(stderr=True), transient=False)
        self._task = self._p.add_task("records", total=total, rate="–", failed=0)
        self._p.start()
        import time
        self._t0 = time.perf_counter()

    def row(self, row: dict) -> None:
        self.done += 1
        if row["status"] != "ok":
            self.failed += 1
        if self._p is not None:
            import time
            rate = self.done / max(time.perf_counter() - self._t0, 1e-9)
            self._p.update(self._task, advance=1, rate=f"{rate:.2f}", failed=self.failed)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


def _counts_by_fold(items, missing, rows) -> dict:
    by_id = {r["record_id"]: r for r in rows}
    counts: dict = {}
    for it in items + missing:
        c = counts.setdefault(str(it.get("fold") or "all"), {"listed": 0, "missing": 0, "ok": 0, "failed": 0})
        c["listed"] += 1
    for it in missing:
        counts[str(it.get("fold") or "all")]["missing"] += 1
    for it in items:
        r = by_id.get(it["record_id"])
        if r is not None:
            counts[str(it.get("fold") or "all")]["ok" if r["status"] == "ok" else "failed"] += 1
    return dict(sorted(counts.items(), key=lambda kv: (len(kv[0]), kv[0])))


def _throughput(result, workers: int, scheduler: str | None) -> dict | None:
    import numpy as np
    if not result.n_new:
        return None
    new = result.rows[-result.n_new:]
    stages = {}
    for key in ("read_s", "quality_s", "measure_s", "criteria_s", "retrieve_s", "compose_s", "total_s"):
        vals = [r["timings_s"][key] for r in new if key in r.get("timings_s", {})]
        if vals:
            stages[key] = round(float(np.median(vals)), 4)
    return {"records": result.n_new, "wall_s": result.wall_s, "records_per_s": result.records_per_s,
            "workers": scheduler or workers, "median_stage_s": stages}


def evaluate_command(
    ptbxl: Optional[Path] = typer.Option(None, "--ptbxl", help="PTB-XL folder (default: DATA_DIR/ptbxl)."),
    ptbxl_plus: Optional[Path] = typer.Option(None, "--ptbxl-plus", help="PTB-XL+ folder with labels/12sl_statements.csv "
                                                                         "(default: DATA_DIR/ptbxl_plus)."),
    folds: str = typer.Option("10", "--folds", help="strat_fold(s) to evaluate, e.g. 10 or 9,10 (fold 10 is the test fold)."),
    tasks: str = typer.Option(DEFAULT_TASKS, "--tasks", help="Comma-separated PTB-XL tasks."),
    no_llm: bool = typer.Option(False, "--no-llm", help="Criteria only: no LLM."),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Skip knowledge retrieval (criteria only)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N selected records (by ecg_id)."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="A fixed random sample of N records (see --seed)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample."),
    workers: int = typer.Option(1, "--workers", min=1, help="Local worker processes."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Run on a Dask cluster: tcp://HOST:PORT."),
    sampling_rate: int = typer.Option(100, "--sampling-rate", help="100 (records100) or 500 (records500)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (resumed when it exists). "
                                                           "Default: runs/<data set>_<folds>_<rate>_<mode>."),
    compare: Optional[tuple[Path, Path]] = typer.Option(None, "--compare", help="Compare two run folders: B - A."),
    challenge: Optional[Path] = typer.Option(None, "--challenge", help="Evaluate a PhysioNet Challenge 2021 folder instead."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples for 95% CIs (0: none)."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate on PTB-XL (tasks of Strodthoff et al.) with the GE 12SL baseline, resumable; or compare runs."""
    from ragecg.settings import get_settings

    settings = get_settings()
    task_names = _parse_tasks(tasks)
    if compare:
        from .compare import compare_run_dirs, render_compare
        res = compare_run_dirs(compare[0], compare[1], tasks=task_names, ptbxl_dir=ptbxl, n_boot=bootstrap)
        print(json.dumps(res, indent=1) if json_out else render_compare(res))
        return
    if sampling_rate not in (100, 500):
        raise UsageError(f"--sampling-rate must be 100 or 500 (got {sampling_rate})")
    if scheduler and workers > 1:
        raise UsageError("--workers and --scheduler exclude each other (the cluster decides the workers)")
    if scheduler and not scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
        raise UsageError(f"--scheduler must be an address such as tcp://HOST:PORT (got {scheduler!r})")
    fold_list = _parse_folds(folds)

    from .labels import load_database, load_statements, task_definition
    from .runner import read_predictions, run_items, select_ptbxl_items
    from .scoring import evaluate_systems

    missing: list[dict] = []
    twelvesl = None
    data_files: dict[str, Path] = {}
    if challenge is not None:
        from .challenge import challenge_items, challenge_task
        items, labels_of = challenge_items(challenge)
        task_defs = [challenge_task()]
        dataset, data_dir, name = "challenge", Path(challenge), f"challenge_{Path(challenge).name}"
        all_codes = None
    else:
        data_dir = Path(ptbxl or settings.data_dir / "ptbxl")
        db = load_database(data_dir)
        statements = load_statements(data_dir)
        task_defs = [task_definition(t, statements) for t in task_names]
        items, missing = select_ptbxl_items(db, data_dir, folds=fold_list, sampling_rate_hz=sampling_rate,
                                            sample=sample, seed=seed, limit=limit)
        labels_of = {str(int(eid)): codes for eid, codes in db["scp_codes"].items()}
        dataset, name = "ptbxl", "ptbxl_fold" + "-".join(map(str, fold_list)) + f"_{sampling_rate}hz"
        all_codes = list(statements.index)
        data_files = {"ptbxl_database.csv": data_dir / "ptbxl_database.csv"}
        plus_dir = Path(ptbxl_plus or settings.data_dir / "ptbxl_plus")
        from .twelvesl import STATEMENTS_PATH, load_12sl_statements, twelvesl_rows
        if ptbxl_plus is not None or (plus_dir / STATEMENTS_PATH).is_file():
            stm = load_12sl_statements(plus_dir)
            ids = [it["ecg_id"] for it in items]
            twelvesl = {str(k): v for k, v in twelvesl_rows(stm, ids, all_codes).items()}
            data_files["12sl_statements.csv"] = plus_dir / STATEMENTS_PATH
        else:
            _err(f"PTB-XL+ 12SL statements not found under {plus_dir}; no 12SL baseline in this run")
        if sample is not None:
            name += f"_sample{sample}_seed{seed}"
        if limit is not None:
            name += f"_limit{limit}"
    mode = "criteria-only" if no_llm else "llm"
    run_dir = Path(out) if out is not None else Path("runs") / f"{name}_{mode.replace('-', '_')}"
    if not items:
        raise InputError(f"no record of the selection is on disk ({len(missing)} listed but absent)", path=str(data_dir))
    if missing:
        _err(f"{len(missing)} selected record(s) are listed in the metadata but absent on disk; "
             f"evaluating the {len(items)} present")

    config = {"dataset": dataset, "data_dir": str(data_dir), "folds": fold_list if dataset == "ptbxl" else None,
              "sampling_rate_hz": sampling_rate if dataset == "ptbxl" else None, "sample": sample, "seed": seed,
              "limit": limit, "use_llm": not no_llm, "use_retrieval": not no_retrieval,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "command": command_line()}
    from .runner import prepare_run_dir
    prepare_run_dir(run_dir, config, len(items))
    previous = (run_dir / "commands.log").read_text(encoding="utf-8").splitlines() if (run_dir / "commands.log").is_file() else []
    with open(run_dir / "commands.log", "a", encoding="utf-8") as fh:
        fh.write(config["command"] + "\n")

    done_before = {r["record_id"] for r in read_predictions(run_dir)}
    todo = sum(1 for it in items if it["record_id"] not in done_before)
    if done_before:
        _err(f"resuming {run_dir}: {len(items) - todo} record(s) already done, {todo} to go")
    progress = _Progress(todo, quiet=False)
    try:
        result = run_items(items, run_dir, config, settings=settings, workers=workers, scheduler=scheduler,
                           on_row=progress.row)
    finally:
        progress.close()

    metrics, arrays = evaluate_systems(result.rows, labels_of, task_defs, twelvesl=twelvesl, n_boot=bootstrap, seed=0)
    failures = [{"record_id": r["record_id"], "error_kind": r.get("error_kind"), "error": r["error"]} for r in result.failed]
    info = {"dataset": "PTB-XL" if dataset == "ptbxl" else f"Challenge 2021 folder {Path(challenge).name}",
            "command": config["command"], "previous_commands": previous,
            "mode": mode + ("" if not no_retrieval else ", no retrieval"),
            "sampling_rate_hz": config["sampling_rate_hz"], "folds": config["folds"],
            "selection": f"sample={sample} seed={seed} limit={limit}", "n_boot": bootstrap, "seed": 0,
            "versions": versions_info(settings, data_files),
            "counts": _counts_by_fold(items, missing, result.rows), "failures": failures,
            "missing": [m["record_id"] for m in missing], "throughput": _throughput(result, workers, scheduler),
            "twelvesl": twelvesl is not None}
    from .report import write_report
    write_report(run_dir, info, metrics, arrays)
    with open(run_dir / "failures.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["record_id", "error_kind", "error"])
        w.writeheader()
        w.writerows(failures)

    if json_out:
        print(json.dumps({"run_dir": str(run_dir), "info": info, "metrics": metrics}, indent=1))
    else:
        from .report import summary_table
        print("\n".join(summary_table(metrics)))
        print(f"\nreport: {run_dir / 'report.md'}  {run_dir / 'report.html'}")
    if failures:
        for f in failures[:20]:
            _err(f"failed {f['record_id']}: {f['error']}")
        _err(f"{len(failures)} of {len(items)} record(s) failed (all listed in {run_dir / 'failures.csv'})")
        raise typer.Exit(EXIT_PARTIAL)
