"""Baselines every model is reported beside, trained on the same split.

Emote ranking:

- `majority`: every comment gets the emotes ranked by how often each is the main emote in training.
- `tfidf_char_lr`: TF-IDF over character 1-3-grams (sublinear tf), then multinomial logistic
  regression; C is picked on validation Top-1 (strict), as a model's epochs are, from a grid that
  reaches strong regularisation (`TFIDF_CS`). The grid is walked from the smallest C up, each fit
  warm-started from the last (the same optima, found several times faster). With `cache_dir`, the
  result is kept under a hash of every input, so a model's ablation runs fit the baseline once.

Single-label classification (sentiment): `majority_classifier`, `logreg_classifier` (features,
e.g. a linear probe on image features), `tfidf_classifier` (text) and `late_fusion` (two
classifiers' probabilities mixed with a weight chosen on validation).

Multi-label (emotions): `tfidf_multilabel`, one-vs-rest logistic regression on the same TF-IDF
features (`tfidf_features`), whose probabilities get per-label thresholds tuned on validation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metrics import majority_scores, topk_accuracy

__all__ = ["TFIDF_CS", "late_fusion", "logreg_classifier", "majority_baseline", "majority_classifier",
           "tfidf_classifier", "tfidf_features", "tfidf_logreg_baseline", "tfidf_multilabel"]

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


# -- single-label classifiers (sentiment): probabilities for validation and test, settings on validation --
def majority_classifier(train_y: Sequence[int], *, num_classes: int, n: int) -> np.ndarray:
    """Probabilities [n, classes]: the training class shares, the same for every row."""
    counts = np.bincount(np.asarray(train_y, dtype=np.int64), minlength=num_classes).astype(np.float64)
    return np.broadcast_to(counts / max(1.0, counts.sum()), (n, num_classes)).copy()


def _weighted_f1(y: Sequence[int], probs: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(np.asarray(y), probs.argmax(1), average="weighted", zero_division=0)) if len(y) else 0.0


def logreg_classifier(x_train, train_y: Sequence[int], x_val, val_y: Sequence[int], x_test, *, num_classes: int,
                      Cs: Sequence[float], seed: int = 0, scale: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Multinomial logistic regression on features (dense or sparse; `scale`: standardised with
    the training rows' statistics), C chosen on validation weighted F1 (ties: the smaller C).
    Returns validation and test probabilities [*, classes] and the chosen settings."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_y = np.asarray(train_y)
    if len(set(train_y.tolist())) < 2:
        return (majority_classifier(train_y, num_classes=num_classes, n=x_val.shape[0]),
                majority_classifier(train_y, num_classes=num_classes, n=x_test.shape[0]), {"C": None})
    if scale:
        scaler = StandardScaler().fit(x_train)
        x_train, x_val, x_test = scaler.transform(x_train), scaler.transform(x_val), scaler.transform(x_test)

    def probs(model: LogisticRegression, x) -> np.ndarray:
        out = np.zeros((x.shape[0], num_classes))
        if x.shape[0]:
            out[:, model.classes_] = model.predict_proba(x)
        return out

    grid = sorted(float(c) for c in Cs) if x_val.shape[0] else [min(float(c) for c in Cs)]
    best: tuple[float, float, LogisticRegression] | None = None
    scores = {}
    for c in grid:
        model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, train_y)
        score = _weighted_f1(val_y, probs(model, x_val)) if x_val.shape[0] else 0.0
        scores[str(c)] = score
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    score, c, model = best
    return probs(model, x_val), probs(model, x_test), {"C": c, "val_weighted_f1": score, "val_by_C": scores}


def tfidf_features(train_texts: Sequence[str], *others: Sequence[str]) -> list:
    """TF-IDF over word 1-2-grams and character 2-5-grams within words (sublinear tf, min_df 2; so
    English and Chinese both get features), fitted on `train_texts`: the sparse matrices of
    `train_texts` and of each of `others`."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                            token_pattern=r"(?u)[#@]?\w+")
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    train = [t or " " for t in train_texts]
    out = [hstack([words.fit_transform(train), chars.fit_transform(train)]).tocsr()]
    for texts in others:
        texts = [t or " " for t in texts]
        out.append(hstack([words.transform(texts), chars.transform(texts)]).tocsr())
    return out


def tfidf_classifier(train_texts: Sequence[str], train_y: Sequence[int], val_texts: Sequence[str],
                     val_y: Sequence[int], test_texts: Sequence[str], *, num_classes: int, Cs: Sequence[float],
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """`tfidf_features`, then `logreg_classifier`."""
    x_train, x_val, x_test = tfidf_features(train_texts, val_texts, test_texts)
    val, test, info = logreg_classifier(x_train, train_y, x_val, val_y, x_test,
                                        num_classes=num_classes, Cs=Cs, seed=seed)
    return val, test, {**info, "features": int(x_train.shape[1])}


def tfidf_multilabel(train_texts: Sequence[str], train_y: np.ndarray, val_texts: Sequence[str], val_y: np.ndarray,
                     *others: Sequence[str], Cs: Sequence[float], seed: int = 0) -> tuple[list[np.ndarray], dict]:
    """Multi-label: `tfidf_features`, then one binary logistic regression per label (one-vs-rest).
    C is chosen on validation macro-F1 with per-label thresholds tuned on those same validation rows
    (ties: the smaller C). Returns the probabilities [*, labels] of the validation texts and of each
    of `others`, and the settings."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from .metrics import multilabel_metrics, tune_thresholds

    train_y, val_y = np.asarray(train_y).astype(bool), np.asarray(val_y).astype(bool)
    x_train, x_val, *x_others = tfidf_features(train_texts, val_texts, *others)
    labels = [str(j) for j in range(train_y.shape[1])]

    def fit(c: float) -> list[LogisticRegression | float]:
        models: list[LogisticRegression | float] = []
        for j in range(train_y.shape[1]):
            if train_y[:, j].all() or not train_y[:, j].any():  # one class only: its constant share
                models.append(float(train_y[:, j].mean()))
                continue
            model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                models.append(model.fit(x_train, train_y[:, j]))
        return models

    def probs(models: list[LogisticRegression | float], x) -> np.ndarray:
        return np.stack([np.full(x.shape[0], m) if isinstance(m, float) else m.predict_proba(x)[:, 1]
                         for m in models], axis=1) if x.shape[0] else np.zeros((0, len(models)))

    best: tuple[float, float, list] | None = None
    by_c = {}
    for c in sorted(float(c) for c in Cs):
        models = fit(c)
        val = probs(models, x_val)
        score = multilabel_metrics(val_y, val >= tune_thresholds(val_y, val), labels=labels)["macro_f1"]
        by_c[str(c)] = score
        if best is None or score > best[0]:
            best = (score, c, models)
    assert best is not None
    _, c, models = best
    return [probs(models, x_val), *(probs(models, x) for x in x_others)], {
        "C": c, "val_macro_f1_by_C": by_c, "features": int(x_train.shape[1])}


def late_fusion(val_probs: Sequence[np.ndarray], val_y: Sequence[int], test_probs: Sequence[np.ndarray], *,
                steps: int = 10) -> tuple[np.ndarray, dict]:
    """Late fusion of two classifiers: `w * p_a + (1 - w) * p_b`, w from a grid of `steps` + 1 values
    chosen on validation weighted F1 (ties: nearest 0.5). Test probabilities and the weight."""
    (a_val, b_val), (a_test, b_test) = val_probs, test_probs
    grid = sorted(np.linspace(0, 1, steps + 1), key=lambda w: abs(w - 0.5))
    scores = {round(float(w), 3): _weighted_f1(val_y, w * a_val + (1 - w) * b_val) for w in grid}
    w = max(scores, key=lambda k: scores[k])  # the first best in the grid's order
    return w * a_test + (1 - w) * b_test, {"weight": w, "val_weighted_f1": scores[w]}
