"""emoji_align trained end to end on a synthetic dataset: the light profile (hashed n-grams) and a
tiny random transformers encoder, frozen (cached) and fine-tuned."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
import torch

from emopulse.training.emoji_align.train import TrainResult, load_ranker, profile_config, train_emoji_align
from emopulse.training.encoders.tokenizers import load_tokenizer

# small and quick; augmentation has its own test (it costs a third of a step here)
FAST = dict(epochs=8, image_channels=(4, 8), augment=False, hidden_dim=64, embed_dim=32, ngram_buckets=1 << 12,
            tfidf_cs=(2.0,), video_test_frac=0.25, batch_size=32)


@pytest.fixture(scope="module")
def light(tmp_path_factory, rows: pd.DataFrame) -> TrainResult:
    return train_emoji_align(rows, out_dir=tmp_path_factory.mktemp("light"),
                             config=profile_config("light", **FAST), progress=False)


def test_light_profile_beats_both_baselines_and_writes_its_files(light: TrainResult) -> None:
    m = light.metrics
    assert m["evaluation"] == "unseen_videos"
    for key in ("top1_strict", "top5_strict"):
        assert m[key] > m[f"majority_{key}"] + 0.2 if key == "top1_strict" else m[key] >= m[f"majority_{key}"]
    assert m["top1_any"] >= m["top1_strict"] and m["top5_strict"] >= m["top1_strict"]
    for name in ("balanced_top1_strict", "tfidf_top1_strict", "tfidf_balanced_top5_any", "mean_rank", "macro_f1"):
        assert name in m
    by_comment = m["runs"]["by_comment"]
    assert by_comment["results"]["emoji_align"]["natural"]["top1_strict"] > 0.8
    report = m["runs"]["unseen_videos"]["report"]
    assert set(report["per_emote"]["[doge]"]) == {"support", "predicted", "precision", "recall", "f1", "mean_rank"}
    assert sum(report["top1_distribution"].values()) == m["runs"]["unseen_videos"]["sizes"]["test"]
    assert {p.name for p in light.files.values()} == {
        "ckpt.pt", "ckpt_last.pt", "tokenizer.json", "labels.json", "split.json", "split_unseen_videos.json",
        "metrics.json", "eval_summary.md"}
    assert json.loads((light.out_dir / "labels.json").read_text(encoding="utf-8"))[0] == "[笑哭]"  # most frequent
    summary = (light.out_dir / "eval_summary.md").read_text(encoding="utf-8")
    for heading in ("Unseen videos", "Split by comment", "Balanced sample", "Per emote", "confusions",
                    "Top-1 predictions", "Emote images", "| tfidf |", "| majority |"):
        assert heading in summary
    assert m["image_coverage"]["name"]["share"] == 1.0
    assert not light.model.training


def test_history_logs_loss_tau_and_learning_rates_with_tau_in_bounds(light: TrainResult) -> None:
    history = light.history
    assert [row["epoch"] for row in history] == list(range(1, 9))
    assert {"loss", "ce", "triplet", "val_top1", "val_top5", "tau", "lr_text_encoder", "lr_image_encoder",
            "lr_projection", "lr_tau"} <= set(history[0])
    assert all(0.03 <= row["tau"] <= 0.20 for row in history)
    assert history[-1]["lr_projection"] < history[1]["lr_projection"]  # cosine decay
    best = light.metrics["runs"]["by_comment"]["best_epoch"]
    assert history[best - 1]["val_top1"] == max(row["val_top1"] for row in history)


def test_splits_are_by_comment_and_unseen_videos_hold_out_whole_videos(light: TrainResult, rows) -> None:
    by_comment = json.loads((light.out_dir / "split.json").read_text(encoding="utf-8"))
    assert by_comment["method"] == "by_comment" and by_comment["seed"] == 0
    parts = {name: set(ids) for name, ids in by_comment["parts"].items()}
    assert sum(map(len, parts.values())) == rows["rpid"].nunique() == len(set().union(*parts.values()))
    video = json.loads((light.out_dir / "split_unseen_videos.json").read_text(encoding="utf-8"))
    comments = rows.drop_duplicates("rpid")
    video_of = {str(rpid): None if pd.isna(bvid) else bvid for rpid, bvid in zip(comments["rpid"], comments["bvid"],
                                                                               strict=True)}
    test_videos = {video_of[i] for i in video["parts"]["test"]}
    train_videos = {video_of[i] for i in video["parts"]["train"] + video["parts"]["val"]}
    assert test_videos == set(video["params"]["test_videos"]) and not test_videos & train_videos
    assert None not in test_videos  # comments without a video stay in training
    assert None in train_videos


def test_training_is_seeded(tmp_path, rows) -> None:
    config = profile_config("light", **{**FAST, "epochs": 1, "unseen_videos": False, "augment": True})
    few = rows[rows["rpid"] <= 150]
    a = train_emoji_align(few, out_dir=tmp_path / "a", config=config, progress=False)
    b = train_emoji_align(few, out_dir=tmp_path / "b", config=config, progress=False)
    assert a.split == b.split and a.history == b.history


def test_checkpoint_rebuilds_the_ranker(light: TrainResult) -> None:
    ranker, tokenizer, labels = load_ranker(light.files["checkpoint"])
    assert labels == light.labels and tokenizer == light.tokenizer
    ids, mask = map(torch.from_numpy, tokenizer.encode(["狗头保命", "哈哈哈", ""]))
    with torch.no_grad():
        torch.testing.assert_close(ranker(ids, mask), light.model(ids, mask))
    last = torch.load(light.files["checkpoint_last"], weights_only=True)
    assert {"model_args", "config", "state_dict", "metrics", "extra"} <= set(last)
    assert last["metrics"]["epoch"] == 8 and last["config"]["profile"] == "light"


def test_a_frozen_transformers_encoder_trains_on_cached_embeddings(tmp_path, rows, tiny_encoder) -> None:
    config = profile_config("cpu", text_encoder_path=str(tiny_encoder), text_prefix="", **{**FAST, "epochs": 3,
                                                                                             "unseen_videos": False})
    result = train_emoji_align(rows, out_dir=tmp_path / "run", config=config, cache_dir=tmp_path / "cache",
                               progress=False)
    assert len(list((tmp_path / "cache").glob("text-*.npz"))) == 1
    assert result.metrics["runs"]["by_comment"]["results"]["emoji_align"]["natural"]["top5_strict"] > 0.5
    ckpt = torch.load(result.files["checkpoint"], weights_only=True)
    assert not any(k.startswith("text.encoder.") for k in ckpt["state_dict"])  # frozen: not stored
    ranker, tokenizer, _ = load_ranker(result.files["checkpoint"])  # the encoder comes from its folder
    ids, mask = map(torch.from_numpy, tokenizer.encode(["狗头保命", "哈哈哈"]))
    with torch.no_grad():
        torch.testing.assert_close(ranker(ids, mask), result.model(ids, mask))
    assert load_tokenizer(result.files["tokenizer"]) == tokenizer


def test_the_gpu_profile_fine_tunes_the_text_encoder(tmp_path, rows, tiny_encoder) -> None:
    config = replace(profile_config("gpu", text_encoder_path=str(tiny_encoder), text_prefix="", **FAST),
                     epochs=1, unseen_videos=False, batch_size=64, lr_text_encoder=1e-3)
    from emopulse.training.encoders.text import TextEncoder

    before = TextEncoder.from_pretrained(tiny_encoder).state_dict()
    result = train_emoji_align(rows, out_dir=tmp_path, config=config, progress=False)
    after = result.model.text.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert any(k.startswith("text.encoder.") for k in torch.load(result.files["checkpoint"], weights_only=True)["state_dict"])
    assert result.history[0]["lr_text_encoder"] >= 0


def test_an_empty_training_set_is_refused(tmp_path, rows) -> None:
    with pytest.raises(ValueError, match="empty"):
        train_emoji_align(rows.iloc[:0], out_dir=tmp_path, config=profile_config("light"), progress=False)


