"""The sentiment model's protocol on synthetic pairs and a tiny encoder: folds split before any
augmentation, captions reach only training rows, the baselines and figures, the retrain."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from emopulse.training.sentiment import train as sentiment
from emopulse.training.sentiment.model import LABELS, EnsembleHead
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
        data: sentiment.Data, cfg: sentiment.TrainConfig, tmp_path: Path) -> None:
    model, fitted, info = sentiment.retrain(data, replace(cfg, ensemble=2), epochs=2, out_dir=tmp_path)
    assert [f.epochs_run for f in fitted.fits] == [2, 2] and (info["pairs"], info["epochs"]) == (72, 2)
    assert isinstance(model.head, EnsembleHead) and (tmp_path / info["checkpoint"]).is_file()
    records = [{"text": data.pairs["raw"].iat[i], "image": data.pairs["image_path"].iat[i]} for i in range(4)]
    records.append({"text": data.pairs["raw"].iat[4], "image": None})
    feeds = {k: torch.from_numpy(v) for k, v in data.preprocessor.encode(records).items()}
    with torch.no_grad():
        logits = model(**feeds)
        rows = sentiment.rows_of(data, np.arange(5))
        rows.has_image[4] = 0.0
        want = torch.log_softmax(model.head(rows.text, rows.image, rows.has_image), -1)
        members = torch.stack([torch.softmax(h(rows.text, rows.image, rows.has_image), -1) for h in fitted.heads])
    assert torch.allclose(logits, want, atol=1e-4)  # the graph computes what training saw
    assert torch.allclose(torch.softmax(logits, -1), members.mean(0), atol=1e-5)  # the members' mean


def test_the_gpu_profile_way_tunes_only_the_top_layers_of_the_text_encoder(pairs: Path, cfg: sentiment.TrainConfig,
                                                                        tmp_path: Path) -> None:
    tcfg = replace(cfg, finetune_layers=2, epochs=1, lr_text_encoder=1e-2)
    data = sentiment.prepare_data(pairs_frame(pairs).iloc[:24], tcfg)
    assert data.text is None  # tokens every step, no cached features
    head, encoder, fitted = sentiment.fit_model(data, sentiment.rows_of(data, np.arange(16)), np.arange(16, 24), tcfg)
    assert encoder is not None and fitted.epochs_run == 1
    before, after = dict(data.encoder.named_parameters()), dict(encoder.named_parameters())
    layers = len(encoder.backbone.encoder.layer)
    for name, value in after.items():
        moved = not torch.equal(value, before[name])
        top = any(f"encoder.layer.{i}." in name for i in range(layers - 2, layers))
        assert moved == top, name  # the top layers train, the frozen part never moves
    model, fitted, _ = sentiment.retrain(data, tcfg, epochs=1, out_dir=tmp_path)
    assert fitted.encoder is not None and model.text_encoder is fitted.encoder.cpu()


def test_the_ablation_changes_one_setting_at_a_time_and_reuses_the_models_run(
        data: sentiment.Data, cfg: sentiment.TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = sentiment.cross_validate(data, cfg)
    seen = []
    run = sentiment.cross_validate
    monkeypatch.setattr(sentiment, "cross_validate", lambda d, c, **kw: seen.append(c) or run(d, c, **kw))
    out = sentiment.ablate(data, cfg, variants=[("loss", "acb"), ("loss", "cb_focal"), ("loss", cfg.loss),
                                                ("modalities", "text")], base=base, out_dir=tmp_path)
    assert [(c.loss, c.modalities) for c in seen] == [("acb", "both"), ("cb_focal", "both"), (cfg.loss, "text")]
    names = list(out["runs"])
    assert names[0].startswith("the model (both, attention fusion, ce loss") and len(names) == 4
    assert out["runs"][names[0]]["summary"] == base["summary"]  # the model's own run, not run again
    table = (tmp_path / "ablation.md").read_text(encoding="utf-8")
    assert "| loss=acb |" in table and "| baseline: late fusion (TF-IDF + image probe) |" in table
    png = (tmp_path / "ablation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    for variant in ("loss=acb", "loss=cb_focal"):  # each loss trains to something better than the majority
        summary = out["runs"][variant]["summary"]
        assert summary["model"]["weighted_f1"]["mean"] > summary["majority"]["weighted_f1"]["mean"]


def test_pairs_sharing_an_image_or_a_text_never_sit_on_two_sides(pairs: Path, cfg: sentiment.TrainConfig) -> None:
    rows = pairs_frame(pairs)
    for i in (1, 2, 3):  # the same image bytes under other guids
        rows.loc[i, ["image_path", "image_sha256"]] = rows.loc[0, ["image_path", "image_sha256"]].to_numpy()
    for i in (11, 12):  # the same text (up to case and spaces)
        rows.loc[i, "text"] = "  " + rows.loc[10, "text"].upper()
    data = sentiment.prepare_data(rows, cfg)
    linked = [{"synthetic:" + rows.loc[i, "guid"] for i in (0, 1, 2, 3)},
              {"synthetic:" + rows.loc[i, "guid"] for i in (10, 11, 12)}]
    for split in sentiment.folds_of(data, cfg):
        for group in linked:
            assert [p for p, ids in split.parts.items() if group & set(ids)] in (["train"], ["val"], ["test"])


def test_no_fold_choice_sees_its_test_pairs(data: sentiment.Data, cfg: sentiment.TrainConfig,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """What picks the epoch, the hard samples, the baselines' settings and the fusion weight gets
    exactly the fold's training or validation pairs."""
    calls: dict[str, list] = {"fit": [], "mine": [], "fusion": [], "tfidf": []}
    fit, mine, fusion, tfidf = sentiment.fit_model, sentiment.mine_hard, sentiment.late_fusion, sentiment.tfidf_classifier
    depth = [0]

    def spy_fit(d, train, val, c, **kw):
        if depth[0] == 0:
            calls["fit"].append((set(train.source.tolist()), set(val.tolist())))
        return fit(d, train, val, c, **kw)

    def spy_mine(d, rows, c, **kw):
        calls["mine"].append(set(rows.tolist()))
        depth[0] += 1
        try:
            return mine(d, rows, c, **kw)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(sentiment, "fit_model", spy_fit)
    monkeypatch.setattr(sentiment, "mine_hard", spy_mine)
    monkeypatch.setattr(sentiment, "late_fusion", lambda v, y, t, **kw: calls["fusion"].append(list(y)) or fusion(v, y, t, **kw))
    monkeypatch.setattr(sentiment, "tfidf_classifier",
                        lambda tr, ytr, va, yva, te, **kw: calls["tfidf"].append((tr, va, te)) or tfidf(tr, ytr, va, yva, te, **kw))
    data.caption_fn, data.captions, data.memo = SpyCaptioner(), {}, {}
    cv = sentiment.cross_validate(data, replace(cfg, augment="captions"))
    for f, split in enumerate(cv["splits"]):
        part = {name: set(np.flatnonzero(split.mask(data.pairs["id"], name)).tolist()) for name in split.parts}
        assert calls["mine"][f] == part["train"]  # hard samples from the training part alone
        train, val = calls["fit"][f]
        assert val == part["val"] and train == part["train"]  # early stopping on validation; copies of training rows
        assert calls["fusion"][f] == data.y[sorted(part["val"])].tolist()  # the fusion weight on validation
        tr, va, te = calls["tfidf"][f]
        assert (tr, va, te) == tuple(data.texts(np.array(sorted(part[p]))) for p in ("train", "val", "test"))


def test_one_fit_trains_without_folds_or_baselines(pairs: Path, cfg: sentiment.TrainConfig, tmp_path: Path) -> None:
    from dataclasses import replace

    result = sentiment.train_sentiment(pairs_frame(pairs), out_dir=tmp_path, progress=False,
                                       config=replace(cfg, protocol="fit", retrain_epochs=2),
                                       cache_dir=tmp_path / "cache")
    assert result.metrics["evaluation"] == "one_fit" and result.metrics["retrain"]["epochs"] == 2
    assert "folds" not in result.files and not any(k.startswith("tfidf") for k in result.metrics)
    assert "one fit" in (tmp_path / "eval_summary.md").read_text(encoding="utf-8")
