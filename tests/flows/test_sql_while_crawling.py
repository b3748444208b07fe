"""Readers never wait for the writer: `emopulse sql` answers while a crawl holds the warehouse."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from emopulse.ingest.localserver import serve_local_bilibili
from emopulse.warehouse import query

from crawlkit import MAIN, SMALL, TINY

FIRST_PAGE = '{"offset":""}'


def _lock_holder(lock: Path) -> str:
    try:
        return lock.read_text()
    except FileNotFoundError:
        return ""


def _flock_held(lock: Path) -> bool:
    """Whether another process holds the writer's flock (we cannot take it)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_sql_answers_while_a_crawl_writes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    emopulse = str(Path(sys.executable).with_name("emopulse"))
    seed = tmp_path / "seed.csv"
    seed.write_text("\ufeff,uname,message,like,oid,label\n1,甲,你好[doge],0,170001,0\n", encoding="utf-8")
    subprocess.run([emopulse, "import", "comments", str(seed), "--home", str(home)], check=True, capture_output=True)

    # no publishing on the way: readers must see the snapshot from before the crawl
    env = {**os.environ, "EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0",
           "EMOPULSE_PUBLISH_EVERY_PAGES": "1000000", "EMOPULSE_PUBLISH_EVERY_S": "1000000"}
    # The server holds the crawl at each video's first comment page (the first with nothing of
    # the crawl committed yet, the second with the first video committed) until we have read.
    pauses = [(threading.Event(), threading.Event()) for _ in range(2)]  # (reached, release)
    firsts: list[int] = []
    timed_out: list[int] = []

    def pause_at_first_pages(index, request, phase) -> None:
        if (request.path, phase) != (MAIN, "received") or request.params.get("mode") != "2":
            return
        if request.params.get("pagination_str") != FIRST_PAGE or len(firsts) >= len(pauses):
            return
        firsts.append(index)
        reached, release = pauses[len(firsts) - 1]
        reached.set()
        if not release.wait(timeout=60):  # never hang the crawl for good
            timed_out.append(index)

    with serve_local_bilibili() as server:
        bvids = [server.dataset.videos[SMALL].bvid, server.dataset.videos[TINY].bvid]
        server.watch(pause_at_first_pages)
        crawl = subprocess.Popen([emopulse, "crawl", "videos", *bvids, "--home", str(home), "--api-base", server.url,
                                  "--quiet", "--no-images"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        lock = home / "warehouse.duckdb.lock"
        answers = []
        try:
            for reached, release in pauses:
                deadline = time.monotonic() + 60
                while not reached.wait(timeout=0.1):  # bounded: fail if the crawl died or hangs
                    assert crawl.poll() is None, crawl.communicate()
                    assert time.monotonic() < deadline, "the crawl never asked for its page"
                # the crawl is waiting for its answer here, holding the warehouse
                assert f"pid {crawl.pid}" in _lock_holder(lock) and _flock_held(lock)
                cli = subprocess.run([emopulse, "sql", "SELECT count(*) AS n FROM comments", "--format", "csv",
                                      "--home", str(home)], capture_output=True, text=True, timeout=60)
                assert cli.returncode == 0, cli.stderr
                answers.append(int(cli.stdout.splitlines()[1]))
                answers.append(int(query(home, "SELECT count(*) AS n FROM comments")["n"].iloc[0]))
                assert crawl.poll() is None and _flock_held(lock)  # still held: read while writing
                release.set()
        finally:
            for _, release in pauses:
                release.set()
            out, err = crawl.communicate(timeout=300)
    assert crawl.returncode == 0, err
    assert len(firsts) == 2 and timed_out == []  # both pauses happened, and we let them go
    assert answers == [1, 1, 1, 1]  # the last published snapshot, never an error
    crawled = query(home, "SELECT count(*) AS n FROM comments WHERE bvid IN ({})".format(
        ",".join(f"'{b}'" for b in bvids)))["n"].iloc[0]
    assert crawled == 175 + 87  # the crawl published its snapshot on the way out
