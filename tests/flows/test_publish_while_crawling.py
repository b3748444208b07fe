"""Readers see a long crawl: it publishes snapshots as it goes (EMOPULSE_PUBLISH_EVERY_PAGES,
EMOPULSE_PUBLISH_EVERY_S), and after `kill -9` they keep what was published up to then."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from emopulse.warehouse import Warehouse, query
from emopulse.warehouse.exceptions import SnapshotMissing

from crawlkit import MAIN, REPLY, SMALL, crawl, make_settings, server

__all__ = ["make_settings", "server"]  # fixtures

EMOPULSE = str(Path(sys.executable).with_name("emopulse"))
SEEN = ("SELECT (SELECT version FROM snapshot_info) AS version, "
        "(SELECT count(*) FROM comments) AS comments, "
        "(SELECT count(*) FROM raw_pages WHERE endpoint = '/x/v2/reply/wbi/main') AS main_pages, "
        "(SELECT coalesce(sum(pages), 0) FROM crawl_state WHERE listing = 'main') "
        "AS main_checkpoints")


def snapshot(home: Path) -> dict | None:
    try:
        return query(home, SEEN).iloc[0].to_dict()
    except SnapshotMissing:
        return None


def test_readers_see_new_snapshots_while_the_crawl_runs(server, make_settings):
    settings = make_settings(publish_every_pages=2)
    video = server.dataset.videos[SMALL]
    seen: list[dict | None] = []

    def look(_index: int, request, phase: str) -> None:
        if phase == "received" and request.path in (MAIN, REPLY):
            seen.append(snapshot(settings.home))  # the crawler is waiting for this answer

    server.watch(look)
    crawl(settings, bvids=[video.bvid])
    server.watchers.remove(look)

    total = len(video.replies)
    during = [s for s in seen if s is not None]
    versions = {s["version"] for s in during}
    assert len(versions) >= 3, seen  # several snapshots were published during the crawl
    counts = [s["comments"] for s in during]
    assert counts == sorted(counts) and 0 < counts[0] < total  # growing, before the end
    for s in during:  # each version consistent: a main page with its checkpoint, or neither
        assert s["main_pages"] == s["main_checkpoints"], s
    final = snapshot(settings.home)
    assert final["comments"] == total and final["version"] not in versions


def test_after_kill_9_readers_keep_what_was_published_and_the_next_writer_catches_up(
    server, make_settings
):
    settings = make_settings()
    home = settings.home
    video = server.dataset.videos[SMALL]
    env = {**os.environ, "EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0",
           "EMOPULSE_PUBLISH_EVERY_PAGES": "2"}
    proc = subprocess.Popen([EMOPULSE, "crawl", "videos", video.bvid, "--home", str(home),
                             "--api-base", server.url, "--quiet", "--no-images"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mains = []

    def kill(_index: int, request, phase: str) -> None:
        if phase == "received" and request.path == MAIN:
            mains.append(request)
            if len(mains) == 6:
                os.kill(proc.pid, signal.SIGKILL)

    server.watch(kill)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        server.watchers.remove(kill)
    assert proc.returncode == -signal.SIGKILL, err

    kept = snapshot(home)
    assert kept is not None and 0 < kept["comments"] < len(video.replies)
    assert kept["main_pages"] == kept["main_checkpoints"] >= 2
    with Warehouse.open(settings.database, command="test: read") as wh:
        stored = wh.con.execute("SELECT count(*) FROM comments").fetchall()[0][0]
        published = set(query(home, "SELECT rpid FROM comments")["rpid"])
        assert published <= {r for (r,) in wh.con.execute("SELECT rpid FROM comments").fetchall()}
    assert stored > kept["comments"]  # committed after the last publish, before the kill

    # the next writing command, whatever it changes, publishes what the killed one left
    subprocess.run([EMOPULSE, "clean", "--home", str(home), "--min-comments", "0"],
                   env=env, check=True, capture_output=True, timeout=120)
    after = snapshot(home)
    assert after["comments"] == stored
    assert after["main_pages"] == after["main_checkpoints"] > kept["main_pages"]
