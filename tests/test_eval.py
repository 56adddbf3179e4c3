"""Batch evaluation: labels, 12SL mapping, metrics vs scikit-learn, resume after SIGKILL, corrupt
records, Dask = single process, comparison, Challenge folders. Real PTB-XL fold-9 records at
100 Hz through the real pipeline (criteria only, no retrieval) keep it to seconds."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from ragecg.errors import UsageError
from ragecg.app.eval import labels as L
from ragecg.app.eval.metrics import bootstrap_indices, bootstrap_weights, evaluate_arrays, weighted_auc
from ragecg.app.eval.runner import PREDICTIONS, read_predictions, run_items, select_ptbxl_items
from ragecg.app.eval.scoring import compare_runs, evaluate_systems, task_arrays
from ragecg.app.eval.twelvesl import load_12sl_statements, load_mapping, twelvesl_scp_codes

REPO = Path(__file__).resolve().parents[1]
ROW_KEYS = ("record_id", "ecg_id", "fold", "status", "error", "codes", "scores", "criteria_scores")


def _strip(row: dict) -> dict:
    return {k: row.get(k) for k in ROW_KEYS}


@pytest.fixture(scope="module")
def ptbxl(data_dir):
    d = data_dir / "ptbxl"
    return {"dir": d, "db": L.load_database(d), "statements": L.load_statements(d)}


@pytest.fixture(scope="module")
def fold9_ids(ptbxl):
    db = ptbxl["db"]
    return [int(i) for i in db[db.strat_fold == 9].sort_index().index[:12]]


@pytest.fixture(scope="module")
def resources():
    from ragecg.pipeline import Resources
    from ragecg.settings import get_settings
    return Resources(settings=get_settings(), use_llm=False, use_retrieval=False)


def _items(ptbxl, ids):
    db = ptbxl["db"]
    items, missing = select_ptbxl_items(db.loc[ids], ptbxl["dir"], folds=[9], sampling_rate_hz=100)
    assert not missing
    return items


def _mini_ptbxl(root: Path, src: Path, ids: list[int], absent: list[int] = ()) -> Path:
    """A PTB-XL folder holding only `ids` (their metadata rows and 100 Hz files); `absent` rows
    are listed in the metadata without files."""
    root.mkdir(parents=True, exist_ok=True)
    db = pd.read_csv(src / "ptbxl_database.csv")
    db[db.ecg_id.isin(list(ids) + list(absent))].to_csv(root / "ptbxl_database.csv", index=False)
    shutil.copy(src / "scp_statements.csv", root / "scp_statements.csv")
    for _, row in db[db.ecg_id.isin(ids)].iterrows():
        for ext in (".hea", ".dat"):
            dst = root / (row.filename_lr + ext)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / (row.filename_lr + ext), dst)
    return root


def _cli(*args, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ragecg.cli", "evaluate", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if kw.get("popen"):
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=kw.get("cwd"))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=kw.get("cwd"))


# ------------------------------------------------------------------ labels
def test_task_labels_on_real_rows(ptbxl):
    db, st = ptbxl["db"], ptbxl["statements"]
    tasks = {t: L.task_definition(t, st) for t in L.TASKS}
    assert {t: len(tasks[t].classes) for t in L.TASKS} == {"superdiagnostic": 5, "subdiagnostic": 23, "diagnostic": 44,
                                                           "form": 19, "rhythm": 12, "all": 71}
    # ecg_id 39 (fold 9): IMI 15, LNGQT 100, NST_ 100, DIG 100, ABQRS 0, SR 0 — every likelihood counts
    row = db.at[39, "scp_codes"]
    assert L.record_labels(row, tasks["superdiagnostic"]) == {"MI", "STTC"}
    assert L.record_labels(row, tasks["subdiagnostic"]) == {"IMI", "STTC", "NST_"}
    assert L.record_labels(row, tasks["diagnostic"]) == {"IMI", "LNGQT", "NST_", "DIG"}
    assert L.record_labels(row, tasks["form"]) == {"LNGQT", "NST_", "DIG", "ABQRS"}
    assert L.record_labels(row, tasks["rhythm"]) == {"SR"}
    assert L.record_labels(row, tasks["all"]) == set(row)
    # ecg_id 45: IRBBB, RAO/RAE 50, RVH 35, SR: no form statement -> excluded from the form task
    row = db.at[45, "scp_codes"]
    assert L.record_labels(row, tasks["superdiagnostic"]) == {"CD", "HYP"}
    assert L.record_labels(row, tasks["subdiagnostic"]) == {"IRBBB", "RAO/RAE", "RVH"}
    assert L.record_labels(row, tasks["form"]) == set()
    # ecg_id 1: LVOLT with likelihood 0 still counts for form
    assert L.record_labels(db.at[1, "scp_codes"], tasks["form"]) == {"LVOLT"}
    # aggregation of scores (max over members) and chosen codes (any member)
    sup = tasks["superdiagnostic"]
    agg = L.aggregate_scores({"IMI": 0.2, "ASMI": 0.7, "NORM": 0.1, "SR": 0.9}, sup)
    assert agg["MI"] == 0.7 and agg["NORM"] == 0.1 and agg["CD"] == 0.0
    assert L.aggregate_chosen(["ASMI", "SR"], sup) == {"MI"}
    # per-task exclusion: fewer records in form than in superdiagnostic
    n = {t: sum(1 for c in db.scp_codes if L.record_labels(c, tasks[t])) for t in ("superdiagnostic", "form", "all")}
    assert n["form"] < n["superdiagnostic"] < n["all"] == len(db)


def test_bad_ptbxl_dir_is_input_error(tmp_path):
    from ragecg.errors import InputError
    with pytest.raises(InputError, match="not a PTB-XL folder"):
        L.load_database(tmp_path)


# ------------------------------------------------------------------ 12SL
def test_twelvesl_mapping_table(data_dir):
    from ragecg.values import scp_codes
    mapping = load_mapping()
    known_scp = set(scp_codes())
    assert all(c in known_scp for codes in mapping.values() for c in codes)
    with open(data_dir / "ptbxl_plus/labels/mapping/12slv23ToSNOMED.csv", encoding="utf-8-sig") as fh:
        acronyms = {r["Acronym"].strip() for r in csv.DictReader(fh)}
    assert set(mapping) <= acronyms
    stm = load_12sl_statements(data_dir / "ptbxl_plus")
    assert len(stm) == 4381
    assert twelvesl_scp_codes(stm[21809]) == {"SR", "IMI"}          # ['NSR', 'IMI', 'AU', 'AB']
    assert twelvesl_scp_codes(stm[9]) == {"SR", "NORM"}             # ['NSR', 'NML']
    assert twelvesl_scp_codes(["SBRAD", "FAV", "LVH2", "LAD3"]) == {"SBRAD", "1AVB", "LPR", "LVH"}


# ------------------------------------------------------------------ metrics
def test_metrics_match_sklearn_on_hand_made_example():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    s = np.array([[.9, .2, .1], [.6, .6, .3], [.6, .8, .2], [.1, .1, .9], [.3, .3, .0], [.5, .55, .4], [.2, .6, .5]])
    p = s >= 0.5
    res = evaluate_arrays(y, s, p, ["A", "B", "C"], n_boot=200)
    assert res["classes"] == ["A", "B"]
    assert res["skipped_classes"] == [{"class": "C", "reason": "no positive record"}]
    ref_auc = [roc_auc_score(y[:, j], s[:, j]) for j in (0, 1)]
    assert res["macro_auc"] == pytest.approx(np.mean(ref_auc))
    assert res["macro_auc"] == pytest.approx(roc_auc_score(y[:, :2], s[:, :2], average="macro"))
    assert res["macro_f1"] == pytest.approx(f1_score(y[:, :2], p[:, :2], average="macro"))
    for j, row in enumerate(res["per_class"]):
        tn, fp, fn, tp = confusion_matrix(y[:, j], p[:, j]).ravel()
        assert row["auc"] == pytest.approx(ref_auc[j])
        assert row["f1"] == pytest.approx(f1_score(y[:, j], p[:, j]))
        assert row["sensitivity"] == pytest.approx(tp / (tp + fn))
        assert row["specificity"] == pytest.approx(tn / (tn + fp))
        assert row["auc_ci"][0] <= row["auc"] <= row["auc_ci"][1]
    assert res["macro_auc_ci"][0] <= res["macro_auc"] <= res["macro_auc_ci"][1]


def test_bootstrap_weights_equal_explicit_resamples_and_are_fast():
    rng = np.random.default_rng(3)
    n = 2198
    y = rng.random(n) < 0.2
    s = np.round(rng.random(n) + 0.3 * y, 2)            # ties on purpose
    idx, w = bootstrap_indices(n, 6, seed=0), bootstrap_weights(n, 6, seed=0)
    got = weighted_auc(y, s, w)
    for b in range(6):
        assert got[b] == pytest.approx(roc_auc_score(y[idx[b]], s[idx[b]]), abs=1e-12)
    Y = rng.random((n, 5)) < 0.2
    S = rng.random((n, 5)) + 0.2 * Y
    t = time.perf_counter()
    res = evaluate_arrays(Y, S, S > 0.6, list("abcde"), n_boot=1000)
    assert time.perf_counter() - t < 10.0                 # vectorised: ~0.3 s on a laptop core
    assert res["n_boot"] == 1000 and res["macro_auc_ci"][0] < res["macro_auc"] < res["macro_auc_ci"][1]


# ------------------------------------------------------------------ runs on real records
def test_resume_after_sigkill_loses_nothing(ptbxl, fold9_ids, tmp_path, resources):
    ids = fold9_ids[:8]
    root = _mini_ptbxl(tmp_path / "ptbxl", ptbxl["dir"], ids)
    run = tmp_path / "run"
    args = ["--ptbxl", root, "--folds", "9", "--no-llm", "--no-retrieval", "--out", run, "--bootstrap", "50",
            "--tasks", "superdiagnostic,rhythm"]
    proc = _cli(*args, popen=True)
    pred = run / PREDICTIONS
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if pred.is_file() and pred.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    n_before = pred.read_bytes().count(b"\n")
    assert 3 <= n_before < len(ids)
    with open(pred, "ab") as fh:              # a torn write, as a kill mid-line leaves it
        fh.write(b'{"record_id":"99999","sta')
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    rows = read_predictions(run)
    lines = [ln for ln in pred.read_bytes().split(b"\n") if ln]
    assert len(lines) == len(rows) == len(ids)                          # no duplicate, torn line gone
    assert sorted(r["ecg_id"] for r in rows) == sorted(ids)
    # same rows and metrics as an uninterrupted run
    ref = run_items(_items(ptbxl, ids), tmp_path / "ref", {"dataset": "ptbxl", "use_llm": False, "use_retrieval": False},
                    settings=resources.settings, resources=resources)
    assert sorted(map(_strip, rows), key=lambda r: r["ecg_id"]) == sorted(map(_strip, ref.rows), key=lambda r: r["ecg_id"])
    labels_of = {str(int(k)): v for k, v in ptbxl["db"]["scp_codes"].items()}
    tasks = [L.task_definition(t, ptbxl["statements"]) for t in ("superdiagnostic", "rhythm")]
    from ragecg.app.eval.twelvesl import twelvesl_rows
    stm = load_12sl_statements(ptbxl["dir"].parent / "ptbxl_plus")
    base = {str(k): v for k, v in twelvesl_rows(stm, ids, list(ptbxl["statements"].index)).items()}
    expected, _ = evaluate_systems(ref.rows, labels_of, tasks, twelvesl=base, n_boot=50)
    got = json.loads((run / "metrics.json").read_text())["metrics"]
    assert got == json.loads(json.dumps(expected))


def test_corrupt_and_absent_records_are_reported(ptbxl, fold9_ids, tmp_path):
    ids, absent = fold9_ids[:4], fold9_ids[4:5]
    root = _mini_ptbxl(tmp_path / "ptbxl", ptbxl["dir"], ids, absent=absent)
    db = ptbxl["db"]
    dat = root / (db.at[ids[1], "filename_lr"] + ".dat")
    dat.write_bytes(dat.read_bytes()[:5000])          # truncated signal file
    run = tmp_path / "run"
    res = _cli("--ptbxl", root, "--folds", "9", "--no-llm", "--no-retrieval", "--out", run, "--bootstrap", "20",
               "--tasks", "superdiagnostic")
    assert res.returncode == 6, res.stderr
    assert f"failed {ids[1]}:" in res.stderr and "truncated" in res.stderr
    assert "absent on disk" in res.stderr
    rows = {r["ecg_id"]: r for r in read_predictions(run)}
    assert set(rows) == set(ids)
    assert rows[ids[1]]["status"] == "failed" and rows[ids[1]]["error_kind"] == "input"
    assert all(rows[i]["status"] == "ok" for i in ids if i != ids[1])
    with open(run / "failures.csv") as fh:
        assert [r["record_id"] for r in csv.DictReader(fh)] == [str(ids[1])]
    report = (run / "report.md").read_text()
    assert "| 9 | 5 | 1 | 3 | 1 |" in report                 # listed, absent, diagnosed, failed
    assert "ragecg evaluate" in report and "sha256 ptbxl_database.csv" in report
    assert "ragecg-all" in report and "12SL" in report
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html


def test_cli_input_and_usage_errors(tmp_path):
    from ragecg.app.eval.cli import _parse_folds, _parse_tasks
    res = _cli("--ptbxl", tmp_path / "nope")
    assert res.returncode == 3 and "PTB-XL folder does not exist" in res.stderr
    assert _cli("--sampling-rate", "250").returncode == 2
    assert _parse_folds("9,10") == [9, 10] and _parse_tasks("form,rhythm") == ["form", "rhythm"]
    for bad in ("11", "0", "x", ""):
        with pytest.raises(UsageError):
            _parse_folds(bad)
    with pytest.raises(UsageError, match="bogus"):
        _parse_tasks("superdiagnostic,bogus")


def test_resume_with_other_settings_is_refused(ptbxl, fold9_ids, tmp_path, resources):
    items = _items(ptbxl, fold9_ids[:1])
    cfg = {"dataset": "ptbxl", "folds": [9], "use_llm": False, "use_retrieval": False}
    run_items(items, tmp_path / "run", cfg, settings=resources.settings, resources=resources)
    with pytest.raises(UsageError, match="use_retrieval"):
        run_items(items, tmp_path / "run", {**cfg, "use_retrieval": True}, settings=resources.settings)


def test_dask_cluster_equals_single_process(ptbxl, fold9_ids, tmp_path, resources):
    from distributed import LocalCluster
    items = _items(ptbxl, fold9_ids[:5])
    cfg = {"dataset": "ptbxl", "use_llm": False, "use_retrieval": False}
    single = run_items(items, tmp_path / "single", cfg, settings=resources.settings, resources=resources)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dask = run_items(items, tmp_path / "dask", cfg, settings=resources.settings, scheduler=cluster.scheduler_address)
    key = lambda r: r["ecg_id"]  # noqa: E731
    assert sorted(map(_strip, dask.rows), key=key) == sorted(map(_strip, single.rows), key=key)
    assert sum(r["status"] == "ok" for r in single.rows) >= 4


@pytest.mark.slow
def test_process_pool_equals_single_process(ptbxl, fold9_ids, tmp_path, resources):
    items = _items(ptbxl, fold9_ids[:4])
    cfg = {"dataset": "ptbxl", "use_llm": False, "use_retrieval": False}
    single = run_items(items, tmp_path / "single", cfg, settings=resources.settings, resources=resources)
    pool = run_items(items, tmp_path / "pool", cfg, settings=resources.settings, workers=2)
    key = lambda r: r["ecg_id"]  # noqa: E731
    assert sorted(map(_strip, pool.rows), key=key) == sorted(map(_strip, single.rows), key=key)


def test_torn_last_line_is_cut_and_corrupt_middle_line_refused(tmp_path):
    from ragecg.errors import InputError
    pred = tmp_path / PREDICTIONS
    pred.write_bytes(b'{"record_id":"1","status":"ok"}\n{"record_id":"2","status":"ok"}\n{"record_')
    assert [r["record_id"] for r in read_predictions(tmp_path, repair=True)] == ["1", "2"]
    assert pred.read_bytes().endswith(b'"ok"}\n')
    pred.write_bytes(b'{"record_id":"1"}\nnot json\n{"record_id":"2"}\n')
    with pytest.raises(InputError, match="line 2 is corrupt"):
        read_predictions(tmp_path)


# ------------------------------------------------------------------ comparison, Challenge
def test_compare_runs_paired_difference(ptbxl):
    st = ptbxl["statements"]
    task = L.task_definition("superdiagnostic", st)
    db = ptbxl["db"]
    ids = [int(i) for i in db[db.strat_fold == 9].index[:60]]
    labels_of = {str(i): db.at[i, "scp_codes"] for i in ids}
    rng = np.random.default_rng(0)
    codes = list(st.index)

    def rows(noise):
        out = []
        for i in ids:
            truth = set(labels_of[str(i)])
            sc = {c: float(np.clip((c in truth) * 0.5 + noise * rng.random(), 0, 1)) for c in codes}
            out.append({"record_id": str(i), "ecg_id": i, "status": "ok", "scores": sc,
                        "codes": [c for c, v in sc.items() if v >= 0.5]})
        return out

    a, b = rows(1.0), rows(0.6)
    res = compare_runs(a, b, labels_of, [task], n_boot=300)["tasks"]["superdiagnostic"]
    _, y, sa, _ = task_arrays(a, labels_of, task)
    _, _, sb, _ = task_arrays(b, labels_of, task)
    for j, cls in enumerate(task.classes):
        row = next((r for r in res["per_class"] if r["class"] == cls), None)
        if row is None:
            continue
        assert row["auc_diff"] == pytest.approx(roc_auc_score(y[:, j], sb[:, j]) - roc_auc_score(y[:, j], sa[:, j]))
        assert row["auc_diff_ci"][0] <= row["auc_diff"] <= row["auc_diff_ci"][1]
    assert res["macro_auc_diff"] > 0                     # less noise ranks better


def test_challenge_folder_labels_and_run(ptbxl, fold9_ids, tmp_path, resources):
    import wfdb

    from ragecg.app.eval.challenge import challenge_items, challenge_task
    folder = tmp_path / "challenge" / "g1"
    folder.mkdir(parents=True)
    dx = {"A0001": "426783006,164889003", "A0002": "59118001,39732003", "A0003": "6374002"}
    for (name, codes), eid in zip(dx.items(), fold9_ids):
        rec = wfdb.rdrecord(str(ptbxl["dir"] / ptbxl["db"].at[eid, "filename_lr"]))
        wfdb.wrsamp(name, fs=rec.fs, units=rec.units, sig_name=rec.sig_name, p_signal=rec.p_signal, fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder),
                    comments=["Age: 50", "Sex: Male", f"Dx: {codes}"])
    items, labels_of = challenge_items(tmp_path / "challenge")
    assert [it["record_id"] for it in items] == ["g1/A0001", "g1/A0002", "g1/A0003"]
    assert labels_of["g1/A0001"].keys() == {"SR", "AFIB"}
    assert labels_of["g1/A0002"].keys() == {"CRBBB"}           # RBBB scored as CRBBB; LAD has no SCP statement
    assert labels_of["g1/A0003"] == {}                          # BBB unmapped -> excluded from the task
    res = run_items(items, tmp_path / "run", {"dataset": "challenge", "use_llm": False, "use_retrieval": False},
                    settings=resources.settings, resources=resources)
    assert len(res.rows) == 3 and all(r["status"] == "ok" for r in res.rows)
    metrics, _ = evaluate_systems(res.rows, labels_of, [challenge_task()], n_boot=0)
    assert metrics["challenge"]["ragecg"]["n_records"] == 2
