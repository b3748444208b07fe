"""Multi-label metrics and thresholds (training.metrics) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from emopulse.training.metrics import (
    argmax_accuracy, cross_fitted_decisions, multilabel_metrics, tune_thresholds,
)
from emopulse.training.result import quantize_intensity

LABELS = ("a", "b", "c")


def test_multilabel_metrics_by_hand():
    gold = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    on = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=bool)
    m = multilabel_metrics(gold, on, labels=LABELS)
    # a: tp 1, fp 1, fn 1 -> F1 0.5; b: tp 2, fp 1, fn 0 -> F1 0.8; c: never gold nor on -> 0
    assert m["per_label"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2}
    assert m["per_label"]["b"]["f1"] == pytest.approx(0.8)
    assert m["per_label"]["c"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # micro: tp 3, fp 2, fn 1 -> 6 / 9
    assert m["micro_f1"] == pytest.approx(6 / 9)
    assert m["exact_match"] == pytest.approx(1 / 4)  # only the third row is all right
    with pytest.raises(ValueError, match="label columns"):
        multilabel_metrics(gold, on, labels=("a", "b"))


def test_thresholds_pick_the_f1_best_and_keep_a_default_without_gold():
    gold = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    scores = np.array([[0.9, 0.2], [0.6, 0.1], [0.4, 0.3], [0.1, 0.05]])
    t = tune_thresholds(gold, scores, grid=[0.3, 0.5, 0.7, 0.95])
    # label 0: 0.3 -> F1 0.8, 0.5 -> 1.0, 0.7 -> 0.667, 0.95 -> 0; label 1 has no gold: default
    assert t.tolist() == [0.5, 0.5]
    # ties: the median of the tied thresholds (0.41 and 0.45 both give F1 1.0 here, 0.7 does not)
    assert tune_thresholds(gold, scores, grid=[0.41, 0.45, 0.7])[0] == pytest.approx(0.43)


def test_cross_fitted_decisions_never_use_a_rows_own_half():
    rng = np.random.default_rng(3)
    gold = (rng.random((200, 2)) < 0.3).astype(int)
    scores = np.clip(gold * 0.4 + rng.random((200, 2)) * 0.6, 0, 1)
    on, half = cross_fitted_decisions(gold, scores, seed=1)
    assert sorted(np.bincount(half).tolist()) == [100, 100]
    for h in (0, 1):  # each half decided by thresholds tuned on the other half only
        t = tune_thresholds(gold[half != h], scores[half != h])
        assert (on[half == h] == (scores[half == h] >= t)).all()
    # and that differs from tuning on all rows (what a leak would give)
    assert not (on == (scores >= tune_thresholds(gold, scores))).all()


def test_argmax_accuracy_and_quantisation():
    gold = np.array([[1, 0, 1], [0, 1, 0]])
    assert argmax_accuracy(gold, np.array([[0.1, 0.2, 0.9], [0.8, 0.1, 0.1]])) == 0.5
    got = quantize_intensity(np.array([1.2, 1.0, 0.999, 0.456, 0.01, 0.009999, 0.005, -0.3, np.nan]))
    assert got[:8].tolist() == [1.0, 1.0, 1.0, 0.46, 0.01, 0.0, 0.0, 0.0]
    assert np.isnan(got[8])


def test_shrinking_pulls_thresholds_towards_the_one_best_for_all_labels():
    gold = np.array([[1, 1], [1, 0], [0, 0], [0, 0]])
    scores = np.array([[0.9, 0.3], [0.6, 0.1], [0.4, 0.2], [0.1, 0.05]])
    grid = [0.2, 0.5, 0.8]
    # label 0: F1 0.8 / 1.0 / 0.667 -> 0.5; label 1: 0.667 / 0 / 0 -> 0.2; their mean is best at 0.2
    assert tune_thresholds(gold, scores, grid=grid).tolist() == [0.5, 0.2]
    # shrink 2: label 0 (2 gold rows) (2 * 0.5 + 2 * 0.2) / 4 = 0.35; label 1 stays at 0.2
    assert tune_thresholds(gold, scores, grid=grid, shrink=2).tolist() == [0.35, 0.2]


def test_auto_shrink_is_chosen_on_the_tuning_half_only(monkeypatch: pytest.MonkeyPatch):
    import emopulse.training.metrics as metrics

    rng = np.random.default_rng(5)
    gold = (rng.random((120, 3)) < 0.2).astype(int)
    scores = np.clip(gold * 0.3 + rng.random((120, 3)) * 0.7, 0, 1)
    seen: list[int] = []
    real = metrics.choose_shrink

    def spy(y, s, **kw):
        seen.append(len(y))
        rows = {tuple(r) for r in np.asarray(s).round(6).tolist()}
        halves.append(rows)
        return real(y, s, **kw)

    halves: list[set] = []
    monkeypatch.setattr(metrics, "choose_shrink", spy)
    on, half = metrics.cross_fitted_decisions(gold, scores, seed=2, shrink="auto")
    assert seen == [60, 60]
    for h, rows in zip((0, 1), halves, strict=True):  # the half decided first was tuned on the other
        other = {tuple(r) for r in scores[half != h].round(6).tolist()}
        assert rows == other
    chosen = real(gold, scores, shrinks=(0.0, 1e9))
    assert chosen in (0.0, 1e9)  # one of the grid's values
