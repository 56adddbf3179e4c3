"""The job runner that `ragecg diagnose` and `ragecg serve` share: read, diagnose and render each record
of a `DiagnoseJob`, write the report files, and say which records failed (one exit code)."""
from __future__ import annotations

import csv
import io
import json
import os
import uuid
from pathlib import Path

from pydantic import ValidationError

from ragecg.errors import EXIT_PARTIAL, InputError, RagecgError
from ragecg.pipeline import diagnose_ecg
from ragecg.reading import read_record
from ragecg.render import compare_reports, render, render_comparison_markdown, with_comparison_html
from ragecg.values import Report

from .client import DiagnoseJob


def render_output(report: Report, fmt: str, ecg=None, compact: bool = False) -> str:
    """The report as text/md/html/json/fhir (a FHIR R4 Bundle, checked with the fhir.resources models)."""
    return render(report, fmt, ecg, compact=compact)


def run_diagnose_job(job: DiagnoseJob, resources, emit_out, emit_err) -> int:
    """Diagnose the job's records with `resources`; results through `emit_out`, one-line errors
    through `emit_err`; returns the exit code. One record's error is raised (its own exit code);
    with several, failed records are reported and skipped (summary.csv lists them with --out)."""
    if job.prior:
        return run_serial_job(job, resources, emit_out)
    paths = [Path(p) for p in job.paths]
    out = Path(job.out) if job.out else None
    many = len(paths) > 1
    shown, folders = record_labels(paths)
    failures: list[tuple[str, str, int]] = []
    summary = []
    for path in paths:
        try:
            ecg = read_record(path, **job.read_opts)
            report = diagnose_ecg(ecg, resources)
        except RagecgError as exc:
            if not many:
                raise
            emit_err(str(exc))
            failures.append((str(path), str(exc), exc.exit_code))
            continue
        if out is not None:
            target = out / (folders[str(path)] if many else "")
            write_report_files(report, target, ecg, job.paper)
        if job.fmt in ("json", "fhir") or out is None or not many:
            emit_out(render_output(report, job.fmt, ecg, compact=many))
        summary.append({"record": shown[str(path)], "report_folder": folders[str(path)],
                        "codes": " ".join(c.code for c in report.diagnosis.codes),
                        "heart_rate_bpm": report.measurements.heart_rate_bpm, "mode": report.diagnosis.mode,
                        "quality": report.quality.verdict})
    if many and out is not None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["record", "status", "report_folder", "codes", "heart_rate_bpm", "mode",
                                            "quality", "error"])
        w.writeheader()
        for row in summary:
            w.writerow({**row, "status": "ok"})
        for path_text, msg, _ in failures:
            w.writerow({"record": shown[path_text], "status": "failed", "error": msg})
        write_files_atomically(out, {"summary.csv": buf.getvalue().encode("utf-8")}, what="summary.csv")
    if failures:
        emit_err(f"{len(failures)} of {len(paths)} record(s) failed; the others were diagnosed")
        return EXIT_PARTIAL if summary else failures[0][2]
    return 0


def run_serial_job(job: DiagnoseJob, resources, emit_out) -> int:
    """`diagnose NEW --prior OLD`: both diagnosed, the new report followed by the serial comparison
    (json: {"report", "prior_report", "comparison"}; --out adds comparison.json/.md and prior/)."""
    prior_ecg = read_record(Path(job.prior), **job.read_opts)
    prior = diagnose_ecg(prior_ecg, resources)
    ecg = read_record(Path(job.paths[0]), **job.read_opts)
    report = diagnose_ecg(ecg, resources)
    comparison = compare_reports(report, prior)
    section = render_comparison_markdown(comparison)
    if job.out:
        out = Path(job.out)
        write_report_files(report, out, ecg, job.paper)
        write_report_files(prior, out / "prior", prior_ecg, job.paper)
        (out / "comparison.json").write_text(comparison.model_dump_json(indent=2), encoding="utf-8")
        (out / "comparison.md").write_text(section + "\n", encoding="utf-8")
    if job.fmt == "json":
        emit_out(json.dumps({"report": report.model_dump(mode="json"), "prior_report": prior.model_dump(mode="json"),
                             "comparison": comparison.model_dump(mode="json")}, indent=2, ensure_ascii=False))
    elif job.fmt == "html":
        emit_out(with_comparison_html(render_output(report, "html", ecg), comparison))
    elif job.fmt == "fhir":                 # a FHIR DiagnosticReport of one ECG: the comparison is not part of it
        emit_out(render_output(report, "fhir"))
    else:
        emit_out(render_output(report, job.fmt, ecg) + "\n\n" + section)
    return 0


