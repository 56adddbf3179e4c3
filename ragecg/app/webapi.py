"""`ragecg serve --http [HOST:]PORT`: a FastAPI app on uvicorn around one resident pipeline
(`pipeline.Resources`, as `ragecg serve` keeps for the Unix socket), and the browser viewer at `/`.

API (OpenAPI schema at /openapi.json, docs/http.md): POST /v1/diagnose (multipart upload: one file of
any supported format, or the files of one WFDB record), GET /v1/reports/{id} (json, html, pdf, fhir,
md), /v1/reports/{id}/signal (samples for the viewer), /v1/reports/{id}/comparison/{prior_id} (serial
comparison), DELETE /v1/reports/{id}, GET /v1/health, /v1/version. Errors are RFC 9457 problem+json
carrying the command line's exit code (400 bad input, 422 unusable signal, 503 model not ready or queue
full, with Retry-After).

Safety: loopback unless told otherwise, and then a bearer token (RAGECG_API_TOKEN) is required;
uploads are limited in size (Content-Length) and duration, pass through a private temporary folder only
while they are read (memory-backed /dev/shm where it exists, or the run folder the user names) and are
deleted at once; reports live in memory (and the run folder, when named) and are deleted after
RAGECG_HTTP_RETENTION_S. Logs carry report ids, sizes, durations and statuses, never file names or
file contents. One worker thread runs the pipeline: requests queue for the one model, a bounded queue
answers 503 when full.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable, Literal, Optional

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from starlette.formparsers import MultiPartParser

from ragecg.errors import InputError, ModelError, RagecgError, UnusableSignalError, UsageError
from ragecg.knowledge import knowledge_hash
from ragecg.llm import list_backends
from ragecg.pipeline import Resources, diagnose_ecg
from ragecg.reading import read_record
from ragecg.render import compare_reports, device_comparison, render, render_comparison_markdown, with_comparison_html
from ragecg.settings import Settings
from ragecg.values import STANDARD_LEADS
from ragecg.version import __version__

from .jobs import check_writable_folder
from .options import read_options
from .serve import warm_up

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_VERSION = "1"
PROBLEM_JSON = "application/problem+json"
REPORT_FORMATS = ("json", "html", "pdf", "fhir", "md")
MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf",
               "fhir": "application/fhir+json", "md": "text/markdown; charset=utf-8"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+()\- ]{0,127}$")
# The viewer: scripts and styles from this server only; reports rendered as HTML: no script at all.
CSP_VIEWER = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
              "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
CSP_REPORT = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


def log(msg: str) -> None:
    print(f"ragecg http: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- problems
class Problem(Exception):
    """An RFC 9457 problem: status, a short title, a one-line detail (no file content), the CLI exit code."""

    def __init__(self, status: int, title: str, detail: str | None = None, *, slug: str = "error",
                 exit_code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.slug = status, title, detail, slug
        self.exit_code, self.headers = exit_code, headers or {}

    def response(self, instance: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {"type": f"urn:ragecg:problem:{self.slug}", "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.exit_code is not None:
            body["exit_code"] = self.exit_code
        return JSONResponse(body, status_code=self.status, headers=self.headers, media_type=PROBLEM_JSON)


def problem_from_error(exc: RagecgError) -> Problem:
    """The command line's exit codes as HTTP statuses: 2/3 -> 400, 4 -> 422, 5 -> 503."""
    if isinstance(exc, UnusableSignalError):
        return Problem(422, "Signal unusable", str(exc), slug="signal-unusable", exit_code=exc.exit_code)
    if isinstance(exc, ModelError):
        return Problem(503, "Model or index not available", str(exc), slug="model-unavailable",
                       exit_code=exc.exit_code, headers={"Retry-After": "60"})
    if isinstance(exc, InputError):
        return Problem(400, "Input unreadable or invalid", str(exc), slug="input-invalid", exit_code=exc.exit_code)
    return Problem(400, "Bad request", str(exc), slug="bad-request", exit_code=exc.exit_code)


