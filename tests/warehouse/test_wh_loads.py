"""Bulk, idempotent loads and the page + checkpoint transaction."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from emopulse.ingest.records import Emote, RawPage, Video, VideoPage
from emopulse.warehouse import (
    Warehouse,
    crawl_state,
    land_raw_page,
    load_comment_page,
    load_video_page,
    mark_video,
    upsert_comments,
    upsert_emotes,
    upsert_videos,
)
from emopulse.warehouse import load as load_module
from wh_builders import count, make_comment, make_page

LOADED = ("raw_pages", "comments", "comment_emotes", "emotes", "crawl_state", "videos")


def test_loading_a_page_twice_adds_no_rows(wh: Warehouse) -> None:
    page = make_page([make_comment(i, f"hi [doge] {i}", mid=str(i)) for i in range(1, 51)])
    first = load_comment_page(wh, page)
    counts = {t: count(wh, t) for t in LOADED}
    second = load_comment_page(wh, page)
    assert first.page_id == second.page_id
    assert {t: count(wh, t) for t in LOADED} == counts
    assert counts == {
        "raw_pages": 1,
        "comments": 50,
        "comment_emotes": 50,
        "emotes": 1,
        "crawl_state": 1,
        "videos": 1,
    }


def test_page_lands_raw_rows_and_checkpoint_together(wh: Warehouse) -> None:
    comments = [make_comment(1, "a[doge]", ctime=100), make_comment(2, "b[笑哭][doge]", ctime=300)]
    load_comment_page(wh, make_page(comments, cursor='{"offset":"x"}'))
    state = crawl_state(wh, "BV1test", "main")
    assert state["cursor"] == '{"offset":"x"}' and state["is_end"] is False
    assert (state["pages"], state["comments"], state["newest_ctime"]) == (1, 2, 300)
    load_comment_page(
        wh, make_page([make_comment(3, "c", ctime=200)], cursor=None, is_end=True, n=1)
    )
    state = crawl_state(wh, "BV1test", "main")
    assert (state["cursor"], state["is_end"], state["status"]) == (None, True, "done")
    assert (state["pages"], state["comments"], state["newest_ctime"]) == (2, 3, 300)
    assert crawl_state(wh, "BV1test", "reply:1") is None
    raw = wh.con.execute("SELECT params::VARCHAR, payload::VARCHAR, body FROM raw_pages").fetchall()
    assert raw[0][1] is not None and raw[0][2] is None  # JSON lands as payload, no copy as body


def test_failure_mid_page_leaves_neither_rows_nor_checkpoint(wh: Warehouse, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(load_module, "_checkpoint", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        load_comment_page(wh, make_page([make_comment(1, "a[doge]")]))
    assert {t: count(wh, t) for t in LOADED} == dict.fromkeys(LOADED, 0)
    assert not wh.in_transaction


def test_unparsable_page_keeps_raw_body_and_does_not_move_cursor(wh: Warehouse) -> None:
    load_comment_page(wh, make_page([make_comment(1, "a")], cursor="c1"))
    html = "<html>412 Precondition Failed</html>"
    result = load_comment_page(
        wh, make_page([], cursor=None, error="HTTP 412: not JSON", body=html)
    )
    assert result.error == "HTTP 412: not JSON"
    rows = wh.con.execute(
        "SELECT payload, body, parse_error FROM raw_pages WHERE parse_error IS NOT NULL"
    ).fetchall()
    assert rows == [(None, html, "HTTP 412: not JSON")]
    state = crawl_state(wh, "BV1test", "main")
    assert (state["cursor"], state["pages"], state["status"]) == ("c1", 1, "error")
    assert state["message"] == "HTTP 412: not JSON"
    assert count(wh, "comments") == 1


def test_reloaded_comment_replaces_its_emote_set(wh: Warehouse) -> None:
    upsert_comments(wh, [make_comment(1, "x[doge][笑哭]")])
    upsert_comments(wh, [make_comment(1, "x[doge]")])
    assert wh.con.execute("SELECT emoji_alt FROM comment_emotes").fetchall() == [("[doge]",)]


def test_thin_records_never_wipe_richer_ones(wh: Warehouse) -> None:
    upsert_emotes(
        wh,
        [Emote("[doge]", "doge", 1, 2, "小黄脸", "https://x/doge.png")],
        image_paths={"[doge]": "/img/doge.png"},
    )
    upsert_comments(wh, [make_comment(1, "a[doge]")])  # puts a bare catalog entry for [doge]
    row = wh.con.execute("SELECT package_name, url, image_path FROM emotes").fetchall()
    assert row == [("小黄脸", "https://x/doge.png", "/img/doge.png")]
    upsert_videos(wh, [Video("BV1", aid=1, title="t", source="popular")])
    upsert_videos(wh, [Video("BV1", aid=1, view_count=9, source="search:x")])
    row = wh.con.execute("SELECT title, view_count, source, status FROM videos").fetchall()
    assert row == [("t", 9, "popular", "ok")]


def test_video_page_and_mark_video(wh: Warehouse) -> None:
    raw = RawPage("/x/web-interface/popular", {"pn": 1}, datetime.now(UTC), 200, 0, "{}")
    load_video_page(wh, VideoPage(raw, [Video("BV1", aid=1), Video("BV2", aid=2)]))
    mark_video(wh, "BV2", "comments_closed")
    mark_video(wh, "BV3", "deleted")
    statuses = dict(wh.con.execute("SELECT bvid, status FROM videos").fetchall())
    assert statuses == {"BV1": "ok", "BV2": "comments_closed", "BV3": "deleted"}
    with pytest.raises(ValueError, match="video status"):
        mark_video(wh, "BV1", "gone")
    assert land_raw_page(wh, raw) == land_raw_page(wh, raw)
    assert count(wh, "raw_pages") == 1


def test_many_comments_load_in_one_bulk_upsert(wh: Warehouse) -> None:
    # speed is bench/ingest.py's business (a timed test only measures the machine's load)
    comments = [make_comment(i, f"第{i}条[doge][笑哭]", mid=str(i % 997)) for i in range(1, 20_001)]
    upsert_comments(wh, comments)
    assert count(wh, "comments") == 20_000 and count(wh, "comment_emotes") == 40_000
