"""Command line: `ragecg diagnose|measure|export|knowledge|evaluate|models|schema|version`.

Results go to stdout, progress and logs to stderr. Errors are one line on stderr with a documented
exit code (README.md); tracebacks are never shown (they could carry patient data) unless
RAGECG_DEBUG=1.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ragecg.errors import EXIT_PARTIAL, InputError, RagecgError, UsageError
from ragecg.version import __version__

from .options import read_options

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  pretty_exceptions_show_locals=False,
                  help="Training-free 12-lead ECG interpretation: measurements, cited criteria, retrieval, local LLM.")
knowledge_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, pretty_exceptions_show_locals=False,
                            help="Build, inspect and extend the cardiology knowledge base and its FAISS index.")
app.add_typer(knowledge_app, name="knowledge")


def _err(msg: str) -> None:
    print(f"ragecg: {msg}", file=sys.stderr)


def _settings(**overrides):
    from ragecg.settings import get_settings
    return get_settings(**overrides)


def _expand_records(paths: list[Path]) -> list[Path]:
    """Files given, and the records inside folders given (WFDB headers and clinical formats)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in
                           (".hea", ".xml", ".dcm", ".edf", ".scp", ".csv", ".npy"))
            out.extend(found or [p])
        else:
            out.append(p)
    return out


FORMATS = ("text", "md", "html", "json", "fhir")
EXPORT_FORMATS = ("pdf", "html", "fhir", "md")

_SAMPLING_RATE = typer.Option(None, "--sampling-rate", help="Hz, for CSV/.npy files that do not state it "
                                                           "(self-describing formats ignore it).")
_LEADS = typer.Option(None, "--leads", help="Lead names in column order for CSV without a header or .npy, "
                                            "e.g. I,II,V1,V2,V3,V4,V5,V6.")
_UNITS = typer.Option(None, "--units", help="Signal unit of CSV/.npy values: mV (default), uV or V.")
_PAPER = typer.Option("a4", "--paper", help="PDF paper size: a4 or letter.")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value.lower()


@app.command()
def diagnose(
    records: list[Path] = typer.Argument(..., help="WFDB .hea (or record name), clinical ECG files, or folders of them."),
    json_out: bool = typer.Option(False, "--json", help="Same as --format json (schema: `ragecg schema`)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write report.json, .md, .html, .pdf and .fhir.json here "
                                                            "(one sub-folder per record when several)."),
    fmt: str = typer.Option("text", "--format", help="stdout format: text, md, html, json or fhir (FHIR R4 Bundle)."),
    paper: str = _PAPER,
    sampling_rate: Optional[float] = _SAMPLING_RATE,
    leads: Optional[str] = _LEADS,
    units: Optional[str] = _UNITS,
    no_llm: bool = typer.Option(False, "--no-llm", help="Criteria only: skip the LLM."),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Skip knowledge retrieval (criteria only)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A GGUF model file (default: the embedded SmolLM2)."),
    llm_url: Optional[str] = typer.Option(None, "--llm-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080"),
    llm_timeout: Optional[float] = typer.Option(None, "--llm-timeout", help="Seconds before falling back to criteria."),
    local: bool = typer.Option(False, "--local", help="Work in this process even when `ragecg serve` is running."),
    prior: Optional[Path] = typer.Option(None, "--prior", help="A prior ECG of the same patient: adds the serial "
                                                               "comparison (new / no longer present statements, "
                                                               "interval and axis changes beyond tolerance)."),
) -> None:
    """Diagnose ECG records: codes with confidence and a cited clinical-style report.

    With `ragecg serve` running (same settings and code), the records are diagnosed there: no
    imports, model loading or prefix decoding in this process (`--local` or RAGECG_USE_SERVER=never
    to always work here)."""
    fmt = "json" if json_out else _check_choice("--format", fmt, FORMATS)
    paper = _check_choice("--paper", paper, ("a4", "letter"))
    read_opts = read_options(sampling_rate, leads, units)
    if out is not None:
        from .jobs import check_writable_folder
        check_writable_folder(out)          # before any work: exit 2, one line
    paths = _expand_records(records)
    from .client import DiagnoseJob
    if prior is not None and len(paths) != 1:
        from ragecg.errors import UsageError
        raise UsageError("--prior compares one record with its prior: give one record")
    job = DiagnoseJob(paths=[str(p.resolve()) for p in paths], fmt=fmt, out=str(out.resolve()) if out else None,
                      paper=paper, read_opts=read_opts, no_llm=no_llm, no_retrieval=no_retrieval,
                      prior=str(prior.resolve()) if prior is not None else None)
    settings = _settings(model=model, llm_url=llm_url, llm_timeout_s=llm_timeout)
    if not local and settings.server.use_server == "auto":
        from .client import diagnose_on_server
        rc = diagnose_on_server(settings, job)
        if rc is not None:
            raise typer.Exit(rc)
    from ragecg.pipeline import Resources

    from .jobs import run_diagnose_job
    resources = Resources(settings=settings, use_llm=not no_llm, use_retrieval=not no_retrieval)
    resources.start_loading()               # model and index load while the first record is read and measured
    rc = run_diagnose_job(job, resources, lambda text: print(text), _err)
    if rc:
        raise typer.Exit(rc)