# --------------------------------------------------------------------------------------------- store
@dataclass
class StoredReport:
    id: str
    report: Any                       # report.Report
    ecg: Any                          # record.Ecg (the signal, for the plot, the PDF and the viewer)
    created_s: float                  # time.monotonic()
    comparison: Any | None = None     # serial.SerialComparison with the prior named at upload


class ReportStore:
    """Reports by unguessable id, in memory (and `folder`/<id>/report.json when a run folder is named),
    deleted `retention_s` after they were made; at most `max_reports` (the oldest go first)."""

    def __init__(self, retention_s: float, max_reports: int, folder: Path | None = None):
        self.retention_s, self.max_reports, self.folder = retention_s, max(1, max_reports), folder
        self._items: dict[str, StoredReport] = {}
        self._lock = threading.Lock()

    def put(self, report, ecg, comparison=None) -> StoredReport:
        item = StoredReport(id=secrets.token_urlsafe(16), report=report, ecg=ecg, created_s=time.monotonic(),
                            comparison=comparison)
        if self.folder is not None:
            target = self.folder / item.id
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            (target / "report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        with self._lock:
            self._items[item.id] = item
        self.purge()
        return item

    def get(self, report_id: str) -> StoredReport | None:
        self.purge()
        with self._lock:
            return self._items.get(report_id)

    def delete(self, report_id: str) -> bool:
        with self._lock:
            item = self._items.pop(report_id, None)
        if item is not None and self.folder is not None:
            shutil.rmtree(self.folder / item.id, ignore_errors=True)
        return item is not None

    def purge(self) -> int:
        """Delete expired reports and the oldest beyond `max_reports`; returns how many went."""
        now = time.monotonic()
        with self._lock:
            ids = sorted(self._items, key=lambda k: self._items[k].created_s)
            gone = [k for k in ids if now - self._items[k].created_s > self.retention_s]
            keep = [k for k in ids if k not in gone]
            gone += keep[:max(0, len(keep) - self.max_reports)]
        for k in gone:
            self.delete(k)
        return len(gone)

    def __len__(self) -> int:
        return len(self._items)


# -------------------------------------------------------------------------------------------- worker
class Worker:
    """One thread runs the pipeline (one model): jobs queue; more than `limit` waiting or running get
    503 with Retry-After (the expected wait from the mean job time)."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragecg-http")
        self.pending = 0
        self.mean_job_s = 3.0
        self.done = 0
        self._lock = threading.Lock()

    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.pending * self.mean_job_s))

    async def run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self.pending >= self.limit:
                raise Problem(503, "Too many requests waiting", f"{self.pending} diagnose requests are waiting or "
                              "running; try again later", slug="queue-full",
                              headers={"Retry-After": str(self.retry_after_s())})
            self.pending += 1

        def timed():
            t = time.perf_counter()
            try:
                return fn()
            finally:
                with self._lock:
                    self.done += 1
                    self.mean_job_s += (time.perf_counter() - t - self.mean_job_s) / min(self.done, 20)

        future = self.pool.submit(timed)
        future.add_done_callback(lambda _: self._release())   # also when the client went away
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self.pending -= 1

    def submit(self, fn: Callable[[], Any]):
        return self.pool.submit(fn)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------------------- uploads
def upload_name(raw: str | None) -> str:
    """The file's own name (no folders), checked: letters, digits, space and ._+()- only (400 otherwise)."""
    name = PureWindowsPath(PurePosixPath(raw or "").name).name
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise Problem(400, "Bad file name", "file names may hold letters, digits, spaces and . _ + ( ) - only "
                      "(up to 128 characters)", slug="bad-request", exit_code=2)
    return name


def primary_file(names: list[str]) -> str:
    """The file to read: the only one, or the .hea of a WFDB record's files."""
    if len(names) == 1:
        return names[0]
    headers = [n for n in names if n.lower().endswith(".hea")]
    if len(headers) != 1:
        raise Problem(400, "Several files", "send one record: one file, or one WFDB header (.hea) with its "
                      "signal files", slug="bad-request", exit_code=2)
    return headers[0]


def _upload_parent(run_dir: Path | None) -> str | None:
    if run_dir is not None:
        (run_dir / "uploads").mkdir(parents=True, exist_ok=True, mode=0o700)
        return str(run_dir / "uploads")
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def read_upload(files: dict[str, bytes], read_opts: dict, run_dir: Path | None):
    """Write the uploaded files into a private folder (0700), read the record, delete the folder."""
    folder = Path(tempfile.mkdtemp(prefix="ragecg-upload-", dir=_upload_parent(run_dir)))
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return read_record(folder / primary_file(list(files)), **read_opts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- state
@dataclass
class AppState:
    settings: Settings
    resources: Any                                  # pipeline.Resources
    store: ReportStore
    worker: Worker
    run_dir: Path | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    load_error: RagecgError | None = None
    render_lock: threading.Lock = field(default_factory=threading.Lock)   # matplotlib is not thread-safe
    started_s: float = field(default_factory=time.monotonic)


def _load(state: AppState, warm: bool) -> None:
    """In the worker thread: wait for the model and index (and import the signal stack), then ready."""
    try:
        state.resources.start_loading()         # a no-op when `serve_http` started it already
        if warm:
            warm_up(state.resources)
        else:
            state.resources.wait_loaded()
    except RagecgError as exc:
        state.load_error = exc
        log(f"not ready: {type(exc).__name__}")
        return
    except Exception as exc:  # noqa: BLE001 - reported by /v1/health and every diagnose, no traceback
        state.load_error = ModelError(f"loading failed ({type(exc).__name__})")
        log(f"not ready: {type(exc).__name__}")
        return
    state.ready.set()
    log(f"ready in {time.monotonic() - state.started_s:.1f} s")


def _render(state: AppState, item: StoredReport, fmt: str) -> bytes:
    with state.render_lock:
        if fmt == "pdf":
            return render(item.report, "pdf", item.ecg)
        text = render(item.report, fmt, item.ecg if fmt == "html" else None)
        if item.comparison is not None and fmt in ("md", "html"):
            if fmt == "md":
                text += "\n\n" + render_comparison_markdown(item.comparison)
            else:
                text = with_comparison_html(text, item.comparison)
        return text.encode("utf-8")


def envelope(item: StoredReport) -> dict:
    """What POST /v1/diagnose answers in JSON: the report, device vs ragecg rows, the serial comparison,
    links to the other representations."""
    base = f"/v1/reports/{item.id}"
    return {"id": item.id, "report": item.report.model_dump(mode="json"),
            "device_comparison": [row.model_dump(mode="json") for row in device_comparison(item.report)],
            "comparison": item.comparison.model_dump(mode="json") if item.comparison is not None else None,
            "links": {"self": base, **{f: f"{base}?format={f}" for f in REPORT_FORMATS}, "signal": f"{base}/signal"}}


def signal_json(ecg) -> dict:
    """The samples the viewer draws: microvolts as integers, standard lead order (NaN: null)."""
    uv = np.round(ecg.signals_mv.astype(np.float64) * 1000.0)
    leads = {}
    for i, lead in enumerate(STANDARD_LEADS):
        col = uv[:, i]
        leads[lead] = [None if not math.isfinite(v) else int(v) for v in col.tolist()]
    return {"sampling_rate_hz": ecg.sampling_rate_hz, "units": "uV", "duration_s": round(ecg.duration_s, 3),
            "derived_leads": list(ecg.derived_leads), "missing_leads": list(ecg.missing_leads), "leads": leads}


# ------------------------------------------------------------------------------------------------ app
def create_app(settings: Settings, resources, *, run_dir: Path | None = None, warm: bool = True) -> FastAPI:
    """The app around `resources` (pipeline.Resources). Loading (and, with `warm`, the warm-up on the
    shipped example) runs in the worker thread at start-up; until it is done /v1/diagnose answers 503."""
    limit_bytes = int(settings.http_max_upload_mb * 1024 * 1024)
    # Starlette spools a file part to a temporary file on disk past 1 MB: keep uploads in memory (the
    # Content-Length check below bounds them).
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limit_bytes + 1)
    run_dir = run_dir or settings.http_run_dir
    state = AppState(settings=settings, resources=resources, run_dir=run_dir, worker=Worker(settings.http_queue_size),
                     store=ReportStore(settings.http_retention_s, settings.http_max_reports,
                                       (run_dir / "reports") if run_dir else None))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.worker.submit(lambda: _load(state, warm))

        async def purge_loop():
            while True:
                await asyncio.sleep(max(1.0, min(60.0, settings.http_retention_s / 4)))
                state.store.purge()
        task = asyncio.create_task(purge_loop())
        try:
            yield
        finally:
            task.cancel()
            state.worker.shutdown()
            for k in list(state.store._items):
                state.store.delete(k)

    app = FastAPI(title="ragecg", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Training-free 12-lead ECG interpretation. Machine-generated output: it must be "
                              "over-read by a physician. Errors are RFC 9457 problem+json with the command "
                              "line's exit code.")
    app.state.ragecg = state
    bearer = HTTPBearer(auto_error=False, description="RAGECG_API_TOKEN (required when the server has one)")

    def authorised(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        token = settings.api_token.get_secret_value() if settings.api_token is not None else None
        if not token:
            return
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Problem(401, "Unauthorised", "a valid bearer token is required", slug="unauthorised", exit_code=2,
                          headers={"WWW-Authenticate": 'Bearer realm="ragecg"'})

    # --------------------------------------------------------------- errors as problem+json
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return exc.response(request.url.path)

    @app.exception_handler(RagecgError)
    async def _ragecg_error(request: Request, exc: RagecgError):
        return problem_from_error(exc).response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query"))
        return Problem(400, "Bad request", f"{where or 'request'}: {first.get('msg', 'invalid')}",
                       slug="bad-request", exit_code=2).response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return Problem(exc.status_code, str(exc.detail), slug="http", headers=getattr(exc, "headers", None)
                       ).response(request.url.path)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):   # no traceback, no content: patient data
        log(f"internal error ({type(exc).__name__}) on {request.method} {request.url.path}")
        return Problem(500, "Internal error", f"internal error ({type(exc).__name__})", slug="internal",
                       exit_code=1).response(request.url.path)

    @app.middleware("http")
    async def limits_and_headers(request: Request, call_next):
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None:
                return Problem(411, "Length required", "send the upload with a Content-Length header",
                               slug="length-required", exit_code=2).response(request.url.path)
            if not length.isdigit() or int(length) > limit_bytes:
                return Problem(413, "Upload too large", f"uploads are limited to {settings.http_max_upload_mb:g} MB "
                               "(RAGECG_HTTP_MAX_UPLOAD_MB)", slug="too-large", exit_code=3).response(request.url.path)
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - answered here so that no traceback reaches the log
            log(f"internal error ({type(exc).__name__}) on {request.method} {request.url.path}")
            response = Problem(500, "Internal error", f"internal error ({type(exc).__name__})", slug="internal",
                               exit_code=1).response(request.url.path)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        if "content-security-policy" not in response.headers:
            response.headers["Content-Security-Policy"] = CSP_VIEWER
        return response

    # --------------------------------------------------------------- viewer
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # --------------------------------------------------------------- API
    @app.get("/v1/health", summary="Readiness: 200 when the model and index are loaded, else 503")
    async def health():
        body = {"status": "ready" if state.ready.is_set() else "error" if state.load_error else "loading",
                "queue": {"pending": state.worker.pending, "limit": state.worker.limit},
                "reports": len(state.store), "uptime_s": round(time.monotonic() - state.started_s, 1)}
        if state.load_error is not None:
            body["detail"] = str(state.load_error)
        if state.ready.is_set():
            return body
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    @app.get("/v1/version", dependencies=[Depends(authorised)], summary="Versions of the package, API, "
             "knowledge and model")
    async def version():
        docs = await run_in_threadpool(lambda: state.resources.docs)
        backends = [{k: b.get(k) for k in ("name", "backend", "model", "available", "active")}
                    for b in list_backends(settings)]
        return {"ragecg": __version__, "api": API_VERSION, "knowledge_documents": len(docs),
                "knowledge_hash": knowledge_hash(docs, state.resources.logic), "llm": state.resources.use_llm, "backends": backends,
                "limits": {"max_upload_mb": settings.http_max_upload_mb, "max_duration_s": settings.http_max_duration_s,
                           "queue": settings.http_queue_size, "retention_s": settings.http_retention_s}}

    @app.post("/v1/diagnose", dependencies=[Depends(authorised)], summary="Diagnose an uploaded ECG",
              responses={200: {"description": "JSON envelope (format=json) or the report in `format`"},
                         400: {"description": "bad input (exit codes 2, 3)"}, 401: {"description": "no or bad token"},
                         413: {"description": "upload or record too large"},
                         422: {"description": "signal unusable (exit code 4)"},
                         503: {"description": "model not ready or queue full (Retry-After)"}})
    async def diagnose(request: Request,
                       files: list[UploadFile] = File(..., description="one record: one file of any supported "
                                                      "format, or a WFDB header with its signal files"),
                       no_llm: bool = Form(False, description="criteria only (also as a query parameter)"),
                       format: str = Form("json", description="json (envelope), html, pdf, fhir or md"),
                       sampling_rate: Optional[float] = Form(None, description="Hz, for CSV/.npy"),
                       units: Optional[str] = Form(None, description="mV, uV or V, for CSV/.npy"),
                       leads: Optional[str] = Form(None, description="lead names in column order, for CSV/.npy"),
                       prior_id: Optional[str] = Form(None, description="id of a prior report of the same "
                                                      "patient: adds the serial comparison")):
        q = request.query_params
        no_llm = no_llm or q.get("no_llm", "").lower() in ("1", "true", "yes", "on")
        fmt = (q.get("format") or format or "json").lower()
        if fmt not in REPORT_FORMATS:
            raise Problem(400, "Bad request", f"format must be one of {', '.join(REPORT_FORMATS)}", slug="bad-request",
                          exit_code=2)
        read_opts = read_options(sampling_rate, leads, units, names=("sampling_rate", "leads", "units"))
        prior = None
        if prior_id:
            prior = state.store.get(prior_id)
            if prior is None:
                raise Problem(404, "Prior report not found", "the prior report does not exist or has expired",
                              slug="not-found")
        uploads: dict[str, bytes] = {}
        for f in files:
            name = upload_name(f.filename)
            if name in uploads:
                raise Problem(400, "Bad request", "two files with the same name", slug="bad-request", exit_code=2)
            uploads[name] = await f.read()
        primary_file(list(uploads))
        if not state.ready.is_set():
            if state.load_error is not None:
                raise problem_from_error(state.load_error)
            raise Problem(503, "Model not ready", "the model and knowledge index are still loading", slug="not-ready",
                          exit_code=5, headers={"Retry-After": "5"})
        size = sum(len(b) for b in uploads.values())

        def job():
            ecg = read_upload(uploads, read_opts, state.run_dir)
            if ecg.duration_s > settings.http_max_duration_s:
                raise Problem(413, "Record too long", f"records are limited to {settings.http_max_duration_s:g} s "
                              "(RAGECG_HTTP_MAX_DURATION_S)", slug="too-long", exit_code=3)
            res = state.resources.variant(use_llm=state.resources.use_llm and not no_llm,
                                          use_retrieval=state.resources.use_retrieval)
            return ecg, diagnose_ecg(ecg, res)

        t = time.perf_counter()
        try:
            ecg, report = await state.worker.run(job)
        except (Problem, RagecgError) as exc:
            status = exc.status if isinstance(exc, Problem) else problem_from_error(exc).status
            log(f"diagnose: {len(uploads)} file(s), {size / 1024:.0f} kB, {time.perf_counter() - t:.2f} s, {status}")
            raise
        comparison = None
        if prior is not None:
            comparison = compare_reports(report, prior.report)
        item = state.store.put(report, ecg, comparison)
        log(f"diagnose {item.id[:6]}…: {len(uploads)} file(s), {size / 1024:.0f} kB, "
            f"{time.perf_counter() - t:.2f} s, 200")
        headers = {"Location": f"/v1/reports/{item.id}", "X-Report-Id": item.id}
        if fmt == "json":
            return JSONResponse(envelope(item), headers=headers)
        return await _representation(item, fmt, headers)

    async def _representation(item: StoredReport, fmt: str, headers: dict | None = None) -> Response:
        body = await run_in_threadpool(_render, state, item, fmt)
        headers = dict(headers or {})
        if fmt == "html":
            headers["Content-Security-Policy"] = CSP_REPORT
        if fmt in ("pdf", "fhir"):
            ext = {"pdf": "pdf", "fhir": "fhir.json"}[fmt]
            headers["Content-Disposition"] = f'attachment; filename="report.{ext}"'
        return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)

    def _item(report_id: str) -> StoredReport:
        item = state.store.get(report_id)
        if item is None:
            raise Problem(404, "Report not found", "no report with this id (reports are deleted after "
                          f"{settings.http_retention_s:g} s)", slug="not-found")
        return item

    @app.get("/v1/reports/{report_id}", dependencies=[Depends(authorised)],
             summary="A report as json (the `ragecg schema` document), html, pdf, fhir (R4 Bundle) or md")
    async def get_report(report_id: str, format: Literal["json", "html", "pdf", "fhir", "md"] = "json"):
        item = _item(report_id)
        if format == "json":
            return Response(item.report.model_dump_json(), media_type=MEDIA_TYPES["json"])
        return await _representation(item, format)

    @app.get("/v1/reports/{report_id}/signal", dependencies=[Depends(authorised)],
             summary="The record's samples (µV, standard lead order) for the viewer's plot")
    async def get_signal(report_id: str):
        item = _item(report_id)
        return JSONResponse(await run_in_threadpool(signal_json, item.ecg))

    @app.get("/v1/reports/{report_id}/comparison/{prior_id}", dependencies=[Depends(authorised)],
             summary="Serial comparison of a report with a prior report of the same patient")
    async def get_comparison(report_id: str, prior_id: str):
        return JSONResponse(compare_reports(_item(report_id).report, _item(prior_id).report).model_dump(mode="json"))

    @app.delete("/v1/reports/{report_id}", dependencies=[Depends(authorised)], status_code=204,
                summary="Delete a report and its signal now")
    async def delete_report(report_id: str):
        if not state.store.delete(report_id):
            raise Problem(404, "Report not found", "no report with this id", slug="not-found")
        return Response(status_code=204)

    return app


