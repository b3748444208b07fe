"""Baselines every emote model is reported beside, trained on the same split.

- `majority`: every comment gets the emotes ranked by how often each is the main emote in training.
- `tfidf_char_lr`: TF-IDF over character 1-3-grams (sublinear tf), then multinomial logistic
  regression; C is picked among a few values by validation Top-1 (strict), as a model's epochs are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import majority_scores, topk_accuracy

__all__ = ["majority_baseline", "tfidf_logreg_baseline"]


def majority_baseline(train_main: Sequence[int], *, num_labels: int, n: int) -> np.ndarray:
    """Scores [n, labels]: the training frequency of each main emote, the same for every row."""
    return majority_scores(train_main, num_labels=num_labels, n=n)


def tfidf_logreg_baseline(train_texts: Sequence[str], train_main: Sequence[int], *, num_labels: int,
                          val_texts: Sequence[str], val_main: Sequence[int], test_texts: Sequence[str],
                          Cs: Sequence[float] = (0.5, 2.0, 8.0), seed: int = 0) -> tuple[np.ndarray, dict]:
    """Scores [len(test_texts), labels] (class probabilities; emotes unseen in training get 0) and
    the chosen settings."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                                 lowercase=True)
    x_train = vectorizer.fit_transform(list(train_texts))
    train_main = np.asarray(train_main)

    def fit(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, train_main)

    def scores(model: LogisticRegression, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), num_labels))
        if len(texts):
            out[:, model.classes_] = model.predict_proba(vectorizer.transform(list(texts)))
        return out

    if len(set(train_main.tolist())) < 2:  # logistic regression needs two classes
        return majority_scores(train_main, num_labels=num_labels, n=len(test_texts)), {"C": None}
    best_c, best_top1, best_model = Cs[0], -1.0, None
    for c in Cs if len(val_texts) else Cs[:1]:
        model = fit(c)
        top1 = topk_accuracy(scores(model, val_texts), [[int(m)] for m in val_main], k=1) if len(val_texts) else 0.0
        if top1 > best_top1:
            best_c, best_top1, best_model = c, top1, model
    return scores(best_model, test_texts), {"C": best_c, "val_top1_strict": best_top1,
                                            "features": int(x_train.shape[1])}
