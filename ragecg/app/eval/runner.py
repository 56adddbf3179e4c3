"""Resumable batch runs: one prediction row per record in RUN_DIR/predictions.jsonl.

* Each row is written, flushed and fsynced as soon as its record is done, so a kill loses at
  most the records in flight. A rerun with the same RUN_DIR skips the record ids already there
  (no duplicates) and tolerates a torn last line (it is cut off before appending).
* RUN_DIR/run.json holds the settings that decide the rows (data set, folds, sampling rate,
  sample/limit, LLM/retrieval on or off); resuming with other settings is refused.
* Work runs in this process (workers=1), in a process pool whose initializer builds `Resources`
  once per process (workers>1), or on an existing Dask distributed cluster (`scheduler`),
  in batches, with `Resources` cached once per worker process. The rows are the same either way.
* `InputError` / `UnusableSignalError` (and any other exception) make a failed row with its reason;
  the run goes on.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ragecg.errors import InputError, RagecgError, UnusableSignalError, UsageError
from ragecg.pipeline import Resources, diagnose_ecg
from ragecg.reading import read_record

PREDICTIONS = "predictions.jsonl"
RUN_CONFIG = "run.json"
BYTES_PER_ROW = 6_000           # a row is about 3-4 kB (two score dicts of 71 codes)
REPORT_BYTES = 20_000_000       # report.html with embedded figures, PNGs, metrics.json
PRELOAD_MODULES = ("ragecg.pipeline", "ragecg.signal.beats", "neurokit2")  # imported once by the forkserver
CONFIG_KEYS = ("dataset", "folds", "sampling_rate_hz", "sample", "seed", "limit", "use_llm", "use_retrieval")


# ------------------------------------------------------------------ one record
def diagnose_item(item: dict, resources) -> dict:
    """Prediction row of one work item {record_id, path, ecg_id?, fold?}; never raises."""
    row = {"record_id": item["record_id"], "ecg_id": item.get("ecg_id"), "fold": item.get("fold"),
           "status": "ok", "error": None, "error_kind": None}
    t0 = time.perf_counter()
    try:
        ecg = read_record(item["path"])
        read_s = time.perf_counter() - t0
        report = diagnose_ecg(ecg, resources)
    except InputError as exc:
        row.update(status="failed", error=str(exc), error_kind="input")
    except UnusableSignalError as exc:
        row.update(status="failed", error=str(exc), error_kind="unusable")
    except Exception as exc:  # noqa: BLE001 — one bad record must not stop a batch
        # The type and the code location only: an exception message could quote file content.
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno} {tb[-1].name}" if tb else "?"
        row.update(status="failed", error=f"internal error ({type(exc).__name__} at {where})", error_kind="internal")
    else:
        d = report.diagnosis
        row.update(sampling_rate_hz=report.sampling_rate_hz, mode=d.mode, llm_status=d.llm.status,
                   codes=[c.code for c in d.codes],
                   borderline=[c.code for c in d.borderline],
                   category=d.category.name if d.category is not None else None,
                   category_because=list(d.category.because) if d.category is not None else [],
                   scores={k: round(float(v), 6) for k, v in sorted(d.scores.items())},
                   criteria_scores={k: round(float(v), 6) for k, v in sorted(report.candidate_scores.items())},
                   timings_s={**report.timings_s, "read_s": round(read_s, 4)})
    row.setdefault("timings_s", {})["total_s"] = round(time.perf_counter() - t0, 4)
    return row


# ------------------------------------------------------------------ workers
_WORKER: dict = {}
_WORKER_LOCK = threading.Lock()


def make_resources(settings, use_llm: bool, use_retrieval: bool):
    return Resources(settings=settings, use_llm=use_llm, use_retrieval=use_retrieval)


def _init_worker(settings, use_llm: bool, use_retrieval: bool) -> None:
    """ProcessPoolExecutor initializer: Resources once per process."""
    _WORKER["resources"] = make_resources(settings, use_llm, use_retrieval)


def _pool_task(item: dict) -> dict:
    return diagnose_item(item, _WORKER["resources"])


def _dask_batch(items: list[dict], settings, use_llm: bool, use_retrieval: bool) -> list[dict]:
    """Dask task: a batch of items; Resources cached per worker process and settings."""
    key = ("dask", settings.model_dump_json(), use_llm, use_retrieval)
    with _WORKER_LOCK:
        res = _WORKER.get(key)
        if res is None:
            res = _WORKER[key] = make_resources(settings, use_llm, use_retrieval)
    return [diagnose_item(it, res) for it in items]


# ------------------------------------------------------------------ predictions file
def read_predictions(run_dir: Path, *, repair: bool = False) -> list[dict]:
    """Rows of RUN_DIR/predictions.jsonl (first row per record id). A torn last line is ignored,
    and cut off the file when `repair`; a corrupt line elsewhere is an InputError."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1          # bytes after the last newline: a torn write
    rows, seen = [], set()
    for i, line in enumerate(data[:good_end].split(b"\n")[:-1]):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InputError(f"{PREDICTIONS} line {i + 1} is corrupt; remove that line to resume",
                             path=str(run_dir)) from None
        if row.get("record_id") not in seen:
            seen.add(row.get("record_id"))
            rows.append(row)
    if repair and good_end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return rows


