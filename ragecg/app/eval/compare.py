"""`ragecg evaluate --compare RUN_A RUN_B`: B - A per class and macro, paired bootstrap over the
records diagnosed in both runs (same resamples for both systems, seed 0)."""
from __future__ import annotations

import json
from pathlib import Path

from ragecg.errors import InputError, UsageError

from .challenge import challenge_items, challenge_task
from .labels import load_database, load_statements, task_definition
from .runner import PREDICTIONS, RUN_CONFIG, read_predictions
from .scoring import compare_runs


def load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """run.json and the prediction rows of a run folder."""
    run_dir = Path(run_dir)
    if not (run_dir / PREDICTIONS).is_file() or not (run_dir / RUN_CONFIG).is_file():
        raise InputError(f"not a run folder ({PREDICTIONS} or {RUN_CONFIG} is missing)", path=str(run_dir))
    try:
        config = json.loads((run_dir / RUN_CONFIG).read_text(encoding="utf-8"))
    except ValueError:
        raise InputError(f"{RUN_CONFIG} is corrupt", path=str(run_dir)) from None
    return config, read_predictions(run_dir)


def compare_run_dirs(run_a: Path, run_b: Path, *, tasks: list[str], ptbxl_dir: Path | None = None,
                     n_boot: int = 1000, seed: int = 0) -> dict:
    cfg_a, rows_a = load_run(run_a)
    cfg_b, rows_b = load_run(run_b)
    if cfg_a.get("dataset") != cfg_b.get("dataset"):
        raise UsageError(f"runs are on different data sets ({cfg_a.get('dataset')} vs {cfg_b.get('dataset')})")
    if cfg_a.get("dataset") == "challenge":
        _, labels_of = challenge_items(Path(cfg_a["data_dir"]))
        task_defs = [challenge_task()]
    else:
        ptbxl_dir = Path(ptbxl_dir or cfg_a["data_dir"])
        db = load_database(ptbxl_dir)
        statements = load_statements(ptbxl_dir)
        labels_of = {str(int(eid)): codes for eid, codes in db["scp_codes"].items()}
        task_defs = [task_definition(t, statements) for t in tasks]
    rows_a = [r for r in rows_a if r["record_id"] in labels_of]
    rows_b = [r for r in rows_b if r["record_id"] in labels_of]
    out = compare_runs(rows_a, rows_b, labels_of, task_defs, n_boot=n_boot, seed=seed)
    out.update(run_a=str(run_a), run_b=str(run_b), mode_a=_mode(cfg_a), mode_b=_mode(cfg_b))
    return out


def _mode(cfg: dict) -> str:
    return ("llm" if cfg.get("use_llm") else "criteria-only") + ("" if cfg.get("use_retrieval", True) else ", no retrieval")


def _f(v) -> str:
    return "–" if v is None else f"{v:+.3f}"


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def render_compare(res: dict) -> str:
    L = ["# Comparison: B - A", "", f"A = {res['run_a']} ({res['mode_a']})", f"B = {res['run_b']} ({res['mode_b']})", "",
         f"Records diagnosed in both: {res['n_common']} (only in A: {res['n_only_a']}, only in B: {res['n_only_b']})."
         " 95% CIs: paired bootstrap over records.", ""]
    for task, m in res["tasks"].items():
        L += [f"## {task}", "", f"macro AUC A {m['macro_auc_a'] or 0:.3f}, B {m['macro_auc_b'] or 0:.3f}, "
              f"B - A {_f(m.get('macro_auc_diff'))}{_ci(m.get('macro_auc_diff_ci'))}; macro F1 B - A "
              f"{_f(m.get('macro_f1_diff'))}{_ci(m.get('macro_f1_diff_ci'))}", "",
              "| class | positives | AUC A | AUC B | AUC B - A [95% CI] | F1 A | F1 B | F1 B - A [95% CI] |",
              "|---|---:|---:|---:|---|---:|---:|---|"]
        for r in m["per_class"]:
            L.append(f"| {r['class']} | {r['n_pos']} | {r['auc_a']:.3f} | {r['auc_b']:.3f} | {_f(r['auc_diff'])}"
                     f"{_ci(r.get('auc_diff_ci'))} | {r['f1_a']:.3f} | {r['f1_b']:.3f} | {_f(r['f1_diff'])}{_ci(r.get('f1_diff_ci'))} |")
        L.append("")
    return "\n".join(L)
