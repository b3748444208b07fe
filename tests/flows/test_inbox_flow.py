"""The inbox: MediaCrawler files dropped into $EMOPULSE_HOME/inbox/xhs/ land, or fail with a reason;
the watch outlives a busy writer and a failed pass, and leaves no window stale."""

from __future__ import annotations

import json
import logging
import os
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from emopulse.flows.posts import process_inbox
from emopulse.flows.settings import load_settings
from emopulse.warehouse import Warehouse, WarehouseBusy, query
from emopulse.warehouse.windows import refresh_windows

NOTE = {"note_id": "6612057b000000001a00ce44", "type": "normal", "title": "今日穿搭", "desc": "#ootd[话题]#",
        "time": 1_712_457_083_000, "liked_count": "1.2万", "collected_count": "3千", "comment_count": "1",
        "share_count": "", "image_list": "", "tag_list": "ootd", "last_modify_ts": 1_712_500_000_000}


@pytest.fixture
def inbox_flow(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    prefect_home = tmp_path_factory.mktemp("prefect")
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    monkeypatch.setenv("PREFECT_LOCAL_STORAGE_PATH", str(prefect_home / "storage"))
    from emopulse.flows.inbox import inbox_flow

    return inbox_flow


def drop(home: Path, name: str, text: str, age_s: float = 60) -> Path:
    path = home / "inbox" / "xhs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = path.stat().st_mtime - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_a_good_file_lands_and_a_broken_one_fails_with_its_reason(inbox_flow, tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop(home, "search_contents_2024-04-08.json", json.dumps([NOTE, {**NOTE, "note_id": "bad", "liked_count": "?"}]))
    drop(home, "search_comments_2024-04-08.json", "<html>429 Too Many Requests</html>")

    result = inbox_flow.fn(home=str(home), settle_s=1)  # the flow's body, without Prefect's engine

    inbox = home / "inbox" / "xhs"
    assert result["done"] == ["search_contents_2024-04-08.json"]
    assert list(result["failed"]) == ["search_comments_2024-04-08.json"]
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == []
    assert (inbox / "done" / "search_contents_2024-04-08.json").is_file()
    rejected = (inbox / "done" / "search_contents_2024-04-08.json.rejected.txt").read_text(encoding="utf-8")
    assert "1 rows rejected" in rejected and "liked_count" in rejected
    assert (inbox / "failed" / "search_comments_2024-04-08.json").is_file()
    reason = (inbox / "failed" / "search_comments_2024-04-08.json.reason.txt").read_text(encoding="utf-8")
    assert "not JSON" in reason and "search_comments_2024-04-08.json" in reason

    # readers see the good file's post in the published snapshot
    posts = query(home, "SELECT p.post_id, m.likes FROM posts p JOIN post_metrics m USING (post_id)")
    assert posts.values.tolist() == [["6612057b000000001a00ce44", 12_000]]

    again = inbox_flow.fn(home=str(home), settle_s=1)
    assert (again["done"], again["failed"]) == ([], {})


def test_a_file_still_being_written_waits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop(home, "fresh.json", json.dumps([NOTE]), age_s=0)
    settings = load_settings(home=home)
    summary = process_inbox(settings, settle_s=30)
    assert (summary.done, summary.waiting) == ([], ["fresh.json"])
    assert not (home / "warehouse.duckdb").exists()  # nothing to do: the writer was not even opened
    drop(home, "same.json", json.dumps([NOTE]))
    (home / "inbox" / "xhs" / "done").mkdir(exist_ok=True)
    (home / "inbox" / "xhs" / "done" / "same.json").write_text("older", encoding="utf-8")
    summary = process_inbox(settings, settle_s=30)
    assert summary.done == ["same.json"]
    assert (home / "inbox" / "xhs" / "done" / "same.1.json").is_file()  # an earlier file is never overwritten


def _watch(inbox_flow, home: Path, runs: int, between=lambda: None) -> tuple[list, list, list]:
    """`runs` watch passes (the flow's body, without Prefect's engine); `between` runs in place of
    each wait between passes. Returns (results, errors, waits)."""
    from emopulse.flows.inbox import watch_inbox

    results, errors, waits = [], [], []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        between()

    watch_inbox(str(home), every_s=30, settle_s=1, runs=runs, on_result=results.append,
                on_error=errors.append, run_pass=inbox_flow.fn, sleep=wait)
    return results, errors, waits


def test_the_watch_outlives_a_busy_writer_and_imports_on_the_next_pass(
        inbox_flow, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "home"
    drop(home, "notes.json", json.dumps([NOTE]))
    settings = load_settings(home=home)
    busy = ExitStack()
    busy.enter_context(Warehouse.open(settings.database, command="crawl videos BV1busy"))  # a real writer

    with caplog.at_level(logging.WARNING, logger="emopulse.flows.inbox"):
        results, errors, waits = _watch(inbox_flow, home, runs=2, between=busy.close)

    assert [type(e) for e in errors] == [WarehouseBusy] and "crawl videos BV1busy" in str(errors[0])
    assert "inbox pass skipped" in caplog.text and "crawl videos BV1busy" in caplog.text
    assert len(waits) == 1 and 0 < waits[0] <= 30  # it waited for the next pass, then tried again
    assert [r["done"] for r in results] == [["notes.json"]]
    assert (home / "inbox" / "xhs" / "done" / "notes.json").is_file()
    assert query(home, "SELECT post_id FROM posts")["post_id"].tolist() == [NOTE["note_id"]]


def test_a_pass_that_dies_before_the_windows_refresh_leaves_them_to_the_next_pass(
        inbox_flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from emopulse.flows import posts
    from emopulse.flows.steps import writer
    from emopulse.warehouse.images import set_categories

    home = tmp_path / "home"
    settings = load_settings(home=home)
    pictured = {**NOTE, "image_list": "https://img.invalid/1.jpg"}
    drop(home, "first.json", json.dumps([pictured]))
    assert process_inbox(settings, settle_s=1).done == ["first.json"]
    with writer(settings, "test: categorise") as wh:  # as cluster-images would
        days = set_categories(wh, pd.DataFrame({"post_id": [NOTE["note_id"]], "image_index": [0]}), [3], "test")
        refresh_windows(wh, days)
    daily = "SELECT day::VARCHAR AS day, category, posts, likes FROM daily_category_stats"
    assert query(home, daily).values.tolist() == [["2024-04-07", 3, 1, 12_000]]

    # a newer file of the same note: more likes; the pass dies between moving it and the windows
    drop(home, "second.json", json.dumps([{**pictured, "liked_count": "2万", "last_modify_ts": 1_712_600_000_000}]))
    real, calls = posts.refresh_windows, []

    def dies_once(wh, days=None):
        calls.append(days)
        if len(calls) == 1:
            raise RuntimeError("killed before the windows were refreshed")
        return real(wh, days)

    monkeypatch.setattr(posts, "refresh_windows", dies_once)
    marker = posts.pending_windows_path(settings)
    seen_between: list = []

    def between() -> None:  # what the crashed pass left behind
        seen_between.append((marker.is_file(), (home / "inbox" / "xhs" / "done" / "second.json").is_file(),
                             query(home, daily).values.tolist()))

    with caplog.at_level(logging.ERROR, logger="emopulse.flows.inbox"):
        results, errors, _ = _watch(inbox_flow, home, runs=2, between=between)

    assert [str(e) for e in errors] == ["killed before the windows were refreshed"]
    assert "inbox pass failed" in caplog.text and "RuntimeError" in caplog.text
    assert seen_between == [(True, True, [["2024-04-07", 3, 1, 12_000]])]  # stale, but marked
    assert calls == [{date(2024, 4, 7)}, {date(2024, 4, 7)}]  # the next pass refreshed that day
    assert [(r["done"], r["windows"]["days_changed"]) for r in results] == [([], 1)]
    assert query(home, daily).values.tolist() == [["2024-04-07", 3, 1, 20_000]]
    assert not marker.exists()
    windows = query(home, "SELECT * FROM trend_windows ORDER BY ALL")
    posts.rebuild_windows(settings)  # a rebuild from scratch finds nothing to change
    assert query(home, "SELECT * FROM trend_windows ORDER BY ALL").equals(windows)
    assert query(home, daily).values.tolist() == [["2024-04-07", 3, 1, 20_000]]


@pytest.mark.parametrize("cut", ["inside a record", "after a comma", "without the closing bracket"])
def test_a_truncated_json_array_fails_with_its_reason_and_loads_nothing(tmp_path: Path, cut: str) -> None:
    home = tmp_path / "home"
    text = json.dumps([NOTE, {**NOTE, "note_id": "6612057b000000001a00ce45"},
                       {**NOTE, "note_id": "6612057b000000001a00ce46"}], indent=1)
    end = {"inside a record": len(text) // 2, "after a comma": text.rindex("{"),
           "without the closing bracket": text.rindex("]")}[cut]
    drop(home, "search_contents.json", text[:end])
    drop(home, "good.json", json.dumps([{**NOTE, "note_id": "6612057b000000001a00ce47"}]))

    summary = process_inbox(load_settings(home=home), settle_s=1)

    inbox = home / "inbox" / "xhs"
    assert summary.done == ["good.json"] and list(summary.failed) == ["search_contents.json"]
    assert not (inbox / "done" / "search_contents.json").exists()
    reason = (inbox / "failed" / "search_contents.json.reason.txt").read_text(encoding="utf-8")
    assert "search_contents.json" in reason and "cut short" in reason and "nothing imported" in reason
    assert "complete record" in reason
    assert query(home, "SELECT post_id FROM posts")["post_id"].tolist() == ["6612057b000000001a00ce47"]
