"""The inbox: MediaCrawler files dropped into $EMOPULSE_HOME/inbox/xhs/ land, or fail with a reason."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from emopulse.flows.posts import process_inbox
from emopulse.flows.settings import load_settings
from emopulse.warehouse import query

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
