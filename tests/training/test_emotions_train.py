"""The micro-emotion model (training.emotions): the gold and splits read, the out-of-fold expansion
(no text's soft labels from a model that saw it), thresholds from dev only, the groupings, and a
module that computes what training saw. A tiny random encoder on synthetic texts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from emotion_fixtures import EMOTIONS, goemotions_frame, write_goemotions

from emopulse.training.emotions import train as emotions
from emopulse.training.emotions.model import EnsembleHead


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_goemotions(tmp_path_factory.mktemp("goemotions"), train=240, dev=90, test=60, seed=2)


@pytest.fixture(scope="module")
def cfg(tiny_encoder: Path) -> emotions.TrainConfig:
    return emotions.profile_config("light", text_encoder_path=str(tiny_encoder), text_prefix="", epochs=3,
                                   batch_size=32, lr=3e-3)


@pytest.fixture(scope="module")
def data(folder: Path, cfg: emotions.TrainConfig, tmp_path_factory: pytest.TempPathFactory) -> emotions.Data:
    rows, labels = goemotions_frame(folder)
    return emotions.prepare_data(rows, labels, cfg, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def trained(folder: Path, cfg: emotions.TrainConfig, tmp_path_factory: pytest.TempPathFactory):
    rows, labels = goemotions_frame(folder)
    out = tmp_path_factory.mktemp("run")
    return emotions.train_emotions(rows, labels, out_dir=out, config=replace(cfg, ensemble=2), progress=False), rows


def test_prepare_reads_the_gold_and_the_splits(data: emotions.Data, folder: Path) -> None:
    rows, labels = goemotions_frame(folder)
    assert data.labels == tuple(EMOTIONS) and data.y.shape == (390, 28)
    assert {s: i.size for s, i in data.splits.items()} == {"train": 240, "dev": 90, "test": 60}
    first = rows.iloc[0]
    assert data.y[0].nonzero()[0].tolist() == sorted(labels.index(n) for n in first["labels"])
    assert data.features is not None and data.features.shape == (390, 32)


def test_bad_rows_are_named(folder: Path, cfg: emotions.TrainConfig) -> None:
    rows, labels = goemotions_frame(folder)
    bad = rows.copy()
    bad.at[3, "labels"] = ["joy", "glee"]
    with pytest.raises(ValueError, match=r"text t00004 \(train\) has unknown label\(s\) \['glee'\]"):
        emotions.prepare_data(bad, labels, cfg)
    with pytest.raises(ValueError, match="lack column"):
        emotions.prepare_data(rows.drop(columns="labels"), labels, cfg)
    with pytest.raises(ValueError, match="no training texts"):
        emotions.prepare_data(rows[rows["split"] != "train"], labels, cfg)
    with pytest.raises(ValueError, match="unknown split"):
        emotions.prepare_data(rows.assign(split="validation"), labels, cfg)
    with pytest.raises(ValueError, match="expansion_folds"):
        emotions.profile_config("light", expansion_folds=1)


def test_without_dev_a_share_of_train_is_dev(folder: Path, cfg: emotions.TrainConfig) -> None:
    rows, labels = goemotions_frame(folder)
    data = emotions.prepare_data(rows[rows["split"] == "train"], labels, replace(cfg, dev_frac=0.25))
    assert data.dev_from_train and (data.splits["train"].size, data.splits["dev"].size) == (180, 60)
    assert not set(data.splits["train"]) & set(data.splits["dev"])


def test_no_texts_soft_labels_come_from_a_model_that_saw_it(data: emotions.Data, cfg: emotions.TrainConfig,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[set[int]] = []
    scored: list[set[int]] = []
    real_fit, real_predict = emotions.fit_head, emotions.predict_rows

    def spy_fit(d, rows, target, c, **kw):
        fits.append(set(np.asarray(rows).tolist()))
        return real_fit(d, rows, target, c, **kw)

    def spy_predict(head, encoder, d, idx, **kw):
        scored.append(set(np.asarray(idx).tolist()))
        return real_predict(head, encoder, d, idx, **kw)

    monkeypatch.setattr(emotions, "fit_head", spy_fit)
    monkeypatch.setattr(emotions, "predict_rows", spy_predict)
    exp = emotions.expand(data, replace(cfg, expansion_folds=3))
    train = data.splits["train"]
    scored = [s for s in scored if s != set(data.splits["dev"].tolist())]  # not validation's
    assert len(fits) == 3 and len(scored) == 3
    for i, (seen, out) in enumerate(zip(fits, scored, strict=True)):
        assert not seen & out  # the scored fold never trained its scorer
        assert out == set(train[exp.fold == i].tolist()) and seen == set(exp.trained_on[i].tolist())
        assert not seen & set(data.splits["dev"].tolist()) and seen | out == set(train.tolist())
    gold = data.y[train] > 0.5
    assert (exp.soft[gold] == 1.0).all()  # gold stays 1.0
    others = exp.soft[~gold]
    assert ((others >= 0) & (others <= 1)).all() and np.allclose(others, np.round(others, 2))
    assert others.max() > 0  # A's scores fill the other emotions
    assert (others[others > 0] >= 0.01).all()  # below 0.01 is 0


def test_copies_of_a_text_share_an_expansion_fold(folder: Path, cfg: emotions.TrainConfig) -> None:
    rows, labels = goemotions_frame(folder)
    train = rows[rows["split"] == "train"]
    twice = pd.concat([rows, train.assign(source="copy")], ignore_index=True)  # the texts under a second source
    data = emotions.prepare_data(twice, labels, replace(cfg, epochs=1))
    exp = emotions.expand(data, replace(cfg, epochs=1, expansion_folds=3))
    by_text: dict[str, set[int]] = {}
    for text, fold in zip(data.texts["text"].iloc[data.splits["train"]], exp.fold, strict=True):
        by_text.setdefault(" ".join(text.lower().split()), set()).add(int(fold))
    assert all(len(folds) == 1 for folds in by_text.values())
    assert len(set(exp.fold.tolist())) == 3


def test_the_protocol_reports_every_method_and_ships_a_quantised_thresholded_head(trained) -> None:
    result, _ = trained
    m = result.metrics
    assert result.task == "emotions" and result.head.kind == "multilabel" and result.head.quantize
    assert len(result.head.thresholds) == 28 and set(result.entity_kinds) == {"comment", "post"}
    assert m["registered"] == "B" and set(m["evaluations"]) == {"B", "A_bce", "A_mse", "tfidf"}
    for method, views in m["evaluations"].items():
        assert set(views) == {"emotions", "ekman", "sentiment"}, method
        assert set(views["emotions"]) == {"dev_cross_fitted", "test", "shrink"}
    assert m["evaluations"]["B"]["ekman"]["dev_cross_fitted"]["n"] == 90
    assert 0 <= m["dev_macro_f1"] <= 1 and "tfidf_dev_macro_f1" in m and "A_mse_test_macro_f1" in m
    assert m["tfidf_dev_macro_f1"] > 0.3  # the cue words are easy for TF-IDF: the baseline really runs
    assert m["thresholds"] == dict(zip(EMOTIONS, result.head.thresholds, strict=True))
    expansion = json.loads(result.files["expansion"].read_text())
    assert len(expansion["fold_of"]) == 240 and set(expansion["fold_of"].values()) == {0, 1}
    assert result.files["heatmap"].stat().st_size > 1000
    corr = json.loads(result.files["correlation"].read_text())["pearson"]
    assert len(corr) == 28 and all(abs(corr[i][i] - 1) < 1e-6 or corr[i][i] == 0 for i in range(28))
    summary = result.files["eval_summary"].read_text()
    assert "cross-fitted" in summary and "Grouped: ekman" in summary and "TF-IDF" in summary


def test_the_module_computes_what_training_saw(trained, tiny_encoder: Path) -> None:
    result, rows = trained
    assert isinstance(result.module.head, EnsembleHead)
    texts = rows["text"].tolist()[:6]
    assert result.preprocessor.kind == "text_ngrams"  # e5's ids and the hashed n-grams
    feeds = {k: torch.from_numpy(v) for k, v in result.preprocessor.encode(texts).items()}
    assert list(feeds) == ["input_ids", "attention_mask", "ngram_ids", "ngram_mask"]
    with torch.no_grad():
        logits = result.module(**feeds)
        features = result.module.text_encoder(feeds["input_ids"], feeds["attention_mask"])
        members = torch.stack([torch.sigmoid(h(features, feeds["ngram_ids"], feeds["ngram_mask"]))
                               for h in result.module.head.heads]).mean(0)
        deep_only = result.module.head.heads[0].out(result.module.head.heads[0].body(features))
    assert logits.shape == (6, 28)
    assert not torch.allclose(deep_only, result.module.head.heads[0](features, feeds["ngram_ids"],
                                                                      feeds["ngram_mask"]))  # the words count
    assert torch.allclose(torch.sigmoid(logits), members, atol=1e-5)  # the members' mean intensity


def test_test_labels_never_change_a_choice(folder: Path, cfg: emotions.TrainConfig, tmp_path: Path) -> None:
    rows, labels = goemotions_frame(folder)
    quick = replace(cfg, compare_losses=False, tfidf=False)
    a = emotions.train_emotions(rows, labels, out_dir=tmp_path / "a", config=quick, progress=False)
    flipped = rows.copy()
    test = flipped["split"] == "test"
    flipped["labels"] = [["neutral"] if t else names for t, names in zip(test, flipped["labels"], strict=True)]
    b = emotions.train_emotions(flipped, labels, out_dir=tmp_path / "b", config=quick, progress=False)
    assert a.head.thresholds == b.head.thresholds
    assert a.metrics["dev_macro_f1"] == b.metrics["dev_macro_f1"]
    assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]
    assert a.metrics["test_macro_f1"] != b.metrics["test_macro_f1"]  # but the test figures do move


def test_the_gpu_profile_way_tunes_only_the_top_layers(folder: Path, cfg: emotions.TrainConfig) -> None:
    rows, labels = goemotions_frame(folder)
    tcfg = replace(cfg, finetune_layers=2, epochs=1, lr_text_encoder=1e-2)
    data = emotions.prepare_data(rows.iloc[:80], labels, replace(tcfg, dev_frac=0.25))
    assert data.features is None  # tokens every step
    train = data.splits["train"]
    head, encoder, fitted = emotions.fit_head(data, train, data.y[train], tcfg)
    assert encoder is not None and fitted.epochs_run == 1
    before, after = dict(data.encoder.named_parameters()), dict(encoder.named_parameters())
    layers = len(encoder.backbone.encoder.layer)
    for name, value in after.items():
        top = any(f"encoder.layer.{i}." in name for i in range(layers - 2, layers))
        assert (not torch.equal(value, before[name])) == top, name
