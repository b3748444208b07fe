"""emoji_align trained end to end on a synthetic dataset through the fold protocol: the light
profile (hashed n-grams) and a tiny random transformers encoder, frozen (cached) and fine-tuned."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from emopulse.training.emoji_align.train import load_ranker, prepare_data, profile_config, train_emoji_align
from emopulse.training.loop import lr_factor
from emopulse.training.result import TrainResult

# small and quick; augmentation has its own test (it costs a third of a step here); 600 comments
# need higher rates than the demo's to be learnt in 8 epochs
FAST = dict(epochs=8, image_channels=(4, 8), augment=False, hidden_dim=64, embed_dim=32, ngram_buckets=1 << 12,
            tfidf_cs=(0.5, 2.0), batch_size=32, folds=3, min_comments=5, patience=None, lr_text_encoder=5e-3,
            lr_projection=3e-3, lr_image_encoder=3e-3)


@pytest.fixture(scope="module")
def light(tmp_path_factory, rows: pd.DataFrame) -> TrainResult:
    return train_emoji_align(rows, out_dir=tmp_path_factory.mktemp("light"),
                             config=profile_config("light", **FAST), progress=False)


def test_the_light_architecture_learns_a_learnable_set_beside_its_baselines(light: TrainResult) -> None:
    m = light.metrics
    assert m["evaluation"] == "video_folds(k=3)" and m["registered"] == "all_data_retrain"
    for part in ("", "balanced_"):
        for key in ("top1_strict", "top5_strict"):
            model, tfidf, majority = m[f"{part}{key}"], m[f"tfidf_{part}{key}"], m[f"majority_{part}{key}"]
            assert model >= tfidf - 0.05, (part, key, model, tfidf)  # each phrase names its emote: TF-IDF is ~1
            if key == "top1_strict":
                assert model > majority + 0.4
    assert m["tfidf_top1_strict"] > 0.9 and m["majority_top1_strict"] < 0.5  # the comparison means something
    assert m["top1_any"] >= m["top1_strict"] and m["top5_strict"] >= m["top1_strict"]


def test_figures_are_means_and_sds_of_the_folds(light: TrainResult, rows) -> None:
    m = light.metrics
    assert len(m["folds"]) == 3
    for key, method, part, metric in (("top1_strict", "emoji_align", "natural", "top1_strict"),
                                      ("tfidf_top5_strict", "tfidf", "natural", "top5_strict"),
                                      ("majority_balanced_top1_any", "majority", "balanced", "top1_any")):
        values = [f["results"][method][part][metric] for f in m["folds"]]
        assert m[key] == pytest.approx(np.mean(values)) and m[f"{key}_sd"] == pytest.approx(np.std(values, ddof=1))
    with_video = rows.drop_duplicates("rpid")["bvid"].notna().sum()
    assert sum(f["sizes"]["test"] for f in m["folds"]) == with_video  # every such comment tested once
    assert m["retrain"]["comments"] == rows["rpid"].nunique()  # the registered model saw every comment
    summary = (light.out_dir / "eval_summary.md").read_text(encoding="utf-8")
    for heading in ("How these figures were measured", "mean ± sd over 3 folds", "Per fold, natural",
                    "Per fold, balanced", "Per emote", "confusions", "Top-1 predictions", "Emote images",
                    "The registered model is not any of these runs", "TF-IDF char 1-3-grams + LR", "| majority |"):
        assert heading in summary, heading
    assert f"{m['top1_strict']:.3f} ± {m['top1_strict_sd']:.3f}" in summary


def test_the_result_is_a_ranker_with_its_preprocessor_and_head(light: TrainResult, rows) -> None:
    assert (light.name, light.task, light.entity_kinds, light.output_names) == ("emoji_align", "emoji",
                                                                                ("comment",), ("logits",))
    assert light.head.kind == "ranking" and light.head.labels[0] == "[笑哭]"  # most frequent first
    assert list(light.head.labels) == light.metrics["retrain"]["labels"]
    assert light.preprocessor.clean == "strip_emotes" and not light.module.training
    inputs = light.preprocessor.encode(["狗头保命[doge][doge]", "狗头保命", "哈哈哈[笑哭]"])
    with torch.no_grad():
        logits = light.module(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    assert logits.shape == (3, len(light.head.labels))
    torch.testing.assert_close(logits[0], logits[1])  # emote tokens never reach the model
    assert light.head.labels[int(logits[0].argmax())] == "[doge]"
    assert light.head.labels[int(logits[2].argmax())] == "[笑哭]"
    assert 0 < len(light.quality_records) <= 300 and all(isinstance(t, str) for t in light.quality_records)
    assert any("[" in t for t in light.quality_records)  # raw comments: the preprocessor cleans them
    assert {p.name for p in light.files.values()} == {"ckpt_best.pt", "ckpt_last.pt", "folds.json", "metrics.json",
                                                     "eval_summary.md"}


def test_training_text_is_what_the_preprocessor_makes_of_the_message(rows) -> None:
    config = profile_config("light", **FAST)
    data = prepare_data(rows, config)
    raw = rows.drop_duplicates("rpid").set_index(rows.drop_duplicates("rpid")["rpid"].astype(str))["message"]
    messages = data.comments["id"].map(raw).tolist()
    assert data.comments["text"].tolist() == data.preprocessor.texts(messages)
    assert not any("[" in t for t in data.comments["text"])


def test_history_logs_loss_tau_and_the_schedule_of_every_group(light: TrainResult) -> None:
    history = light.history  # the all-data retrain: no validation left, runs the chosen epochs
    assert [row["epoch"] for row in history] == list(range(1, light.metrics["retrain"]["epochs"] + 1))
    assert {"loss", "ce", "triplet", "tau", "lr_text_encoder", "lr_image_encoder", "lr_projection",
            "lr_tau"} <= set(history[0])
    assert all(0.03 <= row["tau"] <= 0.20 for row in history)
    cfg = profile_config("light", **FAST)
    steps = math.ceil(light.metrics["retrain"]["comments"] / cfg.batch_size)
    total = cfg.epochs * steps
    for row in history:
        factor = lr_factor(row["epoch"] * steps, total=total, warmup=max(1, round(cfg.warmup_frac * total)))
        assert row["lr_projection"] == pytest.approx(cfg.lr_projection * factor)
        assert row["lr_text_encoder"] == pytest.approx(cfg.lr_text_encoder * factor)
    fold = light.metrics["folds"][0]
    assert fold["epochs_run"] == cfg.epochs and "history" not in fold  # no patience here: every epoch runs
    fold_history = json.loads(json.dumps(light.metrics["folds"]))  # plain JSON, as the registry stores it
    assert fold_history[0]["best_epoch"] == fold["best_epoch"]


def test_a_fold_keeps_the_epoch_with_the_best_validation_figure(tmp_path, rows) -> None:
    config = profile_config("light", **{**FAST, "epochs": 5, "patience": 1, "monitor": "ce"})
    from emopulse.training.emoji_align.train import cross_validate

    data = prepare_data(rows[rows["rpid"] <= 240], config)
    cv = cross_validate(data, config)
    for fold in cv["folds"]:
        ces = [row["val_ce"] for row in fold["history"]]
        assert fold["best_epoch"] == 1 + int(np.argmin(ces))
        assert fold["epochs_run"] == min(5, fold["best_epoch"] + 1)  # patience 1
    assert cv["chosen_epochs"] == int(np.floor(np.median(cv["best_epochs"]) + 0.5))


def test_training_is_seeded(tmp_path, rows) -> None:
    config = profile_config("light", **{**FAST, "epochs": 1, "augment": True, "folds": 2})
    few = rows[rows["rpid"] <= 150]
    a = train_emoji_align(few, out_dir=tmp_path / "a", config=config, progress=False)
    b = train_emoji_align(few, out_dir=tmp_path / "b", config=config, progress=False)
    def timeless(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert timeless(a.history) == timeless(b.history) and a.metrics["folds"] == b.metrics["folds"]
    assert (tmp_path / "a" / "folds.json").read_text() == (tmp_path / "b" / "folds.json").read_text()


def test_checkpoint_rebuilds_the_ranker(light: TrainResult) -> None:
    ranker, preprocessor, head = load_ranker(light.files["checkpoint"])
    assert head == light.head and preprocessor.to_dict() == light.preprocessor.to_dict()
    inputs = {k: torch.from_numpy(v) for k, v in preprocessor.encode(["狗头保命", "哈哈哈", ""]).items()}
    with torch.no_grad():
        torch.testing.assert_close(ranker(**inputs), light.module(**inputs))
    last = torch.load(light.files["checkpoint_last"], weights_only=True)
    assert {"model_args", "config", "state_dict", "metrics", "extra", "epoch", "training_state"} <= set(last)
    assert last["epoch"] == light.metrics["retrain"]["epochs"] and last["config"]["profile"] == "light"


def test_a_frozen_transformers_encoder_trains_on_cached_features(tmp_path, rows, tiny_encoder, monkeypatch) -> None:
    config = profile_config("cpu", text_encoder_path=str(tiny_encoder), text_prefix="", **{**FAST, "epochs": 3})
    result = train_emoji_align(rows, out_dir=tmp_path / "run", config=config, cache_dir=tmp_path / "cache",
                               progress=False)
    # the cpu profile's two frozen encoders: e5 (here the tiny one) and EfficientNet-Lite0 for the emote images
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "features").iterdir()) == ["image", "text"]
    assert result.metrics["top5_strict"] > 0.5
    ckpt = torch.load(result.files["checkpoint"], weights_only=True)
    assert not any(k.startswith("text.encoder.") for k in ckpt["state_dict"])  # frozen: not stored
    ranker, preprocessor, _ = load_ranker(result.files["checkpoint"])  # the encoder comes from its folder
    inputs = {k: torch.from_numpy(v) for k, v in preprocessor.encode(["狗头保命", "哈哈哈"]).items()}
    with torch.no_grad():
        torch.testing.assert_close(ranker(**inputs), result.module(**inputs))

    from emopulse.training.encoders.text import TextEncoder

    monkeypatch.setattr(TextEncoder, "forward", lambda *a: pytest.fail("a second run must read the cache"))
    again = train_emoji_align(rows, out_dir=tmp_path / "again", config=replace(config, epochs=1),
                              cache_dir=tmp_path / "cache", progress=False)
    assert again.metrics["folds"][0]["tfidf"] == result.metrics["folds"][0]["tfidf"]
    assert len(list((tmp_path / "cache" / "baselines").glob("tfidf-*.npz"))) == 3  # one per fold, fitted once


def test_the_gpu_profile_fine_tunes_the_text_encoder(tmp_path, rows, tiny_encoder) -> None:
    config = replace(profile_config("gpu", text_encoder_path=str(tiny_encoder), text_prefix="", **FAST),
                     epochs=1, folds=2, batch_size=64, lr_text_encoder=1e-3)
    from emopulse.training.encoders.text import TextEncoder

    before = TextEncoder.from_pretrained(tiny_encoder).state_dict()
    result = train_emoji_align(rows[rows["rpid"] <= 200], out_dir=tmp_path, config=config, progress=False)
    after = result.module.text.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert any(k.startswith("text.encoder.") for k in torch.load(result.files["checkpoint"], weights_only=True)["state_dict"])
    steps = math.ceil(result.metrics["retrain"]["comments"] / 64)
    assert result.history[0]["lr_text_encoder"] == pytest.approx(1e-3 * lr_factor(steps, total=steps, warmup=1))
    assert not (tmp_path / "folds").exists()  # gpu: fold checkpoints stay in memory


def test_an_empty_or_too_rare_training_set_is_refused(tmp_path, rows) -> None:
    with pytest.raises(ValueError, match="empty"):
        train_emoji_align(rows.iloc[:0], out_dir=tmp_path, config=profile_config("light"), progress=False)
    with pytest.raises(ValueError, match="more than 10000 comments"):
        train_emoji_align(rows, out_dir=tmp_path, config=profile_config("light", min_comments=10000), progress=False)


def test_one_fit_trains_the_registered_model_without_folds(tmp_path, rows) -> None:
    """protocol="fit" (a scheduled retrain): no folds, no baselines, retrain_epochs epochs on all."""
    result = train_emoji_align(rows, out_dir=tmp_path, progress=False,
                               config=profile_config("light", **{**FAST, "protocol": "fit", "retrain_epochs": 2}))
    assert result.metrics["evaluation"] == "one_fit" and result.metrics["retrain"]["epochs"] == 2
    assert "tfidf_top1_strict" not in result.metrics and "folds" not in result.files
    assert len(result.history) == 2 and not (tmp_path / "folds").exists()
    assert "one fit" in (tmp_path / "eval_summary.md").read_text(encoding="utf-8")
    feeds = {k: torch.as_tensor(v) for k, v in result.preprocessor.encode(["哈哈哈"]).items()}
    assert result.module(**feeds).shape[-1] == len(result.head.labels)
    with pytest.raises(ValueError, match="protocol must be one of"):
        profile_config("light", protocol="sometimes")
