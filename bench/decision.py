"""Decision-layer figures of one evaluation run (issue 17): what the printed statements are worth.

Reads RUN_DIR/predictions.jsonl of `ragecg evaluate` (PTB-XL, any folds) and prints, for ragecg's chosen
codes and GE 12SL's statements (PTB-XL+) on the same records:

* superdiagnostic macro F1 and macro AUC; NORM sensitivity/specificity; specificity of every superclass
* rhythm macro F1; AF sensitivity and the false AF rate (AFIB chosen on records without AFIB)
* per statement: sensitivity, specificity, F1 of ragecg and of 12SL
* statements per record: ragecg (chosen; chosen + borderline) vs 12SL vs the cardiologists' labels
* the overall categories ragecg printed, by NORM label
* what keeps the records the cardiologists labelled NORM out of Normal / Otherwise normal ECG: the reasons
  the category gives (definite abnormal statements, "borderline X", normal limits failed), counted over
  those records, and the records with a single reason (rows of runs that record `category_because`)

Usage (fold 9 is the validation fold; fold 10 is run once, by the coordinator):
    nice -n 10 python -m ragecg.cli evaluate --folds 9 --no-llm --no-retrieval --out RUN_DIR
    python bench/decision.py RUN_DIR [--common-with OTHER_RUN_DIR] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ragecg.app.eval.labels import aggregate_chosen, aggregate_scores, load_database, load_statements, record_labels, \
    task_definition
from ragecg.app.eval.twelvesl import STATEMENTS_PATH, load_12sl_statements, twelvesl_scp_codes
from ragecg.settings import get_settings


def _rates(y: np.ndarray, p: np.ndarray) -> dict:
    tp = int(np.sum(y & p)); fp = int(np.sum(~y & p)); fn = int(np.sum(y & ~p)); tn = int(np.sum(~y & ~p))
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    prec = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
    return {"n_pos": tp + fn, "sens": sens, "spec": spec, "ppv": prec, "f1": f1}


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties count one half)."""
    from scipy.stats import rankdata
    n1 = int(y.sum()); n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def evaluate(run_dir: Path, common_with: Path | None = None) -> dict:
    settings = get_settings()
    ptbxl = settings.data_dir / "ptbxl"
    db, st = load_database(ptbxl), load_statements(ptbxl)
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("status") == "ok" and r.get("ecg_id") is not None]
    if common_with is not None:          # the records both runs finished (e.g. a baseline still running)
        other = {json.loads(line).get("ecg_id") for line in (common_with / "predictions.jsonl").read_text().splitlines()
                 if line.strip() and json.loads(line).get("status") == "ok"}
        rows = [r for r in rows if r["ecg_id"] in other]
    twelve = load_12sl_statements(settings.data_dir / "ptbxl_plus") \
        if (settings.data_dir / "ptbxl_plus" / STATEMENTS_PATH).is_file() else {}
    rows = [r for r in rows if int(r["ecg_id"]) in twelve] if twelve else rows
    ids = [int(r["ecg_id"]) for r in rows]
    truth = [set(db.loc[i, "scp_codes"]) for i in ids]
    ours = [set(r["codes"]) for r in rows]
    ours_b = [set(r["codes"]) | set(r.get("borderline") or []) for r in rows]
    sl = [twelvesl_scp_codes(twelve.get(i, [])) for i in ids]
    out: dict = {"run_dir": str(run_dir), "records": len(rows)}

    for task_name in ("superdiagnostic", "rhythm"):
        task = task_definition(task_name, st)
        keep = [k for k, t in enumerate(truth) if record_labels({c: 1 for c in t}, task)]
        res = {"records": len(keep), "classes": {}}
        for system, chosen in (("ragecg", ours), ("12sl", sl)):
            per = {}
            for cls in task.classes:
                y = np.array([cls in record_labels({c: 1 for c in truth[k]}, task) for k in keep])
                p = np.array([cls in aggregate_chosen(chosen[k], task) for k in keep])
                if y.sum() == 0:
                    continue
                r = _rates(y, p)
                if system == "ragecg":
                    s = np.array([aggregate_scores(rows[k]["scores"], task)[cls] for k in keep])
                    r["auc"] = _auc(y, s)
                per[cls] = r
            res["classes"][system] = per
            res[f"{system}_macro_f1"] = float(np.nanmean([v["f1"] for v in per.values()]))
            if system == "ragecg":
                res["ragecg_macro_auc"] = float(np.nanmean([v["auc"] for v in per.values()]))
        out[task_name] = res

    af_true = np.array(["AFIB" in t for t in truth])
    for system, chosen in (("ragecg", ours), ("12sl", sl)):
        p = np.array(["AFIB" in c for c in chosen])
        out[f"af_{system}"] = {"n_af": int(af_true.sum()), "sensitivity": float(np.mean(p[af_true])) if af_true.any() else None,
                               "false_af_rate": float(np.mean(p[~af_true])), "false_af": int(np.sum(p[~af_true]))}

    codes = sorted({c for t in truth for c in t})
    per_code = {}
    for code in codes:
        y = np.array([code in t for t in truth])
        if y.sum() < 5:
            continue
        per_code[code] = {"ragecg": _rates(y, np.array([code in c for c in ours])),
                          "12sl": _rates(y, np.array([code in c for c in sl]))}
    out["per_statement"] = per_code
    out["statements_per_record"] = {
        "cardiologists": float(np.mean([len(t) for t in truth])),
        "ragecg_chosen": float(np.mean([len(c) for c in ours])),
        "ragecg_chosen_plus_borderline": float(np.mean([len(c) for c in ours_b])),
        "12sl": float(np.mean([len(c) for c in sl])),
    }
    norm = ["NORM" in t for t in truth]
    cats = Counter((("NORM" if n else "not NORM"), r.get("category")) for n, r in zip(norm, rows))
    out["categories"] = {f"{a} / {b}": v for (a, b), v in sorted(cats.items(), key=lambda kv: str(kv[0]))}
    out["norm_misses"] = norm_misses(rows, norm)
    return out


