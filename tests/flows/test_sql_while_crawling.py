"""Readers never wait for the writer: `emopulse sql` answers while a crawl holds the warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from emopulse.ingest.localserver import serve_local_bilibili
from emopulse.warehouse import query


def _lock_holder(lock: Path) -> str:
    try:
        return lock.read_text()
    except FileNotFoundError:
        return ""


def test_sql_answers_while_a_crawl_writes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    emopulse = str(Path(sys.executable).with_name("emopulse"))
    seed = tmp_path / "seed.csv"
    seed.write_text("\ufeff,uname,message,like,oid,label\n1,甲,你好[doge],0,170001,0\n", encoding="utf-8")
    subprocess.run([emopulse, "import", "comments", str(seed), "--home", str(home)], check=True, capture_output=True)

    env = {**os.environ, "EMOPULSE_CRAWL_THROTTLE_S": "0.02", "EMOPULSE_CRAWL_JITTER_S": "0"}
    with serve_local_bilibili() as server:
        bvids = [v.bvid for v in sorted(server.dataset.videos.values(), key=lambda v: -v.reply_count)][:2]
        crawl = subprocess.Popen([emopulse, "crawl", "videos", *bvids, "--home", str(home), "--api-base", server.url,
                                  "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lock = home / "warehouse.duckdb.lock"
        deadline = time.monotonic() + 60
        while f"pid {crawl.pid}" not in _lock_holder(lock):  # wait until the crawl holds the writer
            assert crawl.poll() is None, crawl.communicate()
            assert time.monotonic() < deadline, "crawl never took the warehouse"
        answers, while_writing = [], 0
        while crawl.poll() is None and len(answers) < 4:
            cli = subprocess.run([emopulse, "sql", "SELECT count(*) AS n FROM comments", "--format", "csv",
                                  "--home", str(home)], capture_output=True, text=True, timeout=60)
            assert cli.returncode == 0, cli.stderr
            answers.append(int(cli.stdout.splitlines()[1]))
            answers.append(int(query(home, "SELECT count(*) AS n FROM comments")["n"].iloc[0]))
            while_writing += f"pid {crawl.pid}" in _lock_holder(lock)
        out, err = crawl.communicate(timeout=300)
    assert crawl.returncode == 0, err
    assert while_writing >= 1  # the queries really ran while the crawl held the warehouse
    assert answers and set(answers) == {1}  # the last published snapshot, never an error
    crawled = query(home, "SELECT count(*) AS n FROM comments WHERE bvid IN ({})".format(
        ",".join(f"'{b}'" for b in bvids)))["n"].iloc[0]
    assert crawled > 100  # the crawl published its snapshot on the way out
