"""`kill -9` at chosen and at random moments, then resume: the result equals an uninterrupted crawl.

Each run is the real command line in its own process; the local server kills it from its
request thread at a chosen request, either while the crawler waits for the answer ("received":
the server answers only once the process is gone) or right after the answer went out
("answered": while the crawler parses and commits). The kills hit the start of a pass at random,
a sub-reply thread's second page, a thread opened from a later main page, a listing restarted
after the API refused the saved cursor (-400), and the hot page of a later pass. The seed is
printed and can be replayed with EMOPULSE_KILL_SEED.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
from emopulse.ingest.localserver import SeenRequest
from emopulse.warehouse import Warehouse

from crawlkit import MAIN, REPLY, SMALL, crawl, make_settings, server

__all__ = ["make_settings", "server"]  # fixtures

EMOPULSE = str(Path(sys.executable).with_name("emopulse"))
KILLS = 3
SEED = os.environ.get("EMOPULSE_KILL_SEED")  # read on import: the fixtures clear EMOPULSE_*
FIRST_PAGE = '{"offset":""}'
PHASES = ("received", "answered")

# (index in the run, the request, phase, the run's requests so far) -> kill now?
Aim = Callable[[int, SeenRequest, str, list[SeenRequest]], bool]


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


def assert_same_as(home: Path, reference: Path, comments: int) -> None:
    got, want = tables(home / "warehouse.duckdb"), tables(reference)
    assert len(want["comments"]) == comments and want["comments"]["rpid"].is_unique
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_like=False, obj=name)


def main_cursor(home: Path) -> str | None:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute("SELECT cursor FROM crawl_state WHERE listing = 'main'").fetchone()
    return row[0]


class Runs:
    """Runs of `emopulse crawl videos` on one home, killed where `aim` says."""

    def __init__(self, server, home: Path, bvid: str) -> None:
        self.server, self.home = server, home
        self.env = {**os.environ, "EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0"}
        self.command = [EMOPULSE, "crawl", "videos", bvid, "--home", str(home),
                        "--api-base", server.url, "--quiet", "--no-images"]
        self.log: list[tuple[str, int, str, str]] = []  # (what, request in run, path, phase)

    def run(self, what: str, aim: Aim | None) -> tuple[bool, list[SeenRequest]]:
        """One run; whether it was killed, and the requests it sent."""
        first = len(self.server.requests)
        proc = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        hit: list[int] = []

        def kill(index: int, request: SeenRequest, when: str) -> None:
            if hit or index < first or aim is None:
                return
            if aim(index - first, request, when, self.server.requests[first:index + 1]):
                hit.append(index)
                self.log.append((what, index - first, request.path, when))
                os.kill(proc.pid, signal.SIGKILL)
                try:  # "received": no answer until the process is gone (not reaped here)
                    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                except ChildProcessError:
                    pass

        self.server.watch(kill)
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            self.server.watchers.remove(kill)
        killed = proc.returncode == -signal.SIGKILL
        assert proc.returncode == 0 or (killed and hit), (what, proc.returncode, err)
        return killed, self.server.requests[first:]

    def must_kill(self, what: str, aim: Aim) -> list[SeenRequest]:
        killed, sent = self.run(what, aim)
        assert killed, f"{what}: the run never reached its kill point: {self.log}"
        return sent


def at(rel: int, phase: str) -> Aim:
    return lambda index, _request, when, _sent: index == rel and when == phase


def in_thread(page_two: bool, first_page_roots: set[int], phase: str) -> Aim:
    """A sub-reply request: a thread's second page, or a thread opened from a later page."""
    def aim(_index: int, request: SeenRequest, when: str, _sent: list) -> bool:
        if request.path != REPLY or when != phase:
            return False
        if page_two:
            return int(request.params["pn"]) >= 2
        return int(request.params["root"]) not in first_page_roots
    return aim


