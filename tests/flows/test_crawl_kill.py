"""`kill -9` at random moments, then resume: the result equals an uninterrupted crawl.

Each run is the real command line in its own process; the local server kills it from its
request thread at a random request, either while the crawler waits for the answer or right
after the answer went out (while the crawler parses and commits). The seed is printed and can
be replayed with EMOPULSE_KILL_SEED.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
from emopulse.warehouse import Warehouse

from crawlkit import SMALL, crawl, make_settings, server

__all__ = ["make_settings", "server"]  # fixtures

EMOPULSE = str(Path(sys.executable).with_name("emopulse"))
KILLS = 3


def tables(db: Path) -> dict[str, pd.DataFrame]:
    """What a crawl leaves that must not depend on how often it was killed."""
    queries = {
        "comments": "SELECT * EXCLUDE (crawled_at) FROM comments ORDER BY rpid",
        "comment_emotes": "SELECT * FROM comment_emotes ORDER BY rpid, emoji_alt",
        "emotes": "SELECT emoji_alt, emote_id, package_id, url FROM emotes ORDER BY emoji_alt",
        "videos": "SELECT bvid, aid, title, reply_count, source, status FROM videos",
        "crawl_state": "SELECT bvid, listing, cursor, is_end, status, total, head_rpid, "
                       "floor_ctime FROM crawl_state ORDER BY bvid, listing",
    }
    with Warehouse.open(db, command="test: compare") as wh:
        return {name: wh.con.execute(sql).df() for name, sql in queries.items()}


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_crawl(server,
                                                                            make_settings):
    seed = int(os.environ.get("EMOPULSE_KILL_SEED", random.randrange(1_000_000)))
    print(f"EMOPULSE_KILL_SEED={seed}")
    rng = random.Random(seed)
    video = server.dataset.videos[SMALL]
    reference = make_settings("reference")
    crawl(reference, bvids=[video.bvid])

    home = reference.home.parent / "killed"
    env = {**os.environ, "EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0"}
    command = [EMOPULSE, "crawl", "videos", video.bvid, "--home", str(home),
               "--api-base", server.url, "--quiet", "--no-images"]
    killed = []
    for _ in range(KILLS):
        first = len(server.requests)
        at, phase = first + rng.randrange(3, 8), rng.choice(["received", "answered"])
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

        def kill(index: int, _request: object, when: str, proc=proc, at=at, phase=phase) -> None:
            if index == at and when == phase:
                os.kill(proc.pid, signal.SIGKILL)

        server.watch(kill)
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            server.watchers.remove(kill)
        assert proc.returncode in (0, -signal.SIGKILL), err
        killed.append((at - first, phase, proc.returncode == -signal.SIGKILL))
    print("kills (request, phase, killed):", killed)
    assert sum(k for *_, k in killed) >= 2  # most runs really died half-way

    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    got, want = tables(home / "warehouse.duckdb"), tables(reference.database)
    assert len(want["comments"]) == len(video.replies)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_like=False, obj=name)