@app.command()
def export(
    report_json: Path = typer.Argument(..., help="A report.json written by `ragecg diagnose --out` or `--format json`."),
    to: str = typer.Option(..., "--to", help="pdf, html, fhir or md."),
    out: Path = typer.Option(..., "--out", help="The file to write."),
    record: Optional[Path] = typer.Option(None, "--record", help="The ECG record the report was made from: adds the "
                                                                 "12-lead plot to PDF/HTML."),
    paper: str = _PAPER,
    sampling_rate: Optional[float] = _SAMPLING_RATE,
    leads: Optional[str] = _LEADS,
    units: Optional[str] = _UNITS,
) -> None:
    """Re-render a saved report.json as PDF, HTML, FHIR R4 (JSON) or Markdown, without re-diagnosing."""
    from ragecg.reading import read_record
    from ragecg.render import render

    from .jobs import load_report

    to = _check_choice("--to", to, EXPORT_FORMATS)
    paper = _check_choice("--paper", paper, ("a4", "letter"))
    report = load_report(report_json)
    ecg = None
    if record is not None:
        ecg = read_record(record, **read_options(sampling_rate, leads, units))
        # A plot of another ECG beside this report would be a hazard: file name, rate and length must match.
        if Path(ecg.source_path).name != report.source:
            raise InputError(f"is not the record this report was made from (the report names {report.source!r})",
                             path=record.name)
        if abs(ecg.sampling_rate_hz - report.sampling_rate_hz) > 1e-6 or abs(ecg.duration_s - report.duration_s) > 0.01:
            raise InputError("this record does not match the report (sampling rate or duration differ)",
                             path=record.name)
    try:
        if to == "pdf":
            out.write_bytes(render(report, "pdf", ecg, paper=paper))
        else:
            out.write_text(render(report, to, ecg), encoding="utf-8")
    except OSError as exc:
        raise RagecgError(f"cannot write the file ({exc.strerror})", path=str(out)) from None
    print(out)


