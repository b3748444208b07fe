"""Incremental publishing: parts for the tables that grow, read-only files, catching up."""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from emopulse.ingest.records import RawPage
from emopulse.warehouse import (
    Warehouse,
    catalog_path,
    current_version_dir,
    land_raw_pages,
    mark_video,
    publish_snapshots,
    upsert_comments,
)
from emopulse.warehouse.schema import TABLES
from emopulse.warehouse.snapshots import (
    FANOUT,
    INCREMENTAL,
    PublishEvery,
    writer_finished,
    writer_started,
)
from wh_builders import make_comment

COMPARED = {
    "comments": "SELECT * FROM comments ORDER BY rpid",
    "comment_emotes": "SELECT * FROM comment_emotes ORDER BY rpid, emoji_alt",
    "raw_pages": "SELECT * FROM raw_pages ORDER BY page_id",
    "emoji_comments": "SELECT * FROM emoji_comments ORDER BY ALL",
    "videos": "SELECT * FROM videos ORDER BY bvid",
}
EMOTES = ["[doge]", "[笑哭]", "[妙啊]", "[吃瓜]"]


def published(home: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(catalog_path(home)), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def raw(n: int, error: str | None = None) -> tuple[RawPage, str | None]:
    page = RawPage("/x/v2/reply/wbi/main", {"oid": 42, "n": n},
                   datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n), 200, 0,
                   json.dumps({"code": 0, "data": {"n": n}}))
    return page, error


def comment(rpid: int, rng: random.Random, **changes: object):
    emotes = "".join(rng.sample(EMOTES, rng.randrange(0, 3)))
    base = make_comment(rpid, f"c{rpid} {emotes}", mid=str(rng.randrange(5)),
                        ctime=1_700_000_000 + rng.randrange(100))
    return replace(base, likes=rng.randrange(1000), **changes)


def assert_catalog_is_the_warehouse(wh: Warehouse, home: Path) -> None:
    con = duckdb.connect(str(catalog_path(home)), read_only=True)
    try:
        for name, sql in COMPARED.items():
            want = wh.con.execute(sql).df()
            pd.testing.assert_frame_equal(con.execute(sql).df(), want, check_dtype=False, obj=name)
    finally:
        con.close()


def test_a_publish_writes_the_rows_written_since_and_replaces_reloaded_ones(
    wh: Warehouse, home: Path
) -> None:
    rng = random.Random(1)
    upsert_comments(wh, [comment(i, rng) for i in range(1, 101)])
    land_raw_pages(wh, [raw(i) for i in range(50)])
    first = publish_snapshots(wh, home)
    reloaded = replace(make_comment(7, "c7 [妙啊]"), likes=99_999)  # its emotes change too
    upsert_comments(wh, [reloaded, comment(101, rng), comment(102, rng)])
    land_raw_pages(wh, [raw(50), raw(51)])
    second = publish_snapshots(wh, home)
    seq = int(second.name)
    m = manifest(second)
    assert m["appended"]["comments"] == 3 and m["appended"]["raw_pages"] == 2
    emote_rows = wh.con.execute(
        "SELECT count(*) FROM comment_emotes WHERE rpid IN (7, 101, 102)").fetchall()[0][0]
    assert m["appended"]["comment_emotes"] == emote_rows  # the emote rows of those 3 comments
    newest = m["tables"]["comments"]["parts"][-1]
    assert (newest["seq"], newest["rows"], newest["keys"]) == (seq, 3, 3)
    # the base parts are the first version's, linked, not written again
    for name in INCREMENTAL:
        old = first / f"{name}/part-{int(first.name):06d}.parquet"
        assert (second / old.relative_to(first)).stat().st_ino == old.stat().st_ino
    got = published(home, "SELECT rpid, likes FROM comments WHERE rpid = 7")
    assert got.values.tolist() == [[7, 99_999]]  # once, with the reloaded value
    emotes = published(home, "SELECT emoji_alt FROM comment_emotes WHERE rpid = 7")
    assert emotes["emoji_alt"].tolist() == ["[妙啊]"]  # the old emote set is gone
    assert_catalog_is_the_warehouse(wh, home)


def test_every_version_is_the_warehouse_as_it_was_through_compactions(
    wh: Warehouse, home: Path
) -> None:
    """Random writes (new comments, reloads with other likes and emotes, raw pages, videos),
    a publish after each batch: the catalog always equals the warehouse, parts stay few."""
    rng = random.Random(8)
    upsert_comments(wh, [comment(i, rng) for i in range(1, 201)])
    land_raw_pages(wh, [raw(i) for i in range(100)])
    publish_snapshots(wh, home)
    next_rpid, next_page, actions = 201, 100, []
    for round_ in range(20):
        batch = [comment(next_rpid + i, rng) for i in range(rng.randrange(0, 8))]
        next_rpid += len(batch)
        batch += [comment(rng.randrange(1, next_rpid), rng) for _ in range(rng.randrange(0, 5))]
        if batch:
            upsert_comments(wh, batch)
        pages = rng.randrange(0, 6)
        land_raw_pages(wh, [raw(next_page + i) for i in range(pages)] or [raw(0)])
        next_page += pages
        if round_ % 7 == 0:
            mark_video(wh, f"BV{round_}", "deleted")
        folder = publish_snapshots(wh, home)
        m = manifest(folder)
        actions += [(action, name) for action in ("exported", "appended", "compacted")
                    for name in m[action] if name in INCREMENTAL]
        for name in INCREMENTAL:
            assert len(m["tables"][name]["parts"]) <= 3 * FANOUT
            assert m["tables"][name]["rows"] == wh.con.execute(
                f"SELECT count(*) FROM {name}").fetchall()[0][0]
        assert_catalog_is_the_warehouse(wh, home)
    kinds = {action for action, _ in actions}
    assert {"appended", "compacted", "exported"} <= kinds, actions


