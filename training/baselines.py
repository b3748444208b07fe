"""Baselines every emote model is reported beside, trained on the same split.

- `majority`: every comment gets the emotes ranked by how often each is the main emote in training.
- `tfidf_char_lr`: TF-IDF over character 1-3-grams (sublinear tf), then multinomial logistic
  regression; C is picked on validation Top-1 (strict), as a model's epochs are, from a grid that
  reaches strong regularisation (`TFIDF_CS`). The grid is walked from the smallest C up, each fit
  warm-started from the last (the same optima, found several times faster). With `cache_dir`, the
  result is kept under a hash of every input, so a model's ablation runs fit the baseline once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metrics import majority_scores, topk_accuracy

__all__ = ["TFIDF_CS", "majority_baseline", "tfidf_logreg_baseline"]

TFIDF_CS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 8.0)


def majority_baseline(train_main: Sequence[int], *, num_labels: int, n: int) -> np.ndarray:
    """Scores [n, labels]: the training frequency of each main emote, the same for every row."""
    return majority_scores(train_main, num_labels=num_labels, n=n)


def tfidf_logreg_baseline(train_texts: Sequence[str], train_main: Sequence[int], *, num_labels: int,
                          val_texts: Sequence[str], val_main: Sequence[int], test_texts: Sequence[str],
                          Cs: Sequence[float] = TFIDF_CS, seed: int = 0,
                          cache_dir: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """Scores [len(test_texts), labels] (class probabilities; emotes unseen in training get 0) and
    the chosen settings (`C`, its validation Top-1, every C's validation Top-1). Without validation
    texts the smallest C is used."""
    cache = _cache_file(cache_dir, train_texts, train_main, num_labels, val_texts, val_main, test_texts, Cs, seed)
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as f:
                return np.asarray(f["scores"]), json.loads(str(f["info"]))
        except Exception:  # a damaged cache file: fit again
            pass
    scores, info = _tfidf_logreg(train_texts, train_main, num_labels=num_labels, val_texts=val_texts,
                                 val_main=val_main, test_texts=test_texts, Cs=Cs, seed=seed)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, scores=scores, info=np.asarray(json.dumps(info)))
        os.replace(tmp, cache)
    return scores, info


def _tfidf_logreg(train_texts: Sequence[str], train_main: Sequence[int], *, num_labels: int,
                  val_texts: Sequence[str], val_main: Sequence[int], test_texts: Sequence[str],
                  Cs: Sequence[float], seed: int) -> tuple[np.ndarray, dict]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train_main = np.asarray(train_main)
    if len(set(train_main.tolist())) < 2:  # logistic regression needs two classes
        return majority_scores(train_main, num_labels=num_labels, n=len(test_texts)), {"C": None}
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                                 lowercase=True)
    x_train = vectorizer.fit_transform(list(train_texts))
    x_val = vectorizer.transform(list(val_texts)) if len(val_texts) else None

    def scores(model: LogisticRegression, x) -> np.ndarray:
        out = np.zeros((x.shape[0], num_labels))
        if x.shape[0]:
            out[:, model.classes_] = model.predict_proba(x)
        return out

    grid = sorted(float(c) for c in Cs) if len(val_texts) else [min(float(c) for c in Cs)]
    model = LogisticRegression(C=grid[0], max_iter=2000, random_state=seed, warm_start=True)
    best_c, best_top1, best_coef, val_top1 = grid[0], -1.0, None, {}
    for c in grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.set_params(C=c).fit(x_train, train_main)
        top1 = topk_accuracy(scores(model, x_val), [[int(m)] for m in val_main], k=1) if x_val is not None else 0.0
        val_top1[str(c)] = top1
        if top1 > best_top1:  # ties keep the smaller C (the stronger regularisation)
            best_c, best_top1, best_coef = c, top1, (model.coef_.copy(), model.intercept_.copy())
    model.coef_, model.intercept_ = best_coef
    test = scores(model, vectorizer.transform(list(test_texts))) if len(test_texts) else np.zeros((0, num_labels))
    return test, {"C": best_c, "val_top1_strict": best_top1, "val_top1_by_C": val_top1,
                  "features": int(x_train.shape[1])}


def _cache_file(cache_dir: str | Path | None, *parts: object) -> Path | None:
    if cache_dir is None:
        return None
    h = hashlib.sha256(b"tfidf-char-lr-v2")
    for part in parts:
        h.update(json.dumps(part if isinstance(part, (int, float, str)) else [str(x) for x in part],
                            ensure_ascii=False).encode("utf-8"))
        h.update(b"\0")
    return Path(cache_dir) / f"tfidf-{h.hexdigest()[:20]}.npz"