def record_labels(paths: list[Path]) -> tuple[dict[str, str], dict[str, str]]:
    """For each input path: how summary.csv names it (its path relative to the inputs' common folder,
    so `a/ecg.xml` and `b/ecg.xml` are told apart) and its own report sub-folder (the file stem when
    that is unique, else the relative path with `__` for `/`, numbered if still taken)."""
    texts = [str(p) for p in paths]
    resolved = [p.resolve() for p in paths]
    try:
        common = Path(os.path.commonpath([str(r.parent) for r in resolved])) if resolved else Path(".")
    except ValueError:                       # different drives (Windows)
        common = Path(".")
    shown: dict[str, str] = {}
    for text, r in zip(texts, resolved):
        try:
            shown[text] = r.relative_to(common).as_posix()
        except ValueError:
            shown[text] = r.name
    stems = [Path(shown[t]).stem for t in texts]
    folders: dict[str, str] = {}
    taken: set[str] = set()
    for text, stem in zip(texts, stems):
        name = stem if stems.count(stem) == 1 else shown[text].replace("/", "__")
        base, n = name, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        folders[text] = name
    return shown, folders


def check_writable_folder(folder: Path) -> None:
    """Create `folder` if needed and check a file can be written in it; RagecgError (exit 2) if not."""
    probe = folder / ".ragecg_write_test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise RagecgError(f"cannot write the report files ({exc.strerror or type(exc).__name__})",
                          path=str(folder)) from None


def write_report_files(report, target: Path, ecg=None, paper: str = "a4") -> None:
    """report.json, report.md, report.html (with the plot when `ecg` is given), report.pdf, report.fhir.json.

    All or none: every file is rendered first, written under a temporary name, then renamed; a
    failure (a renderer's error, a full disk) leaves no new or half-written file behind."""
    contents = {
        "report.json": report.model_dump_json(indent=2).encode("utf-8"),
        "report.md": render_output(report, "md").encode("utf-8"),
        "report.html": render_output(report, "html", ecg).encode("utf-8"),
        "report.pdf": render(report, "pdf", ecg, paper=paper),
        "report.fhir.json": render_output(report, "fhir").encode("utf-8"),
    }
    write_files_atomically(target, contents, what="the report files")


def write_files_atomically(target: Path, contents: dict[str, bytes], *, what: str) -> None:
    """Write `contents` (file name -> bytes) into `target`: temporary names first, renamed only when all
    are written; on OSError nothing new is left and RagecgError (exit 2) names the folder."""
    tag = uuid.uuid4().hex[:8]
    temps: list[Path] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, data in contents.items():
            tmp = target / f".{name}.{tag}.tmp"
            temps.append(tmp)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for name in contents:
            os.replace(target / f".{name}.{tag}.tmp", target / name)
    except OSError as exc:
        raise RagecgError(f"cannot write {what} ({exc.strerror or type(exc).__name__})", path=str(target)) from None
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def load_report(path: Path):
    """A saved report.json as a `Report`; InputError (exit 3) when it is missing or not a ragecg report."""
    if not path.is_file():
        raise InputError("no such file", path=path.name)
    try:
        return Report.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = ".".join(str(x) for x in exc.errors()[0]["loc"]) if exc.errors() else ""
        raise InputError(f"not a ragecg report.json ({exc.error_count()} problem(s), first at {first or 'top level'})",
                         path=path.name) from None
