"""Metrics shared by the models, each a plain function over numpy arrays.

* Ranking (emotes): scores are a float array [comments, labels] (higher ranks first). "Strict"
  counts a hit when the comment's main emote (its most frequent, ties to the first) is in the top
  k; "any" when any of its emotes is.
* Single-label (sentiment): `classification_metrics`.
* Multi-label (emotions): `multilabel_metrics` over on/off decisions, `tune_thresholds` (one per
  label, the F1-best on the rows given: validation only; optionally shrunk towards one threshold
  for all labels, by `choose_shrink` on those rows too), `cross_fitted_decisions` (thresholds tuned
  on one half of the rows and applied to the other, both ways) and `argmax_accuracy`.
* Forecasts (trend): `forecast_metrics` (share MAE, Spearman across categories per forecast day,
  trend accuracy and macro-F1), `tercile_classes` (shares to -1/0/1 as labels are made),
  `interval_coverage`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np

__all__ = ["SHRINKS", "THRESHOLD_GRID", "argmax_accuracy", "choose_shrink", "classification_metrics", "cross_fitted_decisions",
           "forecast_metrics", "interval_coverage", "main_label", "majority_scores", "multilabel_metrics", "ranking_metrics",
           "spearman_by_group", "tercile_classes", "top_k", "topk_accuracy", "tune_thresholds"]


def main_label(labels: Sequence[str], counts: Sequence[int] | None = None) -> str:
    """The most frequent label, ties going to the one listed first."""
    if not labels:
        raise ValueError("a comment needs at least one label")
    totals: Counter[str] = Counter()
    for i, label in enumerate(labels):
        totals[label] += 1 if counts is None else int(counts[i])
    best = max(totals.values())
    return next(label for label in labels if totals[label] == best)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best labels per row, best first; ties go to the lower index."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def topk_accuracy(scores: np.ndarray, targets: Sequence[Collection[int]], *, k: int) -> float:
    """Share of rows whose top k holds at least one of that row's target label indices."""
    if len(targets) != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows but {len(targets)} targets")
    if not len(targets):
        return float("nan")
    best = top_k(scores, k)
    hits = sum(bool(set(row.tolist()) & set(t)) for row, t in zip(best, targets, strict=True))
    return hits / len(targets)