class PredictionWriter:
    """Appends one JSON line per row; flush + fsync per row."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / PREDICTIONS
        self._fh = open(self.path, "ab")

    def write(self, row: dict) -> None:
        self._fh.write(json.dumps(row, separators=(",", ":")).encode("utf-8") + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


# ------------------------------------------------------------------ run directory
_RUN_LOCKS: dict[str, object] = {}        # run folder -> its open, locked .lock file (held until exit)


def lock_run_dir(run_dir: Path) -> None:
    """Take RUN_DIR's lock for the rest of this process (an flock on RUN_DIR/.lock, released by the OS
    when the process ends, killed or not): a second `evaluate` on the same folder at the same time
    would append the same records twice. InputError (exit 3) when another process holds it."""
    key = str(Path(run_dir).resolve())
    if key in _RUN_LOCKS:
        return
    try:
        import fcntl
    except ImportError:          # Windows: no advisory lock
        return
    fh = open(Path(run_dir) / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise InputError("run folder is in use by another `ragecg evaluate` (wait for it to finish, or use "
                         "another --out)", path=str(run_dir)) from None
    _RUN_LOCKS[key] = fh


def prepare_run_dir(run_dir: Path, config: dict, n_remaining: int) -> None:
    """Create RUN_DIR, lock it, check it is writable with enough free disk, and check/record run.json."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"run folder is not writable ({exc.strerror or type(exc).__name__})", path=str(run_dir)) from None
    need = n_remaining * BYTES_PER_ROW + REPORT_BYTES
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise InputError(f"not enough free disk for the run: {free / 1e6:.0f} MB free, about {need / 1e6:.0f} MB needed",
                         path=str(run_dir))
    lock_run_dir(run_dir)                 # before run.json and predictions are read or written
    cfg_path = run_dir / RUN_CONFIG
    if cfg_path.is_file():
        try:
            old = json.loads(cfg_path.read_text(encoding="utf-8"))
        except ValueError:
            raise InputError(f"{RUN_CONFIG} is corrupt", path=str(run_dir)) from None
        diff = [k for k in CONFIG_KEYS if old.get(k) != config.get(k)]
        if diff:
            raise UsageError(f"{run_dir}: holds a run with other settings ({', '.join(diff)}); "
                             "use another --out or the same settings to resume")
    else:
        cfg_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


# ------------------------------------------------------------------ the run
@dataclass
class RunResult:
    rows: list[dict]                      # every row in RUN_DIR (resumed ones included)
    n_new: int = 0
    n_resumed: int = 0
    wall_s: float = 0.0
    failed: list[dict] = field(default_factory=list)

    @property
    def records_per_s(self) -> float | None:
        return self.n_new / self.wall_s if self.n_new and self.wall_s > 0 else None


