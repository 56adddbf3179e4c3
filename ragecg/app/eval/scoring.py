"""Prediction rows + labels -> metrics per task and system (ragecg, the 12SL baseline).

Systems, all on the same task-specific record set (records with a label in the task):

* ``ragecg``: records diagnosed (status ok), final per-code scores (`diagnosis.scores`), chosen
  codes (`diagnosis.codes`). When GE 12SL statements are available the set is the ok records that
  also have 12SL statements (all PTB-XL+ records do).
* ``12SL``: the GE 12SL baseline (`twelvesl.py`) on exactly the same records; its paired
  difference with ragecg (``ragecg - 12SL``, paired bootstrap) is reported.
* ``ragecg-criteria``: the criteria scores (`candidate_scores`) when the LLM was on.
* ``ragecg-all`` / ``12SL-all``: when records were refused, every record of the run, a refused
  record scoring 0 for every code with no code chosen (intention to diagnose).
"""
from __future__ import annotations

import numpy as np

from .labels import Task, aggregate_chosen, aggregate_scores, record_labels
from .metrics import DEFAULT_N_BOOT, DEFAULT_SEED, compare_arrays, evaluate_arrays


def row_order(row: dict) -> tuple:
    """Sort key: ecg_id when there is one, else the record id."""
    eid = row.get("ecg_id")
    return (eid is None, eid if eid is not None else 0, row["record_id"])


def task_arrays(rows: list[dict], labels_of: dict, task: Task, score_key: str = "scores"):
    """(record ids, Y, S, P) for rows whose record has a label in `task`.

    `labels_of` maps record_id -> scp_codes dict; a failed row scores 0 everywhere."""
    classes = task.classes
    ids, ys, ss, ps = [], [], [], []
    for r in rows:
        lab = record_labels(labels_of[r["record_id"]], task)
        if not lab:
            continue
        agg = aggregate_scores(r.get(score_key) or {}, task)
        chosen = aggregate_chosen(r.get("codes") or [], task)
        ids.append(r["record_id"])
        ys.append([c in lab for c in classes])
        ss.append([agg[c] for c in classes])
        ps.append([c in chosen for c in classes])
    shape = (len(ids), len(classes))
    return (ids, np.array(ys, bool).reshape(shape), np.array(ss, float).reshape(shape),
            np.array(ps, bool).reshape(shape))


def evaluate_systems(rows: list[dict], labels_of: dict, tasks: list[Task], *, twelvesl: dict | None = None,
                     n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> tuple[dict, dict]:
    """Metrics {task: {system: metrics, "ragecg-12SL": paired difference}} and the arrays used
    {task: {system: (ids, Y, S, P)}} (for figures).

    `twelvesl` maps record_id -> {"scores", "codes"} rows of the baseline (None: no baseline)."""
    rows = sorted(rows, key=row_order)  # metrics (bootstrap included) do not depend on finishing order
    ok = [r for r in rows if r["status"] == "ok"]
    if twelvesl is not None:
        ok = [r for r in ok if r["record_id"] in twelvesl]
    use_llm = any(r.get("mode") == "llm" for r in ok)
    refused = any(r["status"] != "ok" for r in rows)
    metrics: dict = {}
    arrays: dict = {}
    for task in tasks:
        m, a = {}, {}
        a["ragecg"] = task_arrays(ok, labels_of, task)
        if use_llm:
            a["ragecg-criteria"] = task_arrays(ok, labels_of, task, "criteria_scores")
        if twelvesl is not None:
            base = [{"record_id": r["record_id"], "status": "ok", **twelvesl[r["record_id"]]} for r in ok]
            a["12SL"] = task_arrays(base, labels_of, task)
        if refused:
            a["ragecg-all"] = task_arrays(rows, labels_of, task)
            if twelvesl is not None:
                all_base = [{"record_id": r["record_id"], "status": "ok", **twelvesl[r["record_id"]]}
                            for r in rows if r["record_id"] in twelvesl]
                a["12SL-all"] = task_arrays(all_base, labels_of, task)
        for name, (ids, y, s, p) in a.items():
            m[name] = evaluate_arrays(y, s, p, task.classes, n_boot=n_boot, seed=seed)
        if "12SL" in a:
            _, y, s_r, p_r = a["ragecg"]
            _, _, s_b, p_b = a["12SL"]
            m["ragecg-12SL"] = compare_arrays(y, s_b, p_b, s_r, p_r, task.classes, n_boot=n_boot, seed=seed)
        metrics[task.name] = m
        arrays[task.name] = a
    return metrics, arrays


def compare_runs(rows_a: list[dict], rows_b: list[dict], labels_of: dict, tasks: list[Task], *,
                 n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> dict:
    """B - A per task on the records diagnosed in both runs (paired bootstrap)."""
    ok_a = {r["record_id"]: r for r in rows_a if r["status"] == "ok"}
    ok_b = {r["record_id"]: r for r in rows_b if r["status"] == "ok"}
    common = [r["record_id"] for r in sorted((ok_a[k] for k in set(ok_a) & set(ok_b)), key=row_order)]
    out = {"n_common": len(common), "n_only_a": len(set(ok_a) - set(ok_b)), "n_only_b": len(set(ok_b) - set(ok_a)),
           "tasks": {}}
    for task in tasks:
        _, y, s_a, p_a = task_arrays([ok_a[k] for k in common], labels_of, task)
        _, _, s_b, p_b = task_arrays([ok_b[k] for k in common], labels_of, task)
        out["tasks"][task.name] = compare_arrays(y, s_a, p_a, s_b, p_b, task.classes, n_boot=n_boot, seed=seed)
    return out
