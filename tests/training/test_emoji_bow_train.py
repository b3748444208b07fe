from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from emopulse.training.data import emote_comments
from emopulse.training.emoji_bow.train import TrainConfig, load_emoji_bow, predict_proba, train_emoji_classifier

FAST = TrainConfig(epochs=6, buckets=1 << 12, dim=16, lr=1e-2)


def test_training_beats_the_majority_baseline_and_writes_its_files(tmp_path, rows: pd.DataFrame) -> None:
    result = train_emoji_classifier(rows, out_dir=tmp_path, config=FAST, progress=False)
    m = result.metrics
    assert m["top1_strict"] > m["majority_top1_strict"] + 0.3
    assert m["top1_any"] >= m["top1_strict"]
    assert m["top5_strict"] >= m["top1_strict"]
    assert m["n_train"] + m["n_val"] + m["n_test"] == rows["rpid"].nunique()
    assert m["best_epoch"] <= len(result.history) <= FAST.epochs
    assert result.history[0]["epoch"] == 1 and "train_loss" in result.history[0]
    assert {p.name for p in result.files.values()} == {
        "ckpt.pt", "tokenizer.json", "labels.json", "split.json", "metrics.json", "eval_summary.md"}
    assert json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))[0] == "[笑哭]"  # most frequent
    assert "majority" in (tmp_path / "eval_summary.md").read_text(encoding="utf-8")
    assert not result.model.training


def test_the_untrained_model_ranks_like_the_majority_baseline(tmp_path, rows: pd.DataFrame) -> None:
    # lr 0: the weights stay at their initialisation, whose bias is the log prior of the training targets
    result = train_emoji_classifier(rows, out_dir=tmp_path, config=replace(FAST, lr=0.0), epochs=1,
                                    progress=False)
    m = result.metrics
    assert m["top1_strict"] == m["majority_top1_strict"]
    ids, mask = result.tokenizer.encode([""])
    train = emote_comments(rows[rows["rpid"].astype(str).isin(result.split.ids("train"))])
    shares = [pd.Series(c, index=labs) / sum(c) for labs, c in zip(train["labels"], train["counts"], strict=True)]
    prior = pd.concat(shares).groupby(level=0).sum() / len(train)  # mean of the per-comment targets
    np.testing.assert_allclose(predict_proba(result.model, ids, mask)[0],
                               prior.reindex(result.labels, fill_value=0).to_numpy(), atol=1e-5)


def test_training_stops_when_validation_stops_improving(tmp_path, rows: pd.DataFrame) -> None:
    result = train_emoji_classifier(rows, out_dir=tmp_path, config=replace(FAST, patience=1), epochs=20,
                                    progress=False)
    assert len(result.history) == result.metrics["best_epoch"] + 1 < 20


def test_training_is_seeded(tmp_path, rows: pd.DataFrame) -> None:
    a = train_emoji_classifier(rows, out_dir=tmp_path / "a", config=FAST, epochs=2, progress=False)
    b = train_emoji_classifier(rows, out_dir=tmp_path / "b", config=FAST, epochs=2, progress=False)
    assert a.split == b.split
    assert a.history == b.history


def test_checkpoint_rebuilds_the_model(tmp_path, rows: pd.DataFrame) -> None:
    result = train_emoji_classifier(rows, out_dir=tmp_path, config=FAST, epochs=1, progress=False)
    model, tokenizer, labels = load_emoji_bow(result.files["checkpoint"])
    ids, mask = tokenizer.encode(["狗头保命", "哈哈哈", ""])
    np.testing.assert_allclose(predict_proba(model, ids, mask), predict_proba(result.model, ids, mask), atol=1e-6)
    assert labels == result.labels
    ckpt = torch.load(result.files["checkpoint"], weights_only=True)
    assert {"model_args", "config", "state_dict", "metrics"} <= set(ckpt)
    assert ckpt["config"]["seed"] == 0


def test_importing_the_packages_does_not_import_torch() -> None:
    code = ("import sys, emopulse.training, emopulse.serving; emopulse.training.Split; "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
