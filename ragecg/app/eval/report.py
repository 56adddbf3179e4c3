"""RUN_DIR/report.md and report.html: tables, ROC curves and confusion matrices, provenance.

report.md links the PNG figures beside it; report.html is self-contained (figures embedded).
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

import numpy as np

SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")

# Published reference figures (not on the same records or label handling: for orientation only).
ANCHORS = [
    {"method": "Zero-shot RAG with GPT-3.5 (Yu et al.)", "task": "superdiagnostic", "metric": "macro F1",
     "value": 0.669, "source": "Yu H, Guo P, Sano A. Zero-Shot ECG Diagnosis with Large Language Models and "
                               "Retrieval-Augmented Generation. ML4H 2023, PMLR 225."},
    *({"method": "MERL zero-shot (Liu et al.)", "task": t, "metric": "macro AUC", "value": v,
       "source": "Liu C, et al. Zero-Shot ECG Classification with Multimodal ECG Representation Learning "
                 "(MERL). ICML 2024, arXiv:2403.06659."}
      for t, v in (("superdiagnostic", 0.742), ("subdiagnostic", 0.757), ("form", 0.659), ("rhythm", 0.785))),
]


def sha256_file(path: Path) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _f(v, nd=3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"


def _ci(ci, nd=3) -> str:
    return "" if not ci else f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


# ------------------------------------------------------------------ figures
def plot_roc(arrays: dict, path: Path, classes=SUPERCLASSES) -> Path | None:
    """ROC of ragecg per superclass, with the 12SL operating point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    if "ragecg" not in arrays or arrays["ragecg"][1].shape[0] == 0:
        return None
    ids, y, s, p = arrays["ragecg"]
    names = [c for c in classes]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    order = sorted(classes)
    for ax, cls in zip(axes[0], names):
        j = order.index(cls)
        ax.plot([0, 1], [0, 1], color="0.8", lw=0.8)
        if 0 < y[:, j].sum() < len(y):
            fpr, tpr, _ = roc_curve(y[:, j], s[:, j])
            ax.plot(fpr, tpr, lw=1.5, label="ragecg")
            if "12SL" in arrays:
                _, yb, _, pb = arrays["12SL"]
                tp = (yb[:, j] & pb[:, j]).sum() / max(yb[:, j].sum(), 1)
                fp = (~yb[:, j] & pb[:, j]).sum() / max((~yb[:, j]).sum(), 1)
                ax.plot([fp], [tp], "o", color="C3", label="12SL")
        ax.set_title(cls)
        ax.set_xlabel("1 - specificity")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("sensitivity")
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(arrays: dict, path: Path, classes=SUPERCLASSES) -> Path | None:
    """2x2 confusion matrix (label x chosen) per superclass, one row per system."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in ("ragecg", "12SL") if s in arrays and arrays[s][1].shape[0]]
    if not systems:
        return None
    order = sorted(classes)
    fig, axes = plt.subplots(len(systems), len(classes), figsize=(2.6 * len(classes), 2.6 * len(systems)), squeeze=False)
    for r, system in enumerate(systems):
        _, y, _, p = arrays[system]
        for c, cls in enumerate(classes):
            j = order.index(cls)
            m = np.array([[(~y[:, j] & ~p[:, j]).sum(), (~y[:, j] & p[:, j]).sum()],
                          [(y[:, j] & ~p[:, j]).sum(), (y[:, j] & p[:, j]).sum()]])
            ax = axes[r][c]
            ax.imshow(m, cmap="Blues")
            for (a, b), v in np.ndenumerate(m):
                ax.text(b, a, str(v), ha="center", va="center", color="black" if v < m.max() * 0.6 else "white")
            ax.set_xticks([0, 1], ["no", "yes"])
            ax.set_yticks([0, 1], ["no", "yes"])
            ax.set_title(f"{system}: {cls}", fontsize=9)
            if c == 0:
                ax.set_ylabel("label")
            if r == len(systems) - 1:
                ax.set_xlabel("chosen")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ markdown
def summary_table(metrics: dict) -> list[str]:
    lines = ["| task | system | records | classes | macro AUC [95% CI] | macro F1 [95% CI] |",
             "|---|---|---:|---:|---|---|"]
    for task, systems in metrics.items():
        for name, m in systems.items():
            if "macro_auc_a" in m:
                lines.append(f"| {task} | ragecg − 12SL (paired) | {m['n_records']} | {len(m['classes'])} | "
                             f"{_f(m.get('macro_auc_diff'), 3)}{_ci(m.get('macro_auc_diff_ci'))} | "
                             f"{_f(m.get('macro_f1_diff'), 3)}{_ci(m.get('macro_f1_diff_ci'))} |")
                continue
            lines.append(f"| {task} | {name} | {m['n_records']} | {m['n_classes']} | "
                         f"{_f(m['macro_auc'])}{_ci(m.get('macro_auc_ci'))} | {_f(m['macro_f1'])}{_ci(m.get('macro_f1_ci'))} |")
    return lines


def per_class_table(task_metrics: dict) -> list[str]:
    main = task_metrics.get("ragecg")
    if not main or not main["per_class"]:
        return ["(no evaluable class)"]
    base = {r["class"]: r for r in task_metrics.get("12SL", {}).get("per_class", [])}
    lines = ["| class | positives | ragecg AUC [95% CI] | F1 | sens | spec | 12SL AUC | 12SL F1 | 12SL sens | 12SL spec |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in main["per_class"]:
        b = base.get(r["class"], {})
        lines.append(f"| {r['class']} | {r['n_pos']} | {_f(r['auc'])}{_ci(r.get('auc_ci'), 2)} | {_f(r['f1'])} | "
                     f"{_f(r['sensitivity'])} | {_f(r['specificity'])} | {_f(b.get('auc'))} | {_f(b.get('f1'))} | "
                     f"{_f(b.get('sensitivity'))} | {_f(b.get('specificity'))} |")
    if main["skipped_classes"]:
        lines += ["", "Skipped (one label value only): " + ", ".join(f"{s['class']} ({s['reason']})"
                                                                     for s in main["skipped_classes"])]
    return lines


def anchors_table() -> list[str]:
    lines = ["| method | task | metric | published | source |", "|---|---|---|---:|---|"]
    lines += [f"| {a['method']} | {a['task']} | {a['metric']} | {a['value']:.3f} | {a['source']} |" for a in ANCHORS]
    return lines


def render_markdown(info: dict, metrics: dict, figures: dict[str, str]) -> str:
    """The report. `info`: command(s), versions, counts, failures, throughput (see cli.py)."""
    L = [f"# ragecg evaluation: {info.get('dataset', 'PTB-XL')}", ""]
    L += ["## Run", "", "Command:", "", "```", info["command"], "```", ""]
    if info.get("previous_commands"):
        L += ["Earlier invocations of this run (resumed):", "", "```", *info["previous_commands"], "```", ""]
    L += [f"- mode: {info['mode']}; sampling rate: {info.get('sampling_rate_hz')} Hz; folds: {info.get('folds')}",
          f"- selection: {info.get('selection')}",
          f"- bootstrap: {info['n_boot']} resamples of records, seed {info['seed']}, 95% percentile intervals", ""]
    L += ["| version / input | value |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in info["versions"].items()] + [""]
    L += ["## Records", "", "| fold | listed | absent on disk | diagnosed | failed |", "|---|---:|---:|---:|---:|"]
    for fold, c in info["counts"].items():
        L.append(f"| {fold} | {c['listed']} | {c['missing']} | {c['ok']} | {c['failed']} |")
    L.append("")
    if info.get("failures"):
        L += [f"Failed records ({len(info['failures'])}; all in failures.csv):", ""]
        L += [f"- {f['record_id']}: {f['error']}" for f in info["failures"][:50]]
        L.append("")
    if info.get("missing"):
        L += [f"Records listed in the metadata but absent on disk: {len(info['missing'])} "
              f"(first: {', '.join(info['missing'][:10])})", ""]
    L += ["## Results", "", *summary_table(metrics), "",
          "Systems: ragecg = diagnosed records; 12SL = GE 12SL statements (PTB-XL+) mapped to SCP codes "
          "(ragecg/resources/twelvesl_to_scp.csv) on the same records, binary scores; *-all = every record "
          "of the run, a refused record scoring 0. Labels per Strodthoff et al. 2021 (ragecg/eval/labels.py).", ""]
    L += ["### Published reference figures", "", "Not the same records or label handling as this run: orientation only.",
          "", *anchors_table(), ""]
    if info.get("throughput"):
        t = info["throughput"]
        L += ["## Throughput", "", f"{t['records']} records in {t['wall_s']:.1f} s with {t['workers']} worker(s): "
              f"**{t['records_per_s']:.2f} records/s**" + (f"; median stage times (s): {t['median_stage_s']}" if t.get('median_stage_s') else ""), ""]
    for name, rel in figures.items():
        L += [f"## {name}", "", f"![{name}]({rel})", ""]
    for task, tm in metrics.items():
        L += [f"## Per class: {task}", "", *per_class_table(tm), ""]
    return "\n".join(L)


def render_html(markdown_text: str, run_dir: Path) -> str:
    """Self-contained HTML: Markdown rendered, PNG figures embedded as data URIs."""
    import markdown as md

    body = md.markdown(markdown_text, extensions=["tables", "fenced_code"])
    for png in sorted(Path(run_dir).glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        body = body.replace(f'src="{png.name}"', f'src="data:image/png;base64,{data}"')
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}code,pre{background:#f5f5f5}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape('ragecg evaluation')}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")


def write_report(run_dir: Path, info: dict, metrics: dict, arrays: dict) -> dict[str, Path]:
    """Write metrics.json, figures, report.md and report.html into RUN_DIR."""
    run_dir = Path(run_dir)
    figures: dict[str, str] = {}
    sup = arrays.get("superdiagnostic")
    if sup:
        if plot_roc(sup, run_dir / "roc_superdiagnostic.png"):
            figures["ROC curves (superdiagnostic)"] = "roc_superdiagnostic.png"
        if plot_confusion(sup, run_dir / "confusion_superdiagnostic.png"):
            figures["Confusion matrices (superdiagnostic)"] = "confusion_superdiagnostic.png"
    (run_dir / "metrics.json").write_text(json.dumps({"info": info, "metrics": metrics}, indent=1), encoding="utf-8")
    text = render_markdown(info, metrics, figures)
    (run_dir / "report.md").write_text(text, encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(text, run_dir), encoding="utf-8")
    return {"md": run_dir / "report.md", "html": run_dir / "report.html", "json": run_dir / "metrics.json"}