# ------------------------------------------------------------------------------------------- serving
def parse_address(address: str, host: str | None = None) -> tuple[str, int]:
    """`[HOST:]PORT` (IPv6 in brackets) -> (host, port); `host` (--host) overrides; default 127.0.0.1."""
    address = address.strip()
    m = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]:|(?P<h>[^:\[\]]+):)?(?P<port>\d{1,5})", address)
    if not m or not 0 <= int(m["port"]) <= 65535:
        raise UsageError(f"--http must be [HOST:]PORT (got {address!r})")
    return host or m["v6"] or m["h"] or "127.0.0.1", int(m["port"])


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Refuse a non-loopback address without RAGECG_API_TOKEN (UsageError, exit 2), before anything loads."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    if not is_loopback(host) and not token.strip():
        raise UsageError(f"refusing to listen on {host} (not loopback) without a bearer token: set RAGECG_API_TOKEN")
    if token and len(token) < 16:
        raise UsageError("RAGECG_API_TOKEN is too short (at least 16 characters)")


def serve_http(settings: Settings, address: str, host: str | None = None, run_dir: Path | None = None) -> None:
    """`ragecg serve --http`: check the address and token, start loading, serve until Ctrl-C/SIGTERM."""
    import uvicorn

    host, port = parse_address(address, host)
    check_bind(settings, host)
    if run_dir is not None:
        check_writable_folder(run_dir)
    resources = Resources(settings=settings)
    resources.start_loading()
    app = create_app(settings, resources, run_dir=run_dir)
    shown = f"[{host}]" if ":" in host else host
    log(f"listening on http://{shown}:{port}/ (viewer at /, API at /v1; loading the model...)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)

