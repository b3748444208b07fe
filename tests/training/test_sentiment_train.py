"""The sentiment model's protocol on synthetic pairs and a tiny encoder: folds split before any
augmentation, captions reach only training rows, the baselines and figures, the retrain."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from emopulse.training.sentiment import train as sentiment
from emopulse.training.sentiment.model import LABELS
from sentiment_fixtures import pairs_frame, write_pairs


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs"), n=72, seed=1)


@pytest.fixture(scope="module")
def cfg(tiny_encoder: Path) -> sentiment.TrainConfig:
    return sentiment.profile_config("light", text_encoder_path=str(tiny_encoder), text_prefix="", epochs=6, folds=3,
                                    hard_threshold=0.6)


@pytest.fixture(scope="module")
def data(pairs: Path, cfg: sentiment.TrainConfig, tmp_path_factory: pytest.TempPathFactory) -> sentiment.Data:
    return sentiment.prepare_data(pairs_frame(pairs), cfg, cache_dir=tmp_path_factory.mktemp("cache"))


class SpyCaptioner:
    """A caption function that records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    def __call__(self, images):
        self.calls.append(list(images))
        return {sha: f"caption {sha[:6]}" for sha, _ in images}


def test_prepare_reads_labels_features_and_groups(data: sentiment.Data, pairs: Path) -> None:
    assert len(data.y) == 72 and data.text is not None and data.text.shape[0] == 72
    assert data.image.shape == (72, 1280) and bool((data.has_image == 1).all())
    assert np.allclose(data.image.norm(dim=1).numpy(), 1.0, atol=1e-4)  # the cache's L2-normalised vectors
    assert [LABELS[i] for i in data.y[:5]] == data.pairs["label"].iloc[:5].tolist()


def test_folds_are_stratified_and_never_split_a_group(data: sentiment.Data, cfg: sentiment.TrainConfig) -> None:
    data_groups = dict(zip(data.pairs["id"], data.groups, strict=True))
    tested = []
    for split in sentiment.folds_of(data, cfg):
        side = {}
        for part, ids in split.parts.items():
            for id_ in ids:
                assert side.setdefault(data_groups[id_], part) == part  # a group sits on one side
        tested += split.parts["test"]
        assert split.parts["val"]
    assert sorted(tested) == sorted(data.pairs["id"])  # every pair is tested exactly once


