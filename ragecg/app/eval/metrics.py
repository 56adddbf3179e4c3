"""Multi-label metrics with bootstrap confidence intervals, vectorised over the resamples.

* AUC: one-vs-rest per class from the per-class scores (ties count 1/2, as scikit-learn's
  `roc_auc_score`); macro AUC = unweighted mean over the evaluable classes.
* F1, sensitivity, specificity: per class from the chosen codes; macro F1 = unweighted mean.
* A class is evaluable when both label values occur among the evaluated records; the others are
  skipped and listed with the reason.
* 95% CIs: percentile bootstrap over records (resample records with replacement, `n_boot`
  resamples, default 1000, seed 0). A resample is a vector of multiplicities `w` (how often each
  record was drawn), and every metric is computed with those weights at once for all resamples:
  AUC as the weighted Mann-Whitney statistic over score levels, counts as `W @ indicator`. A
  resample where a class has no positive (or no negative) gives NaN for that class and is left
  out of that class's interval; macro values per resample average the classes that are defined.
* Paired comparison (`compare_arrays`): the same resamples for both systems, CI of the difference.
"""
from __future__ import annotations

import numpy as np

DEFAULT_N_BOOT = 1000
DEFAULT_SEED = 0
CI_LEVEL = 0.95


def bootstrap_indices(n: int, n_boot: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(n_boot, n) record indices drawn with replacement (numpy default_rng(seed))."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_weights(n: int, n_boot: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(n_boot, n) multiplicities of each record in each resample (float32)."""
    if n_boot <= 0 or n == 0:
        return np.zeros((0, n), dtype=np.float32)
    idx = bootstrap_indices(n, n_boot, seed)
    flat = (np.arange(n_boot)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC of scores `s` for binary labels `y` under each row of weights `w` (B x n) -> (B,).

    NaN where a row has no positive or no negative weight. With w = 1 it equals roc_auc_score.
    """
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    w = np.atleast_2d(w)
    order = np.argsort(s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    ws = w[:, order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    pos = np.add.reduceat(ws * y_sorted, starts, axis=1)
    neg = np.add.reduceat(ws * ~y_sorted, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    denom = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)


def weighted_counts(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """tp/fp/fn/tn per resample and class: y, p are (n, C) bool, w (B, n) -> each (B, C)."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=bool)
    w = np.atleast_2d(w).astype(np.float64)
    return {"tp": w @ (y & p), "fp": w @ (~y & p), "fn": w @ (y & ~p), "tn": w @ (~y & ~p)}


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def rates_from_counts(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """F1, sensitivity, specificity from counts (NaN where undefined)."""
    return {"f1": _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"]),
            "sensitivity": _ratio(c["tp"], c["tp"] + c["fn"]),
            "specificity": _ratio(c["tn"], c["tn"] + c["fp"])}


def _ci(samples: np.ndarray) -> list[float] | None:
    """Percentile interval over the finite samples (axis 0), None when there are none."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    a = (1 - CI_LEVEL) / 2
    return [float(np.quantile(finite, a)), float(np.quantile(finite, 1 - a))]


def _nanmean_rows(m: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(m)
        return np.where(ok.any(axis=1), np.where(ok, m, 0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1), np.nan)


def evaluable_classes(y: np.ndarray, classes: list[str]) -> tuple[list[int], list[dict]]:
    """Indices of classes with both label values; the others with the reason."""
    keep, skipped = [], []
    n_pos = y.sum(axis=0)
    for j, cls in enumerate(classes):
        if n_pos[j] == 0:
            skipped.append({"class": cls, "reason": "no positive record"})
        elif n_pos[j] == y.shape[0]:
            skipped.append({"class": cls, "reason": "no negative record"})
        else:
            keep.append(j)
    return keep, skipped


def _system_samples(y, s, p, cols, w):
    """Per-class AUC and rates for weights w (B x n) over the classes `cols`."""
    auc = np.column_stack([weighted_auc(y[:, j], s[:, j], w) for j in cols]) if cols else np.zeros((w.shape[0], 0))
    rates = rates_from_counts(weighted_counts(y[:, cols], p[:, cols], w))
    return auc, rates


def evaluate_arrays(y: np.ndarray, s: np.ndarray, p: np.ndarray, classes: list[str], *,
                    n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> dict:
    """Metrics of one system on one task. y, p: (n, C) bool; s: (n, C) scores."""
    y, p, s = np.asarray(y, bool), np.asarray(p, bool), np.asarray(s, float)
    n = y.shape[0]
    cols, skipped = evaluable_classes(y, classes) if n else ([], [{"class": c, "reason": "no record"} for c in classes])
    point_auc, point_rates = _system_samples(y, s, p, cols, np.ones((1, n)))
    w = bootstrap_weights(n, n_boot, seed)
    boot_auc, boot_rates = _system_samples(y, s, p, cols, w) if len(w) else (None, None)
    per_class = []
    for k, j in enumerate(cols):
        row = {"class": classes[j], "n_pos": int(y[:, j].sum()), "n_chosen": int(p[:, j].sum()),
               "auc": float(point_auc[0, k])}
        row.update({m: float(point_rates[m][0, k]) for m in ("f1", "sensitivity", "specificity")})
        if boot_auc is not None:
            row["auc_ci"] = _ci(boot_auc[:, k])
            row.update({f"{m}_ci": _ci(boot_rates[m][:, k]) for m in ("f1", "sensitivity", "specificity")})
        per_class.append(row)
    out = {"n_records": n, "n_classes": len(cols), "classes": [classes[j] for j in cols], "skipped_classes": skipped,
           "macro_auc": float(np.mean(point_auc[0])) if cols else None,
           "macro_f1": float(np.nanmean(point_rates["f1"][0])) if cols else None,
           "per_class": per_class, "n_boot": int(len(w)), "seed": seed}
    if boot_auc is not None and cols:
        out["macro_auc_ci"] = _ci(_nanmean_rows(boot_auc))
        out["macro_f1_ci"] = _ci(_nanmean_rows(boot_rates["f1"]))
    return out


def compare_arrays(y: np.ndarray, s_a: np.ndarray, p_a: np.ndarray, s_b: np.ndarray, p_b: np.ndarray,
                   classes: list[str], *, n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> dict:
    """Paired bootstrap of B - A on the same records: per-class and macro AUC/F1 differences."""
    y = np.asarray(y, bool)
    n = y.shape[0]
    cols, skipped = evaluable_classes(y, classes)
    ones = np.ones((1, n))
    w = bootstrap_weights(n, n_boot, seed)
    res = {}
    for name, s, p in (("a", s_a, p_a), ("b", s_b, p_b)):
        s, p = np.asarray(s, float), np.asarray(p, bool)
        res[name] = (_system_samples(y, s, p, cols, ones), _system_samples(y, s, p, cols, w) if len(w) else None)
    (pa_auc, pa_rates), ba = res["a"]
    (pb_auc, pb_rates), bb = res["b"]
    per_class = []
    for k, j in enumerate(cols):
        row = {"class": classes[j], "n_pos": int(y[:, j].sum()),
               "auc_a": float(pa_auc[0, k]), "auc_b": float(pb_auc[0, k]),
               "auc_diff": float(pb_auc[0, k] - pa_auc[0, k]),
               "f1_a": float(pa_rates["f1"][0, k]), "f1_b": float(pb_rates["f1"][0, k]),
               "f1_diff": float(pb_rates["f1"][0, k] - pa_rates["f1"][0, k])}
        if ba is not None:
            row["auc_diff_ci"] = _ci(bb[0][:, k] - ba[0][:, k])
            row["f1_diff_ci"] = _ci(bb[1]["f1"][:, k] - ba[1]["f1"][:, k])
        per_class.append(row)
    out = {"n_records": n, "classes": [classes[j] for j in cols], "skipped_classes": skipped, "per_class": per_class,
           "macro_auc_a": float(np.mean(pa_auc[0])) if cols else None,
           "macro_auc_b": float(np.mean(pb_auc[0])) if cols else None,
           "macro_f1_a": float(np.nanmean(pa_rates["f1"][0])) if cols else None,
           "macro_f1_b": float(np.nanmean(pb_rates["f1"][0])) if cols else None, "n_boot": int(len(w)), "seed": seed}
    if cols:
        out["macro_auc_diff"] = out["macro_auc_b"] - out["macro_auc_a"]
        out["macro_f1_diff"] = out["macro_f1_b"] - out["macro_f1_a"]
        if ba is not None:
            out["macro_auc_diff_ci"] = _ci(_nanmean_rows(bb[0]) - _nanmean_rows(ba[0]))
            out["macro_f1_diff_ci"] = _ci(_nanmean_rows(bb[1]["f1"]) - _nanmean_rows(ba[1]["f1"]))
    return out
