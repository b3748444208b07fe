"""The Streamlit app under AppTest, against a real home with published snapshots."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

import emopulse.dashboard
from emopulse.ingest.records import Comment, CommentEmote
from emopulse.warehouse import (
    Warehouse,
    current_version_dir,
    publish_snapshots,
    refresh_emoji_stats,
    upsert_comments,
)

APP = Path(emopulse.dashboard.__file__).with_name("app.py")


def run_app(home: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("EMOPULSE_HOME", str(home))
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def chart_frames(at: AppTest) -> list:
    """The data each vega-lite chart on the page was sent, as DataFrames."""
    frames = []
    for chart in at.get("vega_lite_chart"):
        (dataset,) = chart.proto.datasets
        frames.append(pa.ipc.open_stream(dataset.data.data).read_pandas())
    return frames


def test_headline_metrics_show_the_snapshot_numbers(published_home, monkeypatch):
    at = run_app(published_home.home, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Comments"] == str(published_home.comments)
    assert metrics["Videos"] == str(published_home.videos)
    assert metrics["Distinct emotes"] == str(published_home.emotes)
    manifest = json.loads((current_version_dir(published_home.home) / "manifest.json").read_text())
    published = datetime.fromisoformat(manifest["published_at"])
    assert metrics["Snapshot (UTC)"] == f"{published:%Y-%m-%d %H:%M}"


def test_distribution_charts_with_others_and_chinese_labels(published_home, monkeypatch):
    at = run_app(published_home.home, monkeypatch)
    pie, bars, daily = chart_frames(at)
    assert "others" in set(pie.emoji_alt)
    assert pie.emoji_alt.iloc[-1] == "others"
    assert bars.emoji_name.tolist()[:3] == published_home.top_names[:3]
    assert "笑哭" in set(bars.emoji_name)
    assert daily.comments.sum() == published_home.comments


def test_top_n_slider_changes_the_bars(published_home, monkeypatch):
    at = run_app(published_home.home, monkeypatch)
    assert len(chart_frames(at)[1]) == 10
    at.slider(key="top_n").set_value(3).run()
    assert not at.exception
    bars = chart_frames(at)[1]
    assert bars.emoji_name.tolist() == published_home.top_names[:3]
    assert any(h.value == "Top 3 emotes" for h in at.subheader)


def test_counts_over_time_split_by_top_emote(published_home, monkeypatch):
    at = run_app(published_home.home, monkeypatch)
    at.slider(key="top_n").set_value(3).run()
    at.toggle(key="per_emote").set_value(True).run()
    assert not at.exception
    daily = chart_frames(at)[2]
    assert set(daily.emoji_name) == set(published_home.top_names[:3])


def test_latest_model_metrics_against_the_baseline(published_home, monkeypatch):
    at = run_app(published_home.home, monkeypatch)
    metrics = {m.label: (m.value, m.delta) for m in at.metric}
    assert metrics["Top-1 strict"] == ("41.0%", "+21.0 pts vs majority")
    assert metrics["Top-5 strict"][0] == "83.0%"
    table = at.dataframe[0].value
    assert table.set_index("Metric").loc["Top-1 strict", "Majority baseline"] == "20.0%"
    assert any(published_home.model_version in c.value for c in at.caption)


def test_empty_home_says_what_to_run(tmp_path, monkeypatch):
    at = run_app(tmp_path / "nothing-here", monkeypatch)
    (message,) = at.info
    assert "No snapshot yet" in message.value
    assert "emopulse demo" in message.value and "emopulse run" in message.value
    assert not at.metric and not at.get("vega_lite_chart")


def test_a_new_snapshot_shows_on_the_next_run(tmp_path, monkeypatch):
    def publish(n: int) -> None:
        comments = [Comment(rpid=r, message=f"评论{r}[doge]", sentence=f"评论{r}", source="api:main",
                            bvid="BV1new", mid=str(r), ctime=1_700_000_000 + r,
                            emotes=(CommentEmote(r, "[doge]", "doge"),)) for r in range(1, n + 1)]
        with Warehouse.open(tmp_path / "warehouse.duckdb", command="tests/dashboard") as wh:
            upsert_comments(wh, comments)
            refresh_emoji_stats(wh)
            publish_snapshots(wh, tmp_path)

    publish(3)
    at = run_app(tmp_path, monkeypatch)
    assert {m.label: m.value for m in at.metric}["Comments"] == "3"
    assert any("No model trained yet" in i.value for i in at.info)
    publish(5)
    at.run()
    assert {m.label: m.value for m in at.metric}["Comments"] == "5"