def ranking_metrics(scores: np.ndarray, *, main: Sequence[int], label_sets: Sequence[Collection[int]],
                    ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """`top{k}_strict` (main label) and `top{k}_any` (any label) for each k, as plain floats."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"top{k}_strict"] = topk_accuracy(scores, [[int(m)] for m in main], k=k)
        out[f"top{k}_any"] = topk_accuracy(scores, label_sets, k=k)
    return out


def majority_scores(train_main: Sequence[int], *, num_labels: int, n: int) -> np.ndarray:
    """The majority baseline as scores: every row ranks labels by their frequency in training."""
    freq = np.bincount(np.asarray(train_main, dtype=np.int64), minlength=num_labels).astype(np.float64)
    return np.broadcast_to(freq, (n, num_labels)).copy()


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], *, labels: Sequence[str]) -> dict:
    """Single-label figures over class indices 0..len(labels)-1: `accuracy`, `weighted_f1` (F1 per
    class weighted by its support), `macro_f1` (the plain mean over classes present in `y_true` or
    `y_pred`), `per_class` {label: precision, recall, f1, support} and `confusion` (rows: true,
    columns: predicted, in `labels` order)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    classes = list(range(len(labels)))
    if not len(y_true):
        return {"accuracy": float("nan"), "weighted_f1": float("nan"), "macro_f1": float("nan"), "n": 0,
                "per_class": {}, "confusion": [[0] * len(classes) for _ in classes]}
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    present = np.isin(classes, np.union1d(y_true, y_pred))
    return {"accuracy": float((y_true == y_pred).mean()),
            "weighted_f1": float((f * support).sum() / support.sum()),
            "macro_f1": float(f[present].mean()), "n": int(len(y_true)),
            "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                "support": int(support[i])} for i, lab in enumerate(labels)},
            "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist()}


# -- multi-label ---------------------------------------------------------------------------------------
THRESHOLD_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)  # the decision points of 2-decimal intensities


def _multi_hot(y: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"labels must be a [rows, labels] 0/1 array, not of shape {y.shape}")
    if scores is not None and np.shape(scores) != y.shape:
        raise ValueError(f"labels of shape {y.shape} but scores of shape {np.shape(scores)}")
    return y.astype(bool)


def multilabel_metrics(y_true: np.ndarray, on: np.ndarray, *, labels: Sequence[str]) -> dict:
    """Figures of on/off decisions [rows, labels] against the gold [rows, labels] (0/1): `macro_f1`
    (the plain mean of every label's F1, a label never gold nor predicted counting 0), `micro_f1`
    (over all (row, label) pairs), `macro_precision`, `macro_recall`, `exact_match` (all of a row's
    labels right), `n`, and `per_label` {label: precision, recall, f1, support, predicted}."""
    y, on = _multi_hot(y_true, on), np.asarray(on, dtype=bool)
    if y.shape[1] != len(labels):
        raise ValueError(f"{y.shape[1]} label columns but {len(labels)} label names")
    tp = (y & on).sum(0).astype(np.float64)
    fp = (~y & on).sum(0).astype(np.float64)
    fn = (y & ~on).sum(0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    micro_den = 2 * tp.sum() + fp.sum() + fn.sum()
    return {"macro_f1": float(f1.mean()), "micro_f1": float(2 * tp.sum() / micro_den) if micro_den else 0.0,
            "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
            "exact_match": float((y == on).all(1).mean()) if len(y) else float("nan"), "n": int(len(y)),
            "per_label": {lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                                "support": int(y[:, i].sum()), "predicted": int(on[:, i].sum())}
                          for i, lab in enumerate(labels)}}


def _f1_curves(y: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 [labels, grid] of the decisions `score >= t` for every label and threshold of `grid`."""
    out = np.zeros((y.shape[1], len(grid)))
    for j in range(y.shape[1]):
        gold = y[:, j]
        if gold.any():
            on = scores[:, j][:, None] >= grid[None, :]  # [rows, grid]
            out[j] = 2 * (on & gold[:, None]).sum(0) / (on.sum(0) + gold.sum())
    return out


def tune_thresholds(y_true: np.ndarray, scores: np.ndarray, *, grid: Sequence[float] = THRESHOLD_GRID,
                    default: float = 0.5, shrink: float = 0.0) -> np.ndarray:
    """One threshold per label: of `grid`, the one whose decisions `score >= t` give that label the
    best F1 on these rows (ties: the median of the tied thresholds). A label without a gold row
    here keeps `default`. Tune on validation rows only.

    `shrink` > 0 pulls each label's threshold towards the one threshold best for all labels
    together (the best mean F1): t = (n t_label + shrink t_all) / (n + shrink), n the label's
    gold rows, so a rare label's noisy optimum moves most (rounded to the grid's 0.01)."""
    y = _multi_hot(y_true, scores)
    scores = np.asarray(scores, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    curves = _f1_curves(y, scores, grid)
    out = np.full(y.shape[1], float(default))
    n = y.sum(0)
    for j in np.flatnonzero(n):
        best = np.flatnonzero(curves[j] >= curves[j].max() - 1e-12)
        out[j] = float(np.median(grid[best]))
    if shrink > 0 and n.any():
        mean = curves[n > 0].mean(0)
        overall = float(np.median(grid[np.flatnonzero(mean >= mean.max() - 1e-12)]))
        out[n > 0] = np.round((n[n > 0] * out[n > 0] + shrink * overall) / (n[n > 0] + shrink), 2)
    return out


SHRINKS = (0.0, 10.0, 30.0, 100.0, 300.0)


def _halves(n: int, seed: int) -> np.ndarray:
    half = np.zeros(n, dtype=np.int64)
    half[np.random.default_rng(seed).permutation(n)[n // 2:]] = 1
    return half


def choose_shrink(y_true: np.ndarray, scores: np.ndarray, *, shrinks: Sequence[float] = SHRINKS,
                  seeds: Sequence[int] = (0, 1, 2), grid: Sequence[float] = THRESHOLD_GRID) -> float:
    """The `tune_thresholds` shrink that does best out of sample on these rows: for each random
    halving (`seeds`), thresholds tuned on one half decide the other and back; the shrink with the
    best mean macro-F1 wins (ties: the smaller)."""
    y = _multi_hot(y_true, scores)
    scores = np.asarray(scores, dtype=np.float64)
    labels = [str(j) for j in range(y.shape[1])]
    best, best_score = 0.0, -1.0
    for shrink in sorted(float(k) for k in shrinks):
        figures = []
        for seed in seeds:
            half = _halves(len(y), seed)
            on = np.zeros(y.shape, dtype=bool)
            for h in (0, 1):
                on[half == h] = scores[half == h] >= tune_thresholds(y[half != h], scores[half != h], grid=grid,
                                                                     shrink=shrink)
            figures.append(multilabel_metrics(y, on, labels=labels)["macro_f1"])
        if np.mean(figures) > best_score + 1e-12:
            best, best_score = shrink, float(np.mean(figures))
    return best


def cross_fitted_decisions(y_true: np.ndarray, scores: np.ndarray, *, seed: int = 0,
                           grid: Sequence[float] = THRESHOLD_GRID,
                           shrink: float | str = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Decisions [rows, labels] on held-out rows whose thresholds never saw them: the rows are
    split in two halves at random (`seed`); thresholds tuned on one half decide the other, and the
    other way round. `shrink="auto"`: each half's shrink is chosen (`choose_shrink`) on the other
    half alone. Returns the decisions and the halves (0/1 per row)."""
    y = _multi_hot(y_true, scores)
    scores = np.asarray(scores, dtype=np.float64)
    half = _halves(len(y), seed)
    on = np.zeros(y.shape, dtype=bool)
    for h in (0, 1):
        yt, st = y[half != h], scores[half != h]
        k = choose_shrink(yt, st, grid=grid) if shrink == "auto" else float(shrink)
        on[half == h] = scores[half == h] >= tune_thresholds(yt, st, grid=grid, shrink=k)
    return on, half


def argmax_accuracy(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Share of rows whose highest-scoring label is one of their gold labels."""
    y = _multi_hot(y_true, scores)
    if not len(y):
        return float("nan")
    return float(y[np.arange(len(y)), np.asarray(scores).argmax(1)].mean())


# -- forecasts (trend) ---------------------------------------------------------------------------------
def spearman_by_group(y_true: Sequence[float], y_pred: Sequence[float], groups: Sequence[object]) -> dict:
    """Spearman's rank correlation of `y_pred` with `y_true` within each group (the SMP Challenge's
    measure: across categories, per target month), and their `mean`. A group with fewer than 3
    rows, or constant on either side (up to float noise), has no correlation and is left out
    (`skipped` counts them)."""
    from scipy.stats import spearmanr

    frame = {"y": np.asarray(y_true, np.float64), "p": np.asarray(y_pred, np.float64)}
    if frame["y"].shape != frame["p"].shape or len(groups) != len(frame["y"]):
        raise ValueError("y_true, y_pred and groups need the same length")
    keys = np.asarray(groups, dtype=object)
    per: dict[object, float] = {}
    skipped = 0
    for key in dict.fromkeys(keys.tolist()):
        at = keys == key
        y, p = frame["y"][at], frame["p"][at]
        if len(y) < 3 or np.ptp(y) <= 1e-12 * max(1.0, np.abs(y).max()) or np.ptp(p) <= 1e-12 * max(1.0, np.abs(p).max()):
            skipped += 1
            continue
        per[key] = float(spearmanr(y, p).statistic)
    return {"mean": float(np.mean(list(per.values()))) if per else float("nan"), "groups": per, "skipped": skipped}


def tercile_classes(values: Sequence[float], groups: Sequence[object]) -> np.ndarray:
    """-1, 0, 1 per row as the warehouse labels a month (`warehouse.windows`): 1 above the group's
    2/3 quantile (linear interpolation, DuckDB's `quantile_cont`), -1 below its 1/3 one, else 0."""
    values = np.asarray(values, np.float64)
    keys = np.asarray(groups, dtype=object)
    out = np.zeros(len(values), np.int64)
    for key in dict.fromkeys(keys.tolist()):
        at = keys == key
        low, high = np.quantile(values[at], [1 / 3, 2 / 3])
        out[at] = np.where(values[at] > high, 1, np.where(values[at] < low, -1, 0))
    return out


def forecast_metrics(y_share: Sequence[float], share: Sequence[float], y_trend: Sequence[int], trend: Sequence[int], *,
                     groups: Sequence[object], items: Sequence[object] | None = None) -> dict:
    """A forecaster's figures: `mae` of the share, `spearman` (mean over `groups`, see
    `spearman_by_group`; with `items`, e.g. categories, the shares are first averaged per group
    and item, so each group ranks its items once), `trend_accuracy` and `trend_macro_f1`
    (classes -1, 0, 1)."""
    y_share, share = np.asarray(y_share, np.float64), np.asarray(share, np.float64)
    ranked = (y_share, share, groups)
    if items is not None:
        import pandas as pd

        means = pd.DataFrame({"g": list(groups), "i": list(items), "y": y_share, "p": share}).groupby(
            ["g", "i"], sort=False)[["y", "p"]].mean().reset_index()
        ranked = (means["y"].to_numpy(), means["p"].to_numpy(), means["g"].tolist())
    trend_figures = classification_metrics(np.asarray(y_trend) + 1, np.asarray(trend) + 1,
                                           labels=("down", "flat", "up"))
    return {"mae": float(np.mean(np.abs(y_share - share))) if len(share) else float("nan"),
            "spearman": spearman_by_group(*ranked)["mean"],
            "trend_accuracy": trend_figures["accuracy"], "trend_macro_f1": trend_figures["macro_f1"],
            "n": int(len(share))}


def interval_coverage(y: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> float:
    """The share of `y` inside [lo, hi]."""
    y, lo, hi = (np.asarray(a, np.float64) for a in (y, lo, hi))
    return float(((y >= lo) & (y <= hi)).mean()) if len(y) else float("nan")
