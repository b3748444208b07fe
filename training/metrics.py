"""Ranking metrics shared by every emote model: Top-k strict and any-match, and the majority baseline.

Scores are a float array [comments, labels] (higher ranks first). "Strict" counts a hit when the
comment's main emote (its most frequent, ties to the first) is in the top k; "any" when any of
its emotes is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np

__all__ = ["classification_metrics", "main_label", "majority_scores", "ranking_metrics", "top_k", "topk_accuracy"]


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
