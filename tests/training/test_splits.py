from __future__ import annotations

import pandas as pd
import pytest

from emopulse.training.splits import Split, split_by_comment, split_by_group, split_by_video


def test_split_by_comment_keeps_every_comment_on_one_side(rows: pd.DataFrame) -> None:
    split = split_by_comment(rows["rpid"], val_frac=0.2, test_frac=0.2, seed=3)
    parts = split.assign(rows["rpid"])
    sides = pd.DataFrame({"rpid": rows["rpid"], "part": parts}).groupby("rpid")["part"].nunique()
    assert (sides == 1).all()
    assert set(parts) == {"train", "val", "test"}
    assert sum(split.sizes().values()) == rows["rpid"].nunique()
    assert not split.ids("train") & split.ids("test")


def test_split_is_seeded_and_independent_of_row_order(rows: pd.DataFrame) -> None:
    a = split_by_comment(rows["rpid"], seed=1)
    b = split_by_comment(rows["rpid"].iloc[::-1], seed=1)
    c = split_by_comment(rows["rpid"], seed=2)
    assert a == b
    assert a.parts != c.parts


def test_split_round_trips_as_ids(tmp_path, rows: pd.DataFrame) -> None:
    split = split_by_comment(rows["rpid"], seed=0)
    loaded = Split.load(split.save(tmp_path / "split.json"))
    assert loaded == split
    assert (loaded.assign(rows["rpid"]) == split.assign(rows["rpid"])).all()


def test_split_by_video_holds_out_whole_videos_and_keeps_unknown_videos_in_training() -> None:
    frame = pd.DataFrame({"rpid": range(100), "bvid": [f"BV{i % 10}" if i < 90 else None for i in range(100)]})
    split = split_by_video(frame, test_frac=0.3, val_frac=0.2, seed=0)
    parts = split.assign(frame["rpid"])
    by_video = pd.DataFrame({"bvid": frame["bvid"], "test": parts == "test"}).dropna().groupby("bvid")["test"]
    assert (by_video.nunique() == 1).all()  # a video is wholly in test or wholly out
    assert 0 < (parts == "test").sum() < 90
    assert not (parts[90:] == "test").any()


def test_a_split_rejects_an_id_on_two_sides() -> None:
    with pytest.raises(ValueError, match="both"):
        Split(parts={"train": ("1", "2"), "test": ("2",)}, seed=0, method="manual")
    with pytest.raises(ValueError, match="fractions"):
        split_by_group([1, 2], fractions={"a": 0.8, "b": 0.8}, seed=0)
