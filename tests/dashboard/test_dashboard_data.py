"""The dashboard's data access, over a home published through the warehouse API."""

from __future__ import annotations

import pandas as pd

from emopulse.dashboard import data


def test_snapshot_is_none_before_the_first_publish(tmp_path):
    assert data.snapshot(tmp_path) is None


def test_snapshot_names_the_current_version(published_home):
    snap = data.snapshot(published_home.home)
    assert snap is not None and snap.version == "000001"
    assert snap.published_at.tzinfo is not None


def test_headline_counts(published_home):
    assert data.headline(published_home.home) == data.Headline(
        comments=published_home.comments, videos=published_home.videos, emotes=published_home.emotes)


def test_emoji_shares_fold_small_emotes_into_others_last(published_home):
    shares = data.emoji_shares(published_home.home)
    assert shares.emoji_alt.iloc[-1] == "others"
    assert shares.emoji_name.tolist()[:3] == published_home.top_names[:3]
    assert published_home.others > 0
    assert shares.loc[shares.emoji_alt == "others", "count"].item() == published_home.others
    assert abs(shares.share.sum() - 1) < 1e-9


def test_top_emotes_ranks_all_emotes_without_folding(published_home):
    top = data.top_emotes(published_home.home, 50)
    assert top.emoji_name.tolist() == published_home.top_names
    assert top["count"].tolist()[:2] == [30, 25]
    assert len(data.top_emotes(published_home.home, 4)) == 4


def test_daily_comments_count_shanghai_calendar_days(published_home):
    daily = data.daily_comments(published_home.home)
    got = {pd.Timestamp(d).date().isoformat(): n for d, n in zip(daily.day, daily.comments, strict=True)}
    assert {day: n for day, n in got.items() if n} == published_home.days
    assert "2024-03-01" not in got  # 20:00 UTC on the 1st is already the 2nd in Shanghai
    assert got["2024-03-06"] == got["2024-03-07"] == 0  # quiet days are there, as 0
    assert list(got) == sorted(got) and len(got) == 7


def test_daily_emote_comments_per_emote(published_home):
    daily = data.daily_emote_comments(published_home.home, ["[笑哭]", "[doge]"])
    totals = daily.groupby("emoji_name").comments.sum().to_dict()
    assert totals == {"笑哭": 30, "doge": 25}
    assert daily.groupby("emoji_alt").day.count().tolist() == [4, 4]  # every day for every emote
    assert data.daily_emote_comments(published_home.home, []).empty


def test_latest_model_decodes_metrics(published_home):
    model = data.latest_model(published_home.home)
    assert model is not None
    assert (model.model_id, model.task, model.version) == ("emoji_bow-test", "emoji", "1")
    assert model.metrics["top5_strict"] == 0.83


def test_metric_table_pairs_model_and_majority_baseline():
    table = data.metric_table({
        "top5_any": 0.9, "top1_strict": 0.4, "majority_top1_strict": 0.2, "n_test": 30,
        "val_top1_strict": None, "labels": ["a"], "baseline": {"top5_any": 0.7},
    })
    assert table.metric.tolist() == ["top1_strict", "top5_any", "n_test"]
    assert table.set_index("metric").loc["top1_strict"].tolist() == [0.4, 0.2]
    assert table.set_index("metric").loc["top5_any"].tolist() == [0.9, 0.7]
    assert pd.isna(table.set_index("metric").loc["n_test", "baseline"])