def _reason(text: str) -> str:
    """A category reason without the record's own value ("pr_interval_ms 212 (normal <= 200)" ->
    "pr_interval_ms (normal <= 200)"), so that reasons can be counted."""
    return re.sub(r" -?[\d.]+ \(", " (", text)


def norm_misses(rows: list[dict], norm: list[bool]) -> dict | None:
    """Reasons (Category.because) of the NORM-labelled records printed Borderline or Abnormal ECG."""
    if not rows or any("category_because" not in r for r in rows):
        return None
    out: dict = {}
    for cat in ("Abnormal ECG", "Borderline ECG"):
        miss = [r for n, r in zip(norm, rows) if n and r.get("category") == cat]
        reasons = [sorted({_reason(x) for x in r["category_because"]}) for r in miss]
        out[cat] = {"records": len(miss),
                    "reasons": dict(Counter(x for rs in reasons for x in rs).most_common(15)),
                    "sole_reason": dict(Counter(rs[0] for rs in reasons if len(rs) == 1).most_common(10))}
    return out


def render(res: dict) -> str:
    sd, rh = res["superdiagnostic"], res["rhythm"]
    L = [f"run {res['run_dir']}: {res['records']} records with 12SL statements", ""]
    L += ["| superdiagnostic | ragecg | 12SL |", "|---|---|---|",
          f"| macro F1 (chosen) | {sd['ragecg_macro_f1']:.3f} | {sd['12sl_macro_f1']:.3f} |",
          f"| macro AUC (scores) | {sd['ragecg_macro_auc']:.3f} | — |"]
    for cls in sorted(sd["classes"]["ragecg"]):
        a, b = sd["classes"]["ragecg"][cls], sd["classes"]["12sl"].get(cls, {})
        L.append(f"| {cls} sens / spec / F1 | {a['sens']:.3f} / {a['spec']:.3f} / {a['f1']:.3f} | "
                 f"{b.get('sens', float('nan')):.3f} / {b.get('spec', float('nan')):.3f} / {b.get('f1', float('nan')):.3f} |")
    L += [f"| rhythm macro F1 | {rh['ragecg_macro_f1']:.3f} | {rh['12sl_macro_f1']:.3f} |"]
    a, b = res["af_ragecg"], res["af_12sl"]
    L += [f"| AF sensitivity (n={a['n_af']}) | {a['sensitivity']:.3f} | {b['sensitivity']:.3f} |",
          f"| false AF rate (non-AF records) | {a['false_af_rate']:.4f} ({a['false_af']}) | "
          f"{b['false_af_rate']:.4f} ({b['false_af']}) |", ""]
    s = res["statements_per_record"]
    L += ["| statements per record | mean |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in s.items()] + [""]
    L += ["| statement | n | ragecg sens / spec / F1 | 12SL sens / spec / F1 |", "|---|---|---|---|"]
    for code, v in sorted(res["per_statement"].items(), key=lambda kv: -kv[1]["ragecg"]["n_pos"]):
        a, b = v["ragecg"], v["12sl"]
        L.append(f"| {code} | {a['n_pos']} | {a['sens']:.2f} / {a['spec']:.3f} / {a['f1']:.2f} | "
                 f"{b['sens']:.2f} / {b['spec']:.3f} / {b['f1']:.2f} |")
    L += ["", "| label / category | records |", "|---|---|"] + [f"| {k} | {v} |" for k, v in res["categories"].items()]
    if res.get("norm_misses"):
        L += ["", "NORM-labelled records not called (otherwise) normal: what the category gives as its reasons",
              "", "| category | reason | records | as the only reason |", "|---|---|---|---|"]
        for cat, v in res["norm_misses"].items():
            L.append(f"| {cat} | (all) | {v['records']} | |")
            L += [f"| | {k} | {n} | {v['sole_reason'].get(k, 0)} |" for k, n in v["reasons"].items()]
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--common-with", type=Path, default=None, help="only the records this other run also finished")
    a = ap.parse_args(argv)
    res = evaluate(a.run_dir, a.common_with)
    print("command: python bench/decision.py " + " ".join(sys.argv[1:]))
    print(render(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
