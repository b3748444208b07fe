"""Evaluation of an emote ranking (scores [comments, emotes]) shared by every emote model.

Top-1/Top-5 strict (the main emote) and any-match (any of the comment's emotes), on the natural
distribution and on a balanced sample (up to `per_emote` comments of each main emote, seeded);
per-emote precision/recall/F1 of the Top-1 prediction against the main emote, the mean rank of the
main emote, the most common confusions and the distribution of Top-1 predictions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .metrics import ranking_metrics
from .report import markdown_table

__all__ = ["balanced_sample", "detailed_report", "evaluate_ranking", "mean_sd", "results_table"]

METRICS = ("top1_strict", "top1_any", "top5_strict", "top5_any")


def balanced_sample(main: Sequence[int], *, per_emote: int = 35, seed: int = 0) -> np.ndarray:
    """Row indices: up to `per_emote` rows of every main emote, drawn with `seed`, sorted."""
    main = np.asarray(main)
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(main == label))[:per_emote] for label in np.unique(main)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def evaluate_ranking(scores: np.ndarray, *, main: Sequence[int], label_sets: Sequence[Sequence[int]],
                     per_emote: int = 35, seed: int = 0, strata: Sequence[Any] | None = None) -> dict[str, Any]:
    """{"natural": {top1_strict, ...}, "balanced": {...}, "n": rows, "n_balanced": rows sampled}.

    A `main` of -1 (a comment whose main emote the model has no label for) is a miss for every k;
    the balanced sample draws up to `per_emote` rows per value of `strata` (default: `main`), so
    comments of every main emote, known to the model or not, are sampled alike."""
    main = np.asarray(main, dtype=np.int64)
    natural = ranking_metrics(scores, main=main, label_sets=label_sets) if len(main) else {}
    rows = balanced_sample(main if strata is None else np.asarray(strata), per_emote=per_emote, seed=seed)
    balanced = ranking_metrics(scores[rows], main=main[rows], label_sets=[label_sets[i] for i in rows]) \
        if rows.size else {}
    return {"natural": natural, "balanced": balanced, "n": int(len(main)), "n_balanced": int(rows.size),
            "per_emote": per_emote}


def detailed_report(scores: np.ndarray, *, main: Sequence[int], labels: Sequence[str],
                    top_confusions: int = 10) -> dict[str, Any]:
    """Per-emote P/R/F1 and mean rank, the most common (true → predicted) confusions, and how often
    each emote is the Top-1 prediction; all of the main emote against the Top-1 prediction."""
    main = np.asarray(main, dtype=np.int64)
    pred = np.argmax(scores, axis=1) if len(main) else np.zeros(0, dtype=np.int64)
    # rank of the main emote: 1 + how many emotes score strictly higher (ties count in its favour)
    ranks = 1 + (scores > scores[np.arange(len(main)), main][:, None]).sum(axis=1) if len(main) else np.zeros(0)
    per_emote = {}
    for i, label in enumerate(labels):
        tp = int(((pred == i) & (main == i)).sum())
        predicted, support = int((pred == i).sum()), int((main == i).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_emote[label] = {"support": support, "predicted": predicted, "precision": precision,
                            "recall": recall, "f1": f1,
                            "mean_rank": float(ranks[main == i].mean()) if support else None}
    confusions = Counter((labels[t], labels[p]) for t, p in zip(main, pred, strict=True) if t != p)
    with_support = [v["f1"] for v in per_emote.values() if v["support"]]
    return {"per_emote": per_emote, "mean_rank": float(ranks.mean()) if len(ranks) else None,
            "macro_f1": float(np.mean(with_support)) if with_support else 0.0,
            "confusions": [{"true": t, "predicted": p, "count": n} for (t, p), n in confusions.most_common(top_confusions)],
            "top1_distribution": {labels[i]: int(n) for i, n in Counter(pred.tolist()).most_common()}}


def results_table(results: Mapping[str, Mapping[str, Any]], *, part: str) -> list[str]:
    """Markdown rows comparing models on `part` ("natural" or "balanced") of `evaluate_ranking`."""
    return markdown_table(["model", *METRICS],
                          [[name, *(result.get(part, {}).get(m) for m in METRICS)] for name, result in results.items()])


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of per-fold figures."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not arr.size:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
