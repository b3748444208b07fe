"""The warehouse side of long crawls: migration 2, pass checkpoints, the bulk page loader,
listing statuses, cool-downs and emote image records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from emopulse.ingest.records import Emote
from emopulse.warehouse import (
    TABLES,
    Warehouse,
    active_cooldown,
    crawl_state,
    emotes_needing_images,
    known_rpids,
    load_comment_page,
    load_comment_pages,
    migrate,
    record_emote_image,
    set_listing_status,
    start_cooldown,
    unknown_packages,
    upsert_comments,
    upsert_emotes,
)
from emopulse.warehouse.migrations import MIGRATIONS
from emopulse.warehouse.schema import ADDED_COLUMNS, CRAWL_TABLES, HARDENING_COLUMNS
from wh_builders import count, make_comment, make_page


def columns(con, name: str) -> list[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                       "ORDER BY ordinal_position", [name]).fetchall()
    return [c for (c,) in rows]


def test_migrations_2_and_4_bring_a_database_of_issue_2_to_the_same_schema(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    migrate(con)
    for name, added in HARDENING_COLUMNS.items():  # as a database made before issue 8 was
        for column in added:
            con.execute(f'ALTER TABLE {name} DROP COLUMN "{column}"')
    for name, added in ADDED_COLUMNS.items():  # ...and before issue 3
        for column in added:
            con.execute(f'ALTER TABLE {name} DROP COLUMN "{column}"')
    for spec in CRAWL_TABLES:
        con.execute(f"DROP TABLE {spec.name}")
    con.execute("DELETE FROM schema_version WHERE version IN (2, 4)")
    con.execute("INSERT INTO crawl_state (bvid, listing, cursor, is_end) VALUES ('BV1', 'main', "
                "'c', false)")
    assert migrate(con) == [2, 4] and migrate(con) == []
    for name in (*ADDED_COLUMNS, *(s.name for s in CRAWL_TABLES)):
        assert columns(con, name) == list(TABLES[name].columns), name
    assert con.execute("SELECT cursor, total, full_pass_at FROM crawl_state").fetchall() == [
        ("c", None, None)]
    assert {2, 4} <= {m.version for m in MIGRATIONS}


def test_a_pass_records_its_start_total_head_and_floor(wh: Warehouse) -> None:
    first = make_page([make_comment(30, "c", ctime=300), make_comment(20, "b", ctime=200)],
                      cursor="p2")
    load_comment_page(wh, replace(first, total=9))
    state = crawl_state(wh, "BV1test", "main")
    assert (state["total"], state["status"], state["head_rpid"]) == (9, "running", None)
    started = state["started_at"]
    last = make_page([make_comment(10, "a", ctime=100)], cursor=None, is_end=True, n=1)
    load_comment_page(wh, replace(last, start="p2", total=10, end="since"), since=50)
    state = crawl_state(wh, "BV1test", "main")
    assert (state["total"], state["status"], state["is_end"]) == (9, "done", True)
    assert (state["head_ctime"], state["head_rpid"], state["floor_ctime"]) == (300, 30, 50)
    assert state["started_at"] == started and state["finished_at"] >= started
    ended = replace(last, start="p9", end="end")
    load_comment_page(wh, ended)
    assert crawl_state(wh, "BV1test", "main")["floor_ctime"] is None  # read to the very end


def test_pinned_and_thread_comments_never_become_the_head(wh: Warehouse) -> None:
    pinned = make_comment(99, "置顶", ctime=999, source="api:top")
    reply = replace(make_comment(98, "楼中楼", ctime=998), root=5)
    page = make_page([pinned, reply, make_comment(5, "root", ctime=500)], cursor=None,
                     is_end=True)
    load_comment_page(wh, replace(page, end="end"))
    assert crawl_state(wh, "BV1test", "main")["head_rpid"] == 5


def test_the_bulk_loader_gives_the_tables_of_page_by_page_loads(home) -> None:
    pages = [make_page([make_comment(i * 10 + j, f"第{i}页[doge]", mid=str(j), ctime=i * 10 + j)
                        for j in range(5)], cursor=f"c{i}", n=i) for i in range(1, 4)]
    pages.append(make_page([make_comment(11, "改过的[笑哭]", mid="1", ctime=11)], cursor=None,
                           is_end=True, n=9))  # a comment met again, edited
    results = {}
    for mode in ("live", "bulk"):
        with Warehouse.open(home / f"{mode}.duckdb", command=mode) as wh:
            if mode == "live":
                for page in pages:
                    load_comment_page(wh, page)
            else:
                load_comment_pages(wh, pages)
            results[mode] = {t: wh.con.execute(sql).fetchall() for t, sql in {
                "comments": "SELECT * EXCLUDE (crawled_at) FROM comments ORDER BY rpid",
                "comment_emotes": "SELECT * FROM comment_emotes ORDER BY rpid, emoji_alt",
                "raw_pages": "SELECT page_id, payload FROM raw_pages ORDER BY page_id",
                "crawl_state": "SELECT bvid, listing, cursor, is_end, pages, comments, "
                               "newest_ctime, status FROM crawl_state",
            }.items()}
    assert results["live"] == results["bulk"]
    assert results["bulk"]["crawl_state"] == [("BV1test", "main", None, True, 4, 16, 34, "done")]


def test_listing_status_keeps_the_cursor_and_refuses_unknown_statuses(wh: Warehouse) -> None:
    load_comment_page(wh, make_page([make_comment(1, "a")], cursor="c1"))
    set_listing_status(wh, "BV1test", "main", "blocked", "-412")
    state = crawl_state(wh, "BV1test", "main")
    assert (state["cursor"], state["status"], state["message"]) == ("c1", "blocked", "-412")
    set_listing_status(wh, "BV1test", "reply:1", "stopped", "-400", is_end=True)
    assert crawl_state(wh, "BV1test", "reply:1")["is_end"] is True
    with pytest.raises(ValueError, match="crawl status"):
        set_listing_status(wh, "BV1test", "main", "sleepy")
    assert known_rpids(wh, [1, 2]) == {1} and known_rpids(wh, []) == set()


def test_a_cooldown_lasts_until_its_time(wh: Warehouse) -> None:
    now = datetime.now(UTC)
    assert active_cooldown(wh, "https://api") is None
    start_cooldown(wh, "https://api", until=now + timedelta(minutes=30), code=-412,
                   endpoint="/x/v2/reply/wbi/main", bvid="BV1", message="blocked")
    row = active_cooldown(wh, "https://api", now=now)
    assert (row["code"], row["bvid"]) == (-412, "BV1")
    assert active_cooldown(wh, "https://api", now=now + timedelta(minutes=31)) is None
    assert active_cooldown(wh, "http://127.0.0.1:1", now=now) is None  # per source


def test_emote_images_and_packages_still_to_fetch(wh: Warehouse) -> None:
    upsert_emotes(wh, [Emote("[doge]", "doge", 1001, 1, "小黄脸", "http://x/1001.png"),
                       Emote("[哇]", "哇", 2001, 2, None, "http://x/2001.png"),
                       Emote("[无图]", "无图", 3001, 1, "小黄脸", None)])
    upsert_comments(wh, [make_comment(1, "a[新]")])  # a bare emote of package 1, met in text
    assert unknown_packages(wh) == [1, 2]
    assert [e["emote_id"] for e in emotes_needing_images(wh, max_attempts=2)] == [1001, 2001]
    record_emote_image(wh, 1001, path="images/emotes/1001.png")
    record_emote_image(wh, 2001, error="HTTP 404")
    assert [e["emote_id"] for e in emotes_needing_images(wh, max_attempts=2)] == [2001]
    record_emote_image(wh, 2001, error="HTTP 404")
    assert emotes_needing_images(wh, max_attempts=2) == []
    assert count(wh, "emotes") == 4
    with pytest.raises(ValueError, match="either"):
        record_emote_image(wh, 1, path="p", error="e")


def test_migration_4_counts_the_last_complete_pass_as_the_last_full_one(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "v3.duckdb"))
    migrate(con)
    for column in HARDENING_COLUMNS["crawl_state"]:  # as a database of issue 3 was
        con.execute(f'ALTER TABLE crawl_state DROP COLUMN "{column}"')
    con.execute("DELETE FROM schema_version WHERE version = 4")
    con.execute("INSERT INTO crawl_state (bvid, listing, is_end, finished_at) VALUES "
                "('BV1', 'main', true, TIMESTAMPTZ '2026-11-20 10:00:00+00'), "
                "('BV2', 'main', false, NULL), "
                "('BV1', 'reply:5', true, TIMESTAMPTZ '2026-11-20 10:00:00+00')")
    assert migrate(con) == [4]
    rows = con.execute("SELECT bvid, listing, full_pass_at IS NOT NULL FROM crawl_state "
                       "ORDER BY bvid, listing").fetchall()
    assert rows == [("BV1", "main", True), ("BV1", "reply:5", False), ("BV2", "main", False)]