@app.command()
def measure(
    records: list[Path] = typer.Argument(..., help="Records to measure."),
    json_out: bool = typer.Option(False, "--json", help="One JSON document per record."),
    sampling_rate: Optional[float] = _SAMPLING_RATE,
    leads: Optional[str] = _LEADS,
    units: Optional[str] = _UNITS,
) -> None:
    """Measurements alone (intervals, axes, per-lead amplitudes, quality), as a table or JSON."""
    from ragecg.pipeline import measure as measure_record
    from ragecg.reading import read_record
    from ragecg.render import render_measurements

    read_opts = read_options(sampling_rate, leads, units)
    paths = _expand_records(records)
    failed = 0
    for path in paths:
        try:
            m, quality = measure_record(read_record(path, **read_opts))
        except RagecgError as exc:
            if len(paths) == 1:
                raise
            _err(str(exc))
            failed += 1
            continue
        if json_out:
            print(json.dumps({"source": path.name, "measurements": m.model_dump(mode="json"),
                              "quality": quality.model_dump(mode="json")}, indent=None if len(paths) > 1 else 2))
        else:
            print(render_measurements(path.name, m, quality))
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the `--json` report."""
    from ragecg.render import report_json_schema
    print(json.dumps(report_json_schema(), indent=2))


@app.command()
def version(json_out: bool = typer.Option(False, "--json")) -> None:
    """Versions of the package, the LLM model and the knowledge index."""
    from ragecg.knowledge import knowledge_hash, load_criteria_documents
    from ragecg.pipeline import Resources

    settings = _settings()
    info: dict = {"ragecg": __version__, "python": sys.version.split()[0]}
    docs = load_criteria_documents(settings)
    info["knowledge_documents"] = len(docs)
    info["knowledge_hash"] = knowledge_hash(docs, Resources(settings=settings, use_llm=False, use_retrieval=False).logic)
    try:
        from ragecg.knowledge.index import active_index_info
        info["index"] = active_index_info(settings)
    except RagecgError as exc:
        info["index"] = f"not available ({exc})"
    try:
        from ragecg.llm import list_backends
        info["models"] = list_backends(settings)
    except RagecgError as exc:
        info["models"] = f"not available ({exc})"
    if json_out:
        print(json.dumps(info, indent=2, default=str))
    else:
        for k, v in info.items():
            print(f"{k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")


@app.command()
def serve(
    socket_path: Optional[Path] = typer.Option(None, "--socket", help="Unix socket to listen on "
                                               "(default: HOME/run/ragecg.sock; RAGECG_SERVER_SOCKET)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A GGUF model file (default: the embedded SmolLM2)."),
    llm_url: Optional[str] = typer.Option(None, "--llm-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080"),
    llm_timeout: Optional[float] = typer.Option(None, "--llm-timeout", help="Seconds before falling back to criteria."),
    http: Optional[str] = typer.Option(None, "--http", help="[HOST:]PORT: serve the HTTP API and the browser viewer "
                                       "instead (default host 127.0.0.1; another needs RAGECG_API_TOKEN)."),
    host: Optional[str] = typer.Option(None, "--host", help="With --http: the address to listen on."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="With --http: keep uploads (while read) and "
                                           "reports in this folder instead of memory only (RAGECG_HTTP_RUN_DIR)."),
) -> None:
    """Keep the pipeline loaded (model, prefix, index, signal stack) and diagnose for `ragecg diagnose`
    commands with the same settings, over an owner-only Unix socket. Stop with Ctrl-C or SIGTERM.
    With --http, serve the HTTP API and the browser viewer (http://127.0.0.1:PORT/) instead."""
    import signal
    import time

    if http is not None:
        from .webapi import serve_http
        serve_http(_settings(model=model, llm_url=llm_url, llm_timeout_s=llm_timeout), http, host, run_dir)
        return

    from ragecg.pipeline import Resources

    from .serve import Server, warm_up
    t = time.perf_counter()
    settings = _settings(model=model, llm_url=llm_url, llm_timeout_s=llm_timeout, server_socket=socket_path)
    resources = Resources(settings=settings)
    server = Server(settings, resources)
    server.bind()                           # before loading: a second server fails at once
    resources.start_loading()
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        warm_up(resources)
        _err(f"serving on {server.socket_path} (ready in {time.perf_counter() - t:.1f} s; Ctrl-C stops)")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@app.command()
def models(json_out: bool = typer.Option(False, "--json")) -> None:
    """List the LLM backends available and which one is active."""
    from ragecg.llm import list_backends
    rows = list_backends(_settings())
    if json_out:
        print(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        mark = "*" if row.get("active") else " "
        print(f"{mark} {row.get('backend')}: {row.get('model')} {row.get('detail', '')}".rstrip())


# ---------------------------------------------------------------- knowledge
@knowledge_app.command("build")
def knowledge_build(force: bool = typer.Option(False, "--force", help="Re-embed everything.")) -> None:
    """Build (or incrementally update) the FAISS index from the knowledge folders."""
    from ragecg.knowledge.embed import embedding_model_dir, prepare_query_encoder
    from ragecg.knowledge.index import build_index
    settings = _settings()
    res = build_index(settings, force=force)
    out = dict(vars(res), query_encoder="onnx" if prepare_query_encoder(embedding_model_dir(settings), settings)
               else "sentence-transformers")
    print(json.dumps(out, default=str, indent=2))


@knowledge_app.command("add")
def knowledge_add(paths: list[Path] = typer.Argument(..., help="md, txt, pdf or html files, or folders of them.")) -> None:
    """Add guideline documents to the user knowledge folder and rebuild the index."""
    from ragecg.knowledge.index import add_documents
    for p in add_documents(_settings(), paths):
        print(p)


@knowledge_app.command("remove")
def knowledge_remove(doc_id: str = typer.Argument(..., help="Id of a user-added document.")) -> None:
    """Remove a user-added document and rebuild the index."""
    from ragecg.knowledge.index import remove_document
    remove_document(_settings(), doc_id)
    print(f"removed {doc_id}")


@knowledge_app.command("list")
def knowledge_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """List the knowledge documents."""
    from ragecg.knowledge.index import list_documents
    rows = list_documents(_settings())
    if json_out:
        print(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        codes = ",".join(r.get("codes") or [])
        print(f"{r['id']:<32} {r.get('kind', ''):<8} {codes:<24} {r.get('title', '')}")


@knowledge_app.command("search")
def knowledge_search(query: str = typer.Argument(...), k: int = typer.Option(5, "--k"),
                     json_out: bool = typer.Option(False, "--json"),
                     explain: bool = typer.Option(False, "--explain", help="Show how the query was understood: "
                                                  "values read, statements they support, the search lines."),
                     raw: bool = typer.Option(False, "--raw", help="Search the text as typed (no query understanding)."),
                     mode: Optional[str] = typer.Option(None, "--mode", help="hybrid (default), dense or lexical.")) -> None:
    """Search the knowledge index. Measurements in the query ("PR 236 ms", "S V1 + R V5 45 mm") are
    checked against the knowledge base's criteria and the statements they support are searched too."""
    from ragecg.pipeline import Resources, search_knowledge
    if mode is not None and mode not in ("hybrid", "dense", "lexical"):
        raise InputError(f"unknown --mode {mode!r}; use hybrid, dense or lexical")
    resources = Resources(settings=_settings(), use_llm=False)
    understood, hits = search_knowledge(query, resources, k, mode=mode, understand=not raw)
    if json_out:
        out = {"query": query, "mode": mode or resources.settings.retrieval_mode,
               "passages": [h.model_dump() for h in hits]}
        if understood is not None:
            out["understanding"] = understood.to_dict()
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return
    if explain and understood is not None:
        print(understood.explain())
        print()
    for h in hits:
        codes = f"  [{', '.join(h.codes)}]" if h.codes else ""
        print(f"{h.score:.3f}  {h.passage_id:<36} {h.section}{codes}")
        print("       " + h.text[:200].replace("\n", " "))


@knowledge_app.command("validate")
def knowledge_validate() -> None:
    """Check every document: front matter, criteria, measurement names, sources."""
    from ragecg.knowledge import validate_knowledge
    docs, problems = validate_knowledge(_settings())
    for p in problems:
        print(p)
    print(f"{len(docs)} documents, {len(problems)} problem(s)", file=sys.stderr)
    if problems:
        raise typer.Exit(3)


@knowledge_app.command("coverage")
def knowledge_coverage(json_out: bool = typer.Option(False, "--json")) -> None:
    """Which document covers each PTB-XL statement; exits 3 if any statement is uncovered."""
    from ragecg.knowledge import coverage_table, load_criteria_documents
    rows = coverage_table(load_criteria_documents(_settings()))
    if json_out:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['code']:<8} {','.join(r['doc_ids']) or 'UNCOVERED':<40} {r['description']}")
    missing = [r["code"] for r in rows if not r["doc_ids"]]
    print(f"{len(rows) - len(missing)} of {len(rows)} statements covered", file=sys.stderr)
    if missing:
        raise typer.Exit(3)


def _register_evaluate() -> None:
    try:
        from .eval.cli import evaluate_command
    except ImportError:
        return
    app.command("evaluate", help=evaluate_command.__doc__)(evaluate_command)


_register_evaluate()


def main() -> None:
    """Entry point: run the app; RagecgError -> one line on stderr and its exit code."""
    try:
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except RagecgError as exc:
        _err(str(exc))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err("aborted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors, then anything unexpected
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        from ragecg.settings import debug_enabled
        if debug_enabled():
            raise
        _err(f"internal error ({type(exc).__name__}); rerun with RAGECG_DEBUG=1 for a traceback")
        sys.exit(1)


def entry() -> None:
    """The `ragecg` command (console script, `python -m ragecg.cli`): `main()`, then, when no other
    thread is left, leave without the interpreter's teardown. With the answer printed and every
    file closed, that teardown (llama.cpp's model and context freed, ~2,000 modules) only added
    ~0.4 s to a one-off `diagnose` (bench/llm.py --cold). A background loader still running (a
    record refused before the model finished loading) gets the normal, waiting exit."""
    import threading
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    if threading.active_count() > 1:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:                          # a closed pipe (`| head`): nothing more can be said
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