def in_restart(page: int, phase: str) -> Aim:
    """The `page`-th (0-based) page of a listing restarted after its saved cursor was refused."""
    def aim(_index: int, request: SeenRequest, when: str, sent: list[SeenRequest]) -> bool:
        if request.path != MAIN or request.params["mode"] != "2" or when != phase:
            return False
        mains = [r.params["pagination_str"] for r in sent
                 if r.path == MAIN and r.params["mode"] == "2"]
        if mains[0] == FIRST_PAGE or FIRST_PAGE not in mains:  # not resumed, or not restarted
            return False
        return len(mains) - 1 - mains.index(FIRST_PAGE) == page
    return aim


def hot_page(phase: str) -> Aim:
    return lambda _index, request, when, _sent: (
        request.path == MAIN and request.params["mode"] == "3" and when == phase)


def test_sigkill_anywhere_then_resume_equals_an_uninterrupted_crawl(server, make_settings):
    seed = int(SEED) if SEED else random.randrange(1_000_000)
    print(f"EMOPULSE_KILL_SEED={seed}")
    rng = random.Random(seed)
    video = server.dataset.videos[SMALL]
    first_page_roots = {video.pinned.rpid, *(r.rpid for r in video.roots[:20])}
    reference = make_settings("reference")
    crawl(reference, bvids=[video.bvid])
    base = reference.home.parent

    # 1. At random early requests of each run
    randomly = Runs(server, base / "random", video.bvid)
    random_kills = [randomly.run("random", at(rng.randrange(3, 8), rng.choice(PHASES)))[0]
                    for _ in range(KILLS)]
    assert sum(random_kills) >= 2  # most runs really died half-way
    assert not randomly.run("resume", None)[0]
    assert_same_as(randomly.home, reference.database, len(video.replies))

    # 2. In sub-reply threads: a thread's second page, a thread opened from main page 6
    runs = Runs(server, base / "threads", video.bvid)
    phase = rng.choice(PHASES)
    runs.must_kill("thread page 2", in_thread(True, first_page_roots, phase))
    runs.must_kill("thread of a later page",
                   in_thread(False, first_page_roots, PHASES[1 - PHASES.index(phase)]))
    assert not runs.run("resume", None)[0]
    assert_same_as(runs.home, reference.database, len(video.replies))

    # 3. While a listing restarts after the API refused the saved cursor (-400)
    restarted = Runs(server, base / "restarted", video.bvid)
    restarted.must_kill("mid-listing", lambda index, request, when, sent: (
        request.path == MAIN and when == "answered"
        and sum(r.path == MAIN for r in sent) == 3))
    saved = main_cursor(restarted.home)
    assert saved and "session_id" in saved
    server.expire_cursors()
    sent = restarted.must_kill("restarted listing",
                               in_restart(rng.randrange(0, 3), rng.choice(PHASES)))
    mains = [r.params["pagination_str"] for r in sent if r.path == MAIN]
    assert json.loads(mains[0])["offset"] == saved and FIRST_PAGE in mains[1:]  # refused, restarted
    assert not restarted.run("resume", None)[0]
    assert_same_as(restarted.home, reference.database, len(video.replies))

    # 4. At the hot page of a later pass, while waiting for it and while committing it
    hot = sorted(video.roots, key=lambda r: (-r.like, -r.rpid))[:20]
    busy = next(r for r in hot if r not in video.roots[:15])  # old, liked: only on the hot page
    for i in range(25):
        server.add_reply(SMALL, f"新评论{i}[doge]")
    server.add_reply(SMALL, "置顶楼又有人回复了", root=video.pinned.rpid)
    late = server.add_reply(SMALL, "老楼也有新回复", root=busy.rpid)
    crawl(reference, bvids=[video.bvid])
    assert late.rpid in set(tables(reference.database)["comments"]["rpid"])
    runs.must_kill("hot page", hot_page("received"))
    runs.must_kill("hot page again", hot_page("answered"))
    assert not runs.run("resume", None)[0]
    assert_same_as(runs.home, reference.database, len(server.dataset.videos[SMALL].replies))
    print("kills (what, request in run, path, phase):", randomly.log + runs.log + restarted.log)