def test_a_missing_image_leaves_the_pair_text_only(pairs: Path, cfg: sentiment.TrainConfig, tmp_path: Path) -> None:
    rows = pairs_frame(pairs).iloc[:12].copy()
    rows.loc[0, "image_path"] = str(tmp_path / "gone.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    rows.loc[1, "image_path"] = str(tmp_path / "bad.jpg")
    got = sentiment.prepare_data(rows, cfg)
    assert got.has_image.tolist()[:3] == [0.0, 0.0, 1.0] and float(got.image[0].abs().sum()) == 0.0


def test_bad_labels_and_columns_are_named(pairs: Path, cfg: sentiment.TrainConfig) -> None:
    rows = pairs_frame(pairs).iloc[:6].copy()
    rows.loc[2, "label"] = "happy"
    with pytest.raises(ValueError, match=r"guid 1002: 'happy'"):
        sentiment.prepare_data(rows, cfg)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['label'\]"):
        sentiment.prepare_data(rows.drop(columns="label"), cfg)
    with pytest.raises(ValueError, match="fusion must be one of"):
        sentiment.profile_config("light", fusion="sum")


def test_cross_validation_reports_the_model_beside_every_baseline(data: sentiment.Data,
                                                                  cfg: sentiment.TrainConfig) -> None:
    cv = sentiment.cross_validate(data, cfg)
    assert list(cv["summary"]) == list(sentiment.METHODS)
    for fold in cv["folds"]:
        assert set(fold["results"]) == set(sentiment.METHODS) and fold["augmented"] == 0
        assert fold["results"]["model"]["n"] == fold["sizes"]["test"]
    model, majority = cv["summary"]["model"]["weighted_f1"], cv["summary"]["majority"]["weighted_f1"]
    assert model["mean"] > majority["mean"] + 0.2  # colours and words carry the label
    assert sum(map(sum, cv["report"]["confusion"])) == len(data.y)  # out-of-fold, every pair once


def test_captioned_copies_come_only_from_each_folds_training_part(data: sentiment.Data,
                                                                 cfg: sentiment.TrainConfig,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpyCaptioner()
    data.caption_fn, data.captions = spy, {}
    seen: list[sentiment.Rows] = []
    fit = sentiment.fit_model

    def recording_fit(d, train, val, c, **kwargs):
        if c.augment == "captions":
            seen.append(train)
        return fit(d, train, val, c, **kwargs)

    monkeypatch.setattr(sentiment, "fit_model", recording_fit)
    acfg = replace(cfg, augment="captions")
    cv = sentiment.cross_validate(data, acfg, baselines=False)
    assert len(spy.calls) == 1  # one request for every hard image of every fold
    asked = {sha for sha, _ in spy.calls[0]}
    assert sum(f["augmented"] for f in cv["folds"]) > 0
    for split, fold, train in zip(cv["splits"], cv["folds"], seen, strict=True):
        held_out = split.ids("val") | split.ids("test")
        assert set(fold["augmented_from"]) <= split.ids("train") and not set(fold["augmented_from"]) & held_out
        copies = [t for t, a in zip(train.texts, train.augmented, strict=True) if a]
        assert len(copies) == fold["augmented"] and all(" Image: caption " in t for t in copies)
        assert set(data.pairs["id"].to_numpy()[train.source]) <= split.ids("train")
        sources = data.pairs["image_sha256"].to_numpy()[train.source[train.augmented]]
        assert set(sources) <= asked
    # a second run asks for nothing: the captions are kept
    sentiment.cross_validate(data, acfg, baselines=False)
    assert len(spy.calls) == 1


def test_hard_samples_come_from_out_of_fold_predictions_of_the_rows_given(data: sentiment.Data,
                                                                         cfg: sentiment.TrainConfig,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rows = np.arange(0, 48)
    trained_on: list[set[int]] = []
    predicted: list[set[int]] = []
    fit, predict = sentiment.fit_model, sentiment.predict_rows

    fitting = [False]

    def spy_fit(d, train, val, c, **kwargs):
        trained_on.append(set(train.source.tolist()))
        fitting[0] = True
        try:
            return fit(d, train, val, c, **kwargs)
        finally:
            fitting[0] = False

    def spy_predict(head, encoder, d, r, **kwargs):
        if not fitting[0]:  # not a fit's own validation
            predicted.append(set(r.source.tolist()))
        return predict(head, encoder, d, r, **kwargs)

    monkeypatch.setattr(sentiment, "fit_model", spy_fit)
    monkeypatch.setattr(sentiment, "predict_rows", spy_predict)
    hard = sentiment.mine_hard(data, rows, replace(cfg, hard_threshold=0.99))
    assert set(hard.tolist()) <= set(rows.tolist()) and len(hard) > 0
    assert len(trained_on) == cfg.hard_folds
    for train, test in zip(trained_on, predicted, strict=True):
        assert train <= set(rows.tolist()) and not train & test  # never predicts a row it trained on
    assert set().union(*predicted) == set(rows.tolist())  # every row gets one out-of-fold prediction


def test_prepared_settings_are_checked(data: sentiment.Data, cfg: sentiment.TrainConfig) -> None:
    with pytest.raises(ValueError, match="prepared with other"):
        sentiment.fit_model(data, sentiment.rows_of(data, np.arange(10)), np.arange(10, 20),
                            replace(cfg, text_pooling="last4"))


def test_retrain_gives_an_exportable_model_that_matches_the_head_on_cached_features(
        data: sentiment.Data, cfg: sentiment.TrainConfig) -> None:
    model, fitted, info = sentiment.retrain(data, cfg, epochs=2)
    assert fitted.epochs_run == 2 and info == {"pairs": 72, "epochs": 2}
    records = [{"text": data.pairs["raw"].iat[i], "image": data.pairs["image_path"].iat[i]} for i in range(4)]
    records.append({"text": data.pairs["raw"].iat[4], "image": None})
    feeds = {k: torch.from_numpy(v) for k, v in data.preprocessor.encode(records).items()}
    with torch.no_grad():
        logits = model(**feeds)
        rows = sentiment.rows_of(data, np.arange(5))
        rows.has_image[4] = 0.0
        want = model.head(rows.text, rows.image, rows.has_image)
    assert torch.allclose(logits, want, atol=1e-4)  # the graph computes what training saw
