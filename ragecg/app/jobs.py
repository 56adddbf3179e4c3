"""The job runner that `ragecg diagnose` and `ragecg serve` share: read, diagnose and render each record
of a `DiagnoseJob`, write the report files, and say which records failed (one exit code)."""
from __future__ import annotations

import csv
import json
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
            failures.append((path.name, str(exc), exc.exit_code))
            continue
        if out is not None:
            target = out / (Path(report.source).stem if many else "")
            write_report_files(report, target, ecg, job.paper)
        if job.fmt in ("json", "fhir") or out is None or not many:
            emit_out(render_output(report, job.fmt, ecg, compact=many))
        summary.append({"record": path.name, "codes": " ".join(c.code for c in report.diagnosis.codes),
                        "heart_rate_bpm": report.measurements.heart_rate_bpm, "mode": report.diagnosis.mode,
                        "quality": report.quality.verdict})
    if many and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "summary.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["record", "status", "codes", "heart_rate_bpm", "mode", "quality", "error"])
            w.writeheader()
            for row in summary:
                w.writerow({**row, "status": "ok"})
            for name, msg, _ in failures:
                w.writerow({"record": name, "status": "failed", "error": msg})
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
    """report.json, report.md, report.html (with the plot when `ecg` is given), report.pdf, report.fhir.json."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        (target / "report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        (target / "report.md").write_text(render_output(report, "md"), encoding="utf-8")
        (target / "report.html").write_text(render_output(report, "html", ecg), encoding="utf-8")
        (target / "report.pdf").write_bytes(render(report, "pdf", ecg, paper=paper))
        (target / "report.fhir.json").write_text(render_output(report, "fhir"), encoding="utf-8")
    except OSError as exc:
        raise RagecgError(f"cannot write the report files ({exc.strerror})", path=str(target)) from None


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