def test_rows_written_behind_the_change_column_are_caught(
    wh: Warehouse, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(3)
    upsert_comments(wh, [comment(i, rng) for i in range(1, 101)])
    publish_snapshots(wh, home)
    old = datetime(2000, 1, 1, tzinfo=UTC)  # a clock that went back, or a direct write
    behind_its_back = [
        ("INSERT INTO comments (rpid, bvid, message, crawled_at) "
         "VALUES (5000, 'BV1test', 'late', ?)", [old]),
        ("DELETE FROM comments WHERE rpid = ?", [1]),
        ("DELETE FROM comments WHERE rpid = ?", [2]),  # and nothing new beside it
    ]
    for n, (sql, params) in enumerate(behind_its_back):
        wh.con.execute(sql, params)
        if n < 2:
            upsert_comments(wh, [comment(200 + n, rng)])
        wh.mark_changed("comments")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="emopulse.warehouse.snapshots"):
            folder = publish_snapshots(wh, home)
        assert "publishing it whole" in caplog.text
        assert "comments" in manifest(folder)["exported"]
        assert_catalog_is_the_warehouse(wh, home)


def test_raw_pages_are_append_only(wh: Warehouse, home: Path) -> None:
    spec = TABLES["raw_pages"]
    assert set(spec.keep) == set(spec.columns) - set(spec.primary_key)
    land_raw_pages(wh, [raw(1, "first")])
    publish_snapshots(wh, home)
    land_raw_pages(wh, [raw(1, "second"), raw(2)])  # the same answer again, and a new one
    rows = wh.con.execute("SELECT parse_error FROM raw_pages ORDER BY page_id").fetchall()
    assert sorted(rows, key=str) == sorted([("first",), (None,)], key=str)
    publish_snapshots(wh, home)
    assert_catalog_is_the_warehouse(wh, home)


def test_published_files_are_read_only_and_pruning_still_works(wh: Warehouse, home: Path) -> None:
    upsert_comments(wh, [make_comment(i, "a[doge]") for i in range(1, 30)])
    for i in range(6):
        upsert_comments(wh, [make_comment(100 + i, "b[doge]")])
        publish_snapshots(wh, home)
    root = home / "snapshots"
    versions = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(versions) == 4  # the old ones were removed, read-only as they were
    for folder in versions:
        for parent, dirs, files in os.walk(folder):
            assert os.stat(parent).st_mode & 0o777 == 0o555, parent
            for file in files:
                assert os.stat(os.path.join(parent, file)).st_mode & 0o777 == 0o444, file
    for path in (root / "CURRENT", catalog_path(home)):
        assert path.stat().st_mode & 0o777 == 0o444
    assert root.stat().st_mode & 0o777 == 0o555  # nothing can be added beside the versions
    assert {p.name for p in root.iterdir()} == {"CURRENT", *(v.name for v in versions)}
    if os.geteuid() != 0:  # root ignores file modes
        with pytest.raises(PermissionError):
            (current_version_dir(home) / "videos.parquet").write_bytes(b"forged")
        with pytest.raises(PermissionError):
            (current_version_dir(home) / "new.parquet").write_bytes(b"forged")
        with pytest.raises(PermissionError):
            (root / "CURRENT.forged").write_text("000001")


def test_another_database_or_a_migration_is_published_whole(wh: Warehouse, home: Path) -> None:
    upsert_comments(wh, [make_comment(i, "a[doge]") for i in range(1, 30)])
    publish_snapshots(wh, home)
    wh.con.execute("INSERT INTO schema_version VALUES (999, 'test', now())")
    upsert_comments(wh, [make_comment(100, "b[doge]")])
    m = manifest(publish_snapshots(wh, home))
    assert set(m["exported"]) == set(TABLES) and not m["linked"]
    assert_catalog_is_the_warehouse(wh, home)


def test_publish_every_pages_or_seconds_whichever_first(wh: Warehouse, home: Path) -> None:
    now = [0.0]
    every = PublishEvery(home, pages=3, seconds=60, clock=lambda: now[0])
    versions = []
    for i in range(7):
        upsert_comments(wh, [make_comment(i + 1, "a[doge]")])
        versions.append(every(wh))
    assert [v is not None for v in versions] == [False, False, True, False, False, True, False]
    now[0] = 61.0  # a minute on: the next page publishes
    upsert_comments(wh, [make_comment(50, "a[doge]")])
    assert every(wh) is not None
    assert published(home, "SELECT count(*) AS n FROM comments")["n"].iloc[0] == 8
    now[0] = 200.0
    assert every(wh) is None  # nothing changed: nothing to publish


def test_a_writer_after_one_that_died_publishes_everything(wh: Warehouse, home: Path) -> None:
    writer_started(wh, home)
    upsert_comments(wh, [make_comment(i, "a[doge]") for i in range(1, 30)])
    publish_snapshots(wh, home)
    mark_video(wh, "BV1test", "deleted")  # committed, then the writer is killed: not published
    wh.changed.clear()
    writer_started(wh, home)  # the next writer finds the marker
    assert wh.changed >= set(TABLES)
    publish_snapshots(wh, home)
    writer_finished(home)
    assert published(home, "SELECT status FROM videos")["status"].tolist() == ["deleted"]
    writer_started(wh, home)
    assert wh.changed == set()  # the last one finished cleanly

