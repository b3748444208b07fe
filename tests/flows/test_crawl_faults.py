"""The risk-control table, one test per row, over real HTTP against the local server's faults.

| answer | behaviour |
| -352 | refresh WBI keys and buvid cookies, back off, retry up to a limit |
| -412 JSON or HTTP 412 HTML | cool-down remembered in the warehouse, state saved, exit 75 |
| -799, -509, 429, 5xx, timeouts, resets | exponential backoff with jitter, bounded retries |
| -404, 12002 | mark the video (deleted / comments closed) and move on |
| -400 on paging | stop paging that listing |
| truncated or non-JSON body | keep the raw body, retry, then skip with a record |
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from emopulse.flows.cli import app
from emopulse.ingest.localserver import Fault
from emopulse.warehouse import Warehouse

from crawlkit import (
    MAIN, NAV, REPLY, SMALL, SPI, TINY, VIEW, comments_of, crawl, main_state, make_settings,
    requests_to, server, table,
)

__all__ = ["make_settings", "server"]  # fixtures


def api_events(settings) -> list[dict]:
    path = settings.home / "logs" / "crawl.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == "api_error"]


def all_of(server, aid: int) -> set[int]:
    return set(server.dataset.videos[aid].replies)


def test_352_refreshes_keys_and_cookies_backs_off_and_retries_up_to_a_limit(server, make_settings):
    settings = make_settings(crawl_max_retries=2)
    tiny, small = server.dataset.videos[TINY], server.dataset.videos[SMALL]
    server.inject(Fault("code:-352", at=MAIN, times=2))
    result = crawl(settings, bvids=[tiny.bvid])
    assert set(comments_of(settings, tiny.bvid)["rpid"]) == all_of(server, TINY)
    assert len(requests_to(server, NAV)) == 3 and len(requests_to(server, SPI)) == 3
    assert result["errors"] == []
    events = [e for e in api_events(settings) if e["code"] == -352]
    assert [(e["attempt"], e["action"]) for e in events] == [(1, "retry"), (2, "retry")]

    server.inject(Fault("code:-352", at=MAIN, times=3))  # more than the retries allow
    result = crawl(settings, bvids=[small.bvid, tiny.bvid])
    assert "-352" in result["errors"][0] and small.bvid in result["errors"][0]
    state = main_state(settings, small.bvid)
    assert state["status"] == "error" and "-352" in state["message"]
    assert result["up_to_date"] == 1  # and the crawl went on to the next video
    crawl(settings, bvids=[small.bvid])  # the next crawl picks the video up again
    assert set(comments_of(settings, small.bvid)["rpid"]) == all_of(server, SMALL)


@pytest.mark.parametrize("fault", ["code:-412", "http412"])
def test_412_cools_the_source_down_across_runs_and_exits_75(server, make_settings, fault):
    settings = make_settings()
    video = server.dataset.videos[SMALL]
    env = {"EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0",
           "EMOPULSE_CRAWL_COOLDOWN_S": "3600"}
    args = ["crawl", "videos", video.bvid, "--home", str(settings.home), "--api-base", server.url,
            "--quiet", "--no-images"]
    crawl(settings, bvids=[server.dataset.videos[TINY].bvid])  # an earlier crawl, all fine
    first_page = len(server.requests) + 3  # spi, view, nav, then the listing
    server.inject(Fault(fault, at=first_page + 3))  # after the first page and its thread

    blocked = CliRunner().invoke(app, args, env=env)
    assert blocked.exit_code == 75, blocked.output
    message = " ".join(blocked.output.split())
    assert "blocked requests" in message and "Asia/Shanghai" in message and video.bvid in message
    assert "run the same command" in message
    state = main_state(settings, video.bvid)
    assert state["status"] == "blocked" and state["cursor"]  # what it had is saved
    assert len(comments_of(settings, video.bvid)) > 20
    cooldown = table(settings, "SELECT source, code, endpoint, bvid FROM crawl_cooldowns")
    assert cooldown.to_dict("records") == [
        {"source": server.url, "code": -412, "endpoint": MAIN, "bvid": video.bvid}]
    if fault == "http412":
        raw = table(settings, "SELECT body FROM raw_pages WHERE http_status = 412")
        assert "安全风控" in raw["body"].iloc[0]  # the HTML page is kept

    before = len(server.requests)
    refused = CliRunner().invoke(app, args, env=env)
    assert refused.exit_code == 75 and "Nothing was requested" in " ".join(refused.output.split())
    assert len(server.requests) == before  # not a single request during the cool-down
    status = CliRunner().invoke(app, ["crawl", "status", "--home", str(settings.home)], env=env)
    assert status.exit_code == 0 and "cooling down until" in " ".join(status.output.split())

    with Warehouse.open(settings.database, command="test: the cool-down is over") as wh:
        wh.con.execute("UPDATE crawl_cooldowns SET until = now() - INTERVAL 1 SECOND")
    resumed = CliRunner().invoke(app, args, env=env)
    assert resumed.exit_code == 0, resumed.output
    assert set(comments_of(settings, video.bvid)["rpid"]) == all_of(server, SMALL)
    assert len(requests_to(server, MAIN, before)) < 7  # resumed from the saved cursor


@pytest.mark.parametrize("kind", ["code:-799", "code:-509", "http429", "http500", "stall", "reset"])
def test_rate_limits_and_transport_faults_back_off_and_retry(server, make_settings, kind):
    # the stall lasts 2 s; 1 s leaves a loaded machine time to answer the requests that are not stalled
    settings = make_settings(crawl_max_retries=2, crawl_timeout_s=1.0)
    video = server.dataset.videos[TINY]
    server.inject(Fault(kind, at=MAIN, times=2))
    result = crawl(settings, bvids=[video.bvid])
    assert result["errors"] == []
    assert set(comments_of(settings, video.bvid)["rpid"]) == all_of(server, TINY)
    events = api_events(settings)
    assert [(e["attempt"], e["action"], e["endpoint"]) for e in events] == [
        (1, "retry", MAIN), (2, "retry", MAIN)]
    assert all(e["video"] == video.bvid for e in events)


def test_retries_are_bounded(server, make_settings):
    settings = make_settings(crawl_max_retries=2)
    tiny, small = server.dataset.videos[TINY], server.dataset.videos[SMALL]
    server.inject(Fault("http500", at=MAIN, times=3))
    result = crawl(settings, bvids=[tiny.bvid, small.bvid])
    assert len(result["errors"]) == 1 and "HTTP 500" in result["errors"][0]
    assert main_state(settings, tiny.bvid)["status"] == "error"
    assert [e["action"] for e in api_events(settings)] == ["retry", "retry", "give up"]
    assert set(comments_of(settings, small.bvid)["rpid"]) == all_of(server, SMALL)  # moved on


@pytest.mark.parametrize(("kind", "where", "status"), [
    ("code:-404", VIEW, "deleted"), ("code:-404", MAIN, "deleted"),
    ("code:12002", MAIN, "comments_closed"),
])
def test_deleted_or_closed_videos_are_marked_and_skipped(server, make_settings, kind, where,
                                                         status):
    settings = make_settings()
    gone, tiny = server.dataset.videos[SMALL], server.dataset.videos[TINY]
    server.inject(Fault(kind, at=where))
    result = crawl(settings, bvids=[gone.bvid, tiny.bvid])
    assert result["skipped"][gone.bvid].startswith(status) and result["errors"] == []
    videos = table(settings, "SELECT bvid, status FROM videos")
    assert dict(zip(videos["bvid"], videos["status"]))[gone.bvid] == status
    assert main_state(settings, gone.bvid)["status"] == status
    assert set(comments_of(settings, tiny.bvid)["rpid"]) == all_of(server, TINY)


def test_400_on_paging_stops_that_listing(server, make_settings):
    settings = make_settings()
    video = server.dataset.videos[TINY]
    # spi, view, nav, the first page, the pinned root's thread, then the second page: -400
    server.inject(Fault("code:-400", at=len(server.requests) + 5))
    result = crawl(settings, bvids=[video.bvid])
    state = main_state(settings, video.bvid)
    assert (state["status"], state["is_end"]) == ("stopped", False)
    assert "paging refused" in state["message"] and "paging stopped" in result["errors"][0]
    first_page = {video.pinned.rpid, *(c.rpid for c in video.pinned.children)}
    first_page |= {r.rpid for root in video.roots[:20] for r in [root, *root.children[:3]]}
    assert set(comments_of(settings, video.bvid)["rpid"]) == first_page
    crawl(settings, bvids=[video.bvid])  # a later crawl goes on
    assert set(comments_of(settings, video.bvid)["rpid"]) == all_of(server, TINY)


def test_400_on_a_thread_stops_that_thread_only(server, make_settings):
    settings = make_settings()
    video = server.dataset.videos[SMALL]
    server.inject(Fault("code:-400", at=REPLY))
    result = crawl(settings, bvids=[video.bvid])
    threads = table(settings, "SELECT listing, status, is_end FROM crawl_state "
                              "WHERE listing LIKE 'reply:%' AND status = 'stopped'")
    assert len(threads) == 1 and threads["is_end"].all()
    assert main_state(settings, video.bvid)["status"] == "done" and result["errors"] == []


@pytest.mark.parametrize("kind", ["truncated", "html"])
def test_unreadable_bodies_are_kept_retried_then_skipped_with_a_record(server, make_settings,
                                                                       kind):
    settings = make_settings(crawl_max_retries=2)
    video = server.dataset.videos[SMALL]
    server.inject(Fault(kind, at=MAIN, times=1))
    assert crawl(settings, bvids=[video.bvid])["errors"] == []  # a retry read it
    kept = table(settings, "SELECT body, parse_error FROM raw_pages WHERE payload IS NULL")
    assert len(kept) == 1 and "not JSON" in kept["parse_error"].iloc[0] and kept["body"].iloc[0]

    settings = make_settings("home2", crawl_max_retries=2)
    server.inject(Fault(kind, at=REPLY, times=3))  # the pinned thread's first page, 3 times
    result = crawl(settings, bvids=[video.bvid])
    assert any("not read" in e for e in result["errors"])
    kept = table(settings, "SELECT body FROM raw_pages WHERE payload IS NULL")
    assert len(kept) == 3  # every unreadable answer, for diagnosis
    state = main_state(settings, video.bvid)
    assert state["status"] == "error" and "unreadable" in state["message"]
    crawl(settings, bvids=[video.bvid])  # skipped this time, read by the next crawl
    assert set(comments_of(settings, video.bvid)["rpid"]) == all_of(server, SMALL)


def text_columns_holding(con, relation: str, needle: str) -> list[str]:
    """The columns of `relation` where some value, as text, holds `needle`: every column is
    read as VARCHAR (JSON, lists and structs as their text), BLOBs as bytes."""
    columns = [(name, kind) for name, kind, *_ in
               con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    tests = []
    for name, kind in columns:
        column = '"' + name.replace('"', '""') + '"'
        text = f"hex({column})" if kind == "BLOB" else f"CAST({column} AS VARCHAR)"
        needle_sql = "hex($needle::BLOB)" if kind == "BLOB" else "$needle"
        tests.append(f"coalesce(bool_or(contains({text}, {needle_sql})), false)")
    hits = con.execute(f"SELECT {', '.join(tests)} FROM {relation}",
                       {"needle": needle}).fetchone()
    return [name for (name, _), hit in zip(columns, hits) if hit]


def stored_places_holding(home: Path, needle: str) -> tuple[list[str], list[Path]]:
    """Where `needle` is stored under `home`: table columns of every DuckDB file (opened read-only),
    columns of every Parquet file (read through DuckDB, not as compressed bytes), and every
    other file as bytes (the logs). The places where it was found, and the files searched."""
    found, searched = [], []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        searched.append(path)
        if path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as con:
                tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                     "WHERE database_name = current_database()").fetchall()
                for schema, name in tables:
                    relation = f'"{schema}"."{name}"'
                    found += [f"{path.name}:{name}.{c}"
                              for c in text_columns_holding(con, relation, needle)]
        elif path.suffix == ".parquet":
            with duckdb.connect() as con:
                relation = "read_parquet('{}')".format(str(path).replace("'", "''"))
                found += [f"{path.relative_to(home)}:{c}"
                          for c in text_columns_holding(con, relation, needle)]
        elif needle.encode() in path.read_bytes():
            found.append(str(path.relative_to(home)))
    return found, searched


def test_no_cookie_or_session_reaches_logs_raw_pages_or_snapshots(server, make_settings,
                                                                  monkeypatch, capfd, caplog,
                                                                  tmp_path):
    secret = "SESSDATA-very-secret-0123456789"
    monkeypatch.setenv("EMOPULSE_BILIBILI_SESSDATA", secret)
    settings = make_settings()
    server.inject(Fault("code:-799", at=MAIN), Fault("truncated", at=REPLY))
    with caplog.at_level("DEBUG"):
        crawl(settings, bvids=[server.dataset.videos[TINY].bvid])
    out, err = capfd.readouterr()
    assert requests_to(server, MAIN)[0].cookies["SESSDATA"] == secret  # it was used
    assert api_events(settings)  # and the -799 was logged
    for needle in (secret, "SESSDATA=", "buvid3="):  # the cookie, or any Cookie header
        found, searched = stored_places_holding(settings.home, needle)
        assert found == [], needle
        assert needle not in out + err + caplog.text, needle
    names = {p.name for p in searched}
    assert {"warehouse.duckdb", "crawl.jsonl"} <= names  # the tables and the log were read
    assert any(p.suffix == ".parquet" and "raw_pages" in p.parts for p in searched)
    assert not any("SESSDATA" in e["message"] for e in api_events(settings))
    assert os.environ["EMOPULSE_BILIBILI_SESSDATA"] == secret

    # the search finds the secret wherever it would be stored: a scratch copy holding it
    leaked = tmp_path / "leaked"
    shutil.copytree(settings.home, leaked)
    for path in [leaked, *leaked.rglob("*")]:  # published files are read-only: a scratch copy isn't
        path.chmod(path.stat().st_mode | 0o200)
    with duckdb.connect(str(leaked / "warehouse.duckdb")) as con:
        con.execute("UPDATE raw_pages SET params = json_object('cookie', ?) WHERE page_id = "
                    "(SELECT max(page_id) FROM raw_pages)", [secret])
        con.execute("UPDATE comments SET message = message || ? WHERE rpid = "
                    "(SELECT min(rpid) FROM comments)", [secret])
        con.execute("CHECKPOINT")
    snapshot = next(p for p in leaked.rglob("*.parquet")
                    if p.name == "videos.parquet" or p.parent.name == "videos")
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * REPLACE (title || '{secret}' AS title) "
                    f"FROM read_parquet('{snapshot}')) TO '{snapshot}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
    with (leaked / "logs" / "crawl.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps({"event": "api_error", "message": f"Cookie: SESSDATA={secret}"}))
    found, _ = stored_places_holding(leaked, secret)
    assert sorted(found) == sorted([
        "warehouse.duckdb:raw_pages.params", "warehouse.duckdb:comments.message",
        f"{snapshot.relative_to(leaked)}:title",
        "logs/crawl.jsonl",
    ])
