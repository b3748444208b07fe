"""The emoji evaluation protocol: folds over whole videos, labels and thresholds from the training
videos only, TF-IDF's C chosen on validation videos, and a registered model trained on every row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from emote_fixtures import synthetic_emote_rows

import emopulse.training.emoji_align.train as train_module
from emopulse.training.emoji_align.train import profile_config, train_emoji_align
from emopulse.training.splits import video_folds

TINY = dict(epochs=3, image_channels=(4, 8), augment=False, hidden_dim=32, embed_dim=16, ngram_buckets=1 << 10,
            tfidf_cs=(0.05, 2.0), batch_size=64, folds=3, min_comments=10, patience=None)
ONLY_IN = "BV_ONE"  # the one video where `[独占]` is used, 30 times


def rows_with_a_one_video_emote() -> pd.DataFrame:
    rows = synthetic_emote_rows(300, seed=3, videos=9)
    extra = pd.DataFrame([{"rpid": 10_000 + i, "bvid": ONLY_IN, "emoji_alt": "[独占]", "emoji_name": "独占",
                           "message": f"独占的说法{i % 7}[独占]", "sentence": f"独占的说法{i % 7}"} for i in range(30)])
    return pd.concat([rows, extra], ignore_index=True)


@dataclass
class Spy:
    fits: list[dict[str, Any]] = field(default_factory=list)
    tfidf: list[dict[str, Any]] = field(default_factory=list)
    chosen: int = 0


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    rows = rows_with_a_one_video_emote()
    spy = Spy()
    fit_model, tfidf = train_module.fit_model, train_module.tfidf_logreg_baseline

    def spy_fit(data, view, train, val, cfg, **kw):
        spy.fits.append({"labels": list(view.labels), "train": train.copy(), "val": val.copy(),
                         "stop_after": kw.get("stop_after"), "videos": data.comments["video"].to_numpy(),
                         "ids": data.comments["id"].to_numpy(), "texts": data.comments["text"].to_numpy()})
        return fit_model(data, view, train, val, cfg, **kw)

    def spy_tfidf(train_texts, train_main, **kw):
        spy.tfidf.append({"train": list(train_texts), "val": list(kw["val_texts"]), "test": list(kw["test_texts"])})
        return tfidf(train_texts, train_main, **kw)

    cross_validate = train_module.cross_validate

    def epochs_chosen_as_two(*args, **kw):  # not the schedule's 3, so the retrain must take the folds' choice
        cv = cross_validate(*args, **kw)
        spy.chosen = cv["chosen_epochs"]
        return {**cv, "chosen_epochs": 2}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "cross_validate", epochs_chosen_as_two)
        mp.setattr(train_module, "fit_model", spy_fit)
        mp.setattr(train_module, "tfidf_logreg_baseline", spy_tfidf)
        result = train_emoji_align(rows, out_dir=tmp_path_factory.mktemp("protocol"),
                                   config=profile_config("light", **TINY), progress=False)
    return rows, result, spy


# -- folds ------------------------------------------------------------------------------------------
def frame(n_videos: int = 14, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 60, n_videos)
    ids = [(f"{v}-{i}", f"BV{v:02d}") for v in range(n_videos) for i in range(sizes[v])]
    ids += [(f"none-{i}", None) for i in range(25)]  # comments without a video
    return pd.DataFrame(ids, columns=["rpid", "bvid"])


@pytest.mark.parametrize("k", [3, 5])
def test_folds_hold_whole_videos_apart_and_test_each_video_once(k: int) -> None:
    data = frame()
    video_of = dict(zip(data["rpid"], data["bvid"], strict=True))
    folds = video_folds(data, k=k, val_frac=0.2, seed=1)
    tested: list[str] = []
    for fold in folds:
        videos = {part: {video_of[i] for i in fold.parts[part]} for part in ("train", "val", "test")}
        assert not videos["train"] & videos["val"] and not videos["train"] & videos["test"]
        assert not videos["val"] & videos["test"] and videos["val"]
        assert None not in videos["test"] | videos["val"]  # no video: training only
        assert {i for i in data["rpid"] if video_of[i] is None} <= set(fold.parts["train"])
        assert sorted(videos["test"]) == fold.params["test_videos"]
        assert set(fold.params["val_videos"]) == videos["val"] <= set(data["bvid"].dropna()) - videos["test"]
        assert sum(map(len, fold.parts.values())) == len(data)
        tested += fold.params["test_videos"]
    assert sorted(tested) == sorted(data["bvid"].dropna().unique())  # every video tested exactly once
    sizes = [len(f.parts["test"]) for f in folds]
    assert max(sizes) - min(sizes) <= data["bvid"].value_counts().max()  # dealt out to balance the folds
    assert [f.to_dict() for f in video_folds(data, k=k, val_frac=0.2, seed=1)] == [f.to_dict() for f in folds]


def test_too_few_videos_for_the_folds_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 6 videos"):
        video_folds(frame(n_videos=5), k=5)


def test_the_model_and_tfidf_train_validate_and_test_on_the_folds_parts(protocol) -> None:
    _, result, spy = protocol
    fold_fits = spy.fits[:-1]
    assert len(fold_fits) == len(spy.tfidf) == len(result.metrics["folds"]) == 3
    for fit, tfidf, fold in zip(fold_fits, spy.tfidf, result.metrics["folds"], strict=True):
        videos, texts = fit["videos"], fit["texts"]
        test_videos, val_videos = set(fold["test_videos"]), set(fold["val_videos"])
        test = np.flatnonzero(np.isin(videos.astype(str), list(test_videos)))
        assert set(videos[fit["val"]]) <= val_videos and fit["val"].size  # validation: whole other videos
        assert not set(videos[fit["train"]]) & (test_videos | val_videos)
        assert not test_videos & val_videos
        # TF-IDF: the model's train and validation rows; it scores the validation rows (for the
        # blend's weight) and then every comment of the test videos
        assert tfidf["train"] == texts[fit["train"]].tolist() and tfidf["val"] == texts[fit["val"]].tolist()
        assert tfidf["test"] == texts[fit["val"]].tolist() + texts[test].tolist()


def test_tfidf_c_is_the_best_on_the_validation_videos(protocol) -> None:
    _, result, _ = protocol
    for fold in result.metrics["folds"]:
        by_c = fold["tfidf"]["val_top1_by_C"]
        assert set(by_c) == {"0.05", "2.0"}
        best = max(by_c.values())
        assert fold["tfidf"]["C"] == min(float(c) for c, v in by_c.items() if v == best)


# -- labels -----------------------------------------------------------------------------------------
def test_labels_and_their_order_come_from_the_training_videos_only(protocol) -> None:
    rows, result, _ = protocol
    carried = rows.drop_duplicates(["rpid", "emoji_alt"])
    for fold in result.metrics["folds"]:
        seen = carried[~carried["bvid"].isin(fold["test_videos"])]
        counts = seen["emoji_alt"].value_counts()
        expected = sorted((e for e, n in counts.items() if n > TINY["min_comments"]), key=lambda e: (-counts[e], e))
        assert fold["labels"] == expected
        if ONLY_IN in fold["test_videos"]:  # frequent in all the data, but only in this fold's test videos
            assert "[独占]" not in fold["labels"] and fold["unknown_main"] == 30
            for method in ("emoji_align", "tfidf", "majority"):  # those 30 are a miss for everyone
                n = fold["results"][method]["n"]
                assert fold["results"][method]["natural"]["top5_any"] <= (n - 30) / n + 1e-9
        else:
            assert "[独占]" in fold["labels"] and fold["unknown_main"] == 0
    assert "[独占]" in result.head.labels  # the registered model has it: it was trained on every video


# -- the registered model ---------------------------------------------------------------------------
def test_the_registered_model_is_trained_on_every_row_for_the_chosen_epochs(protocol) -> None:
    rows, result, spy = protocol
    retrain = spy.fits[-1]
    assert retrain["val"].size == 0 and len(retrain["train"]) == rows["rpid"].nunique()
    assert set(retrain["ids"][retrain["train"]]) == set(rows["rpid"].astype(str))
    assert tuple(retrain["labels"]) == result.head.labels
    best_epochs = [f["best_epoch"] for f in result.metrics["folds"]]
    assert spy.chosen == int(np.floor(np.median(best_epochs) + 0.5))  # the median of the folds' best epochs
    assert retrain["stop_after"] == result.metrics["retrain"]["epochs"] == 2 == len(result.history)
    assert result.metrics["retrain"]["comments"] == rows["rpid"].nunique()
    assert "retrain on all" in result.metrics["describes"]
    import torch

    from emopulse.training.checkpoint import load_checkpoint

    registered = load_checkpoint(result.files["checkpoint"])
    torch.testing.assert_close(registered["extra"]["prototypes"], result.module.prototypes)
    assert registered["extra"]["labels"] == list(result.head.labels)
