"""The sentiment model's parts on hand-computed cases: the losses, the classification metrics and
baselines, the fusion head's handling of missing inputs, the grouping of linked pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from emopulse.training.baselines import late_fusion, logreg_classifier, majority_classifier
from emopulse.training.losses import (
    AdaptiveClassBalancedLoss, ClassBalancedFocalLoss, class_loss, effective_number_weights,
)
from emopulse.training.metrics import classification_metrics
from emopulse.training.sentiment.model import FusionHead, SentimentConfig
from emopulse.training.splits import linked_groups, stratified_folds


def test_effective_number_weights_follow_cui_et_al() -> None:
    w = effective_number_weights([100, 10, 1], beta=0.9)
    raw = [(1 - 0.9) / (1 - 0.9 ** n) for n in (100, 10, 1)]
    want = [r * 3 / sum(raw) for r in raw]
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-6)
    assert w[2] > w[1] > w[0]  # the rarer the class, the larger its weight
    np.testing.assert_allclose(effective_number_weights([5, 5, 5], beta=0.99).numpy(), [1, 1, 1], rtol=1e-6)


def test_class_balanced_focal_loss_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([0, 2])
    loss = ClassBalancedFocalLoss([100, 10, 1], beta=0.9, gamma=2.0)(logits, target)
    w = effective_number_weights([100, 10, 1], beta=0.9)
    p = torch.softmax(logits, dim=1)[torch.arange(2), target]
    want = (w[target] * (1 - p) ** 2 * -torch.log(p)).sum() / w[target].sum()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    ce = class_loss("ce", [1, 1, 1])(logits, target)
    assert ce.item() == pytest.approx(F.cross_entropy(logits, target).item())


def test_adaptive_loss_tracks_per_class_difficulty_and_adds_a_margin_term() -> None:
    loss = AdaptiveClassBalancedLoss(3, gamma=0.0, momentum=0.5, margin=1.0, boundary_weight=1.0)
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.2, 0.0]])
    target = torch.tensor([0, 1])
    value = loss.train()(logits, target)
    p = torch.softmax(logits, dim=1)[torch.arange(2), target]
    start = 1 - 1 / 3
    want_difficulty = [0.5 * start + 0.5 * (1 - p[0].item()), 0.5 * start + 0.5 * (1 - p[1].item()), start]
    np.testing.assert_allclose(loss.difficulty.numpy(), want_difficulty, rtol=1e-5)
    w = loss.weights[target]
    margin = torch.tensor([max(0.0, 1 - 3.0), max(0.0, 1 - 0.2)])  # the true logit minus the best other
    want = (w * (-torch.log(p) + margin)).sum() / w.sum()
    assert value.item() == pytest.approx(want.item(), rel=1e-5)
    assert loss.weights[1] > loss.weights[0]  # the class it gets wrong weighs more
    before = loss.difficulty.clone()
    loss.eval()(logits, target)
    assert torch.equal(loss.difficulty, before)  # evaluation never moves it
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        class_loss("mse", [1, 1, 1])


def test_classification_metrics_by_hand() -> None:
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(y_true, y_pred, labels=("positive", "neutral", "negative"))
    f1 = {"positive": 2 * 1 * (2 / 3) / (1 + 2 / 3), "neutral": 0.5, "negative": 2 * 0.5 * 1 / 1.5}
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["weighted_f1"] == pytest.approx((3 * f1["positive"] + 2 * f1["neutral"] + f1["negative"]) / 6)
    assert m["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert m["per_class"]["neutral"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_late_fusion_picks_its_weight_on_validation() -> None:
    y_val = np.array([0, 1, 0, 1])
    good = np.eye(2)[y_val] * 0.8 + 0.1
    bad = np.eye(2)[1 - y_val] * 0.8 + 0.1
    fused, info = late_fusion([good, bad], y_val, [good[:2], bad[:2]])
    assert info["weight"] > 0.5 and (fused.argmax(1) == y_val[:2]).all()
    _, info = late_fusion([bad, good], y_val, [bad, good])
    assert info["weight"] < 0.5
    np.testing.assert_allclose(majority_classifier([0, 0, 2], num_classes=3, n=2), [[2 / 3, 0, 1 / 3]] * 2)


def test_logreg_chooses_c_on_validation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = (x[:, 0] > 0).astype(int)
    val_p, test_p, info = logreg_classifier(x[:80], y[:80], x[80:100], y[80:100], x[100:], num_classes=3,
                                            Cs=(0.001, 1.0), seed=0)
    assert info["C"] == 1.0 and set(info["val_by_C"]) == {"0.001", "1.0"}
    assert test_p.shape == (20, 3) and (test_p[:, 2] == 0).all()  # a class never seen gets 0
    assert (test_p.argmax(1) == y[100:]).mean() > 0.8


@pytest.mark.parametrize("fusion", ["concat", "gated", "attention"])
def test_a_missing_image_is_ignored_and_ablations_drop_their_input(fusion: str) -> None:
    torch.manual_seed(0)
    head = FusionHead(SentimentConfig(text_dim=8, image_dim=6, fusion=fusion, hidden_dim=8, heads=2)).eval()
    text, image = torch.randn(4, 8), torch.randn(4, 6)
    none, some = torch.zeros(4), torch.ones(4)
    with torch.no_grad():
        assert torch.allclose(head(text, image, none), head(text, torch.randn(4, 6), none), atol=1e-6)
        assert not torch.allclose(head(text, image, some), head(text, torch.randn(4, 6), some), atol=1e-4)
    text_only = FusionHead(SentimentConfig(text_dim=8, image_dim=6, fusion=fusion, hidden_dim=8, heads=2,
                                           modalities="text")).eval()
    image_only = FusionHead(SentimentConfig(text_dim=8, image_dim=6, fusion=fusion, hidden_dim=8, heads=2,
                                            modalities="image")).eval()
    with torch.no_grad():
        assert torch.allclose(text_only(text, image, some), text_only(text, torch.randn(4, 6), some), atol=1e-6)
        assert torch.allclose(image_only(text, image, some), image_only(torch.randn(4, 8), image, some), atol=1e-6)


def test_linked_groups_join_rows_sharing_any_key() -> None:
    groups = linked_groups(["a", "b", "a", None, "c"], ["x", "y", "z", "y", None])
    assert groups[0] == groups[2] and groups[1] == groups[3] and len(set(groups.tolist())) == 3
    folds = stratified_folds([f"id{i}" for i in range(5)], [0, 1, 0, 1, 0], groups=groups, k=2, val_frac=0.3)
    for split in folds:
        sides = {p: set(ids) for p, ids in split.parts.items()}
        assert all(({"id0", "id2"} <= s or not {"id0", "id2"} & s) for s in sides.values())
    with pytest.raises(ValueError, match="need k >= 2 and at least k groups"):
        stratified_folds(["a", "b"], [0, 1], k=3)
    assert not math.isnan(classification_metrics([0], [0], labels=("a",))["weighted_f1"])


def test_sentiment_training_reads_the_labelled_pairs_of_a_source(tmp_path) -> None:
    from emopulse.training.data import read_sentiment_pairs
    from emopulse.warehouse import Warehouse

    with Warehouse.open(tmp_path / "w.duckdb", command="test") as wh:
        wh.con.execute("INSERT INTO sentiment_pairs (source, guid, text, label) VALUES ('a', '2', 'x', 'neutral'), "
                       "('a', '1', 'y', 'positive'), ('a', '3', 'z', NULL), ('b', '1', 'w', 'negative')")
        assert read_sentiment_pairs(wh)[["source", "guid"]].values.tolist() == [["a", "1"], ["a", "2"], ["b", "1"]]
        assert read_sentiment_pairs(wh, sentiment_source="b")["label"].tolist() == ["negative"]