def _batches(items: list[dict], size: int) -> list[list[dict]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def iter_rows(items: list[dict], *, settings, use_llm: bool, use_retrieval: bool, workers: int = 1,
              scheduler: str | None = None, batch_size: int = 8, resources=None) -> Iterable[dict]:
    """Rows of `items` as they finish (order not kept for parallel runs)."""
    if not items:
        return
    if scheduler:
        from distributed import Client, as_completed as dask_completed
        try:
            client = Client(scheduler, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot connect to the Dask scheduler ({type(exc).__name__})", path=scheduler) from None
        try:
            with client.as_current():
                futures = client.map(_dask_batch, _batches(items, batch_size), settings=settings, use_llm=use_llm,
                                     use_retrieval=use_retrieval, pure=False)
                for fut in dask_completed(futures):
                    yield from fut.result()
        finally:
            client.close()
    elif workers > 1:
        import multiprocessing as mp
        from concurrent.futures.process import BrokenProcessPool
        # forkserver: a clean single-threaded server imports the pipeline once and forks the
        # workers (no fork of this process, whose threads need not survive a fork; no per-worker
        # re-import as with spawn, which takes seconds per worker on a busy machine).
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD_MODULES))
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(settings, use_llm, use_retrieval)) as pool:
            futures = [pool.submit(_pool_task, it) for it in items]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            except BrokenProcessPool:
                raise RagecgError("a worker process died (out of memory, or a crash in a native library); the "
                                  "finished records are saved: rerun the same command to resume, with --workers 1 "
                                  "to see which record fails") from None
            finally:
                for f in futures:
                    f.cancel()
    else:
        res = resources or make_resources(settings, use_llm, use_retrieval)
        for it in items:
            yield diagnose_item(it, res)


def run_items(items: list[dict], run_dir: Path, config: dict, *, settings, workers: int = 1,
              scheduler: str | None = None, on_row: Callable[[dict], None] | None = None,
              resources=None) -> RunResult:
    """Run every item not yet in RUN_DIR; return all rows of the run (old and new)."""
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, config, len(items))  # settings check before touching predictions
    old = read_predictions(run_dir, repair=True)
    wanted = {it["record_id"] for it in items}
    done = {r["record_id"] for r in old}
    todo = [it for it in items if it["record_id"] not in done]
    rows = [r for r in old if r["record_id"] in wanted]
    result = RunResult(rows=rows, n_resumed=len(rows))
    writer = PredictionWriter(run_dir)
    t0 = time.perf_counter()
    try:
        for row in iter_rows(todo, settings=settings, use_llm=config["use_llm"], use_retrieval=config["use_retrieval"],
                             workers=workers, scheduler=scheduler, resources=resources):
            writer.write(row)
            result.rows.append(row)
            result.n_new += 1
            if on_row:
                on_row(row)
    finally:
        writer.close()
        result.wall_s = time.perf_counter() - t0
    result.failed = [r for r in result.rows if r["status"] != "ok"]
    return result


# ------------------------------------------------------------------ PTB-XL work items
def select_ptbxl_items(db, ptbxl_dir: Path, *, folds: list[int], sampling_rate_hz: int,
                       sample: int | None = None, seed: int = 0, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    """Work items of the chosen folds (sorted by ecg_id), then a fixed random sample, then a limit.
    Returns (items on disk, records listed in the metadata but absent on disk)."""
    col = "filename_lr" if sampling_rate_hz == 100 else "filename_hr"
    sel = db[db.strat_fold.isin(folds)].sort_index()
    ids = sel.index.to_numpy()
    if sample is not None and sample < len(ids):
        ids = np.sort(np.random.default_rng(seed).choice(ids, size=sample, replace=False))
    if limit is not None:
        ids = ids[:limit]
    items, missing = [], []
    for eid in ids:
        rel = sel.at[eid, col]
        path = Path(ptbxl_dir) / rel
        item = {"record_id": str(int(eid)), "ecg_id": int(eid), "fold": int(sel.at[eid, "strat_fold"]),
                "path": str(path.with_name(path.name + ".hea"))}
        (items if Path(item["path"]).is_file() else missing).append(item)
    return items, missing

