"""Running a crawl for weeks: `crawl status`, progress and summary, concurrency, pseudonyms."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

from typer.testing import CliRunner

from emopulse.flows.cli import app
from emopulse.flows.progress import Progress
from emopulse.ingest import Pseudonymiser
from emopulse.ingest.client import BilibiliClient

from crawlkit import MAIN, REPLY, SMALL, TINY, comments_of, crawl, make_settings, server, table

__all__ = ["make_settings", "server"]  # fixtures

HOLD = textwrap.dedent("""
    import sys
    from emopulse.warehouse import Warehouse
    with Warehouse.open(sys.argv[1], command="emopulse crawl videos (test)"):
        print("ready", flush=True)
        sys.stdin.read()
""")


def test_status_reads_the_snapshot_while_a_writer_holds_the_warehouse(server, make_settings):
    settings = make_settings()
    small, tiny = server.dataset.videos[SMALL], server.dataset.videos[TINY]
    crawl(settings, popular_pages=1, min_reply=2000, discover_only=True)
    crawl(settings, bvids=[small.bvid], max_comments=50)
    crawl(settings, bvids=[tiny.bvid])
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(settings.database)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = CliRunner().invoke(app, ["crawl", "status", "--format", "json",
                                          "--home", str(settings.home)])
    finally:
        holder.communicate("", timeout=30)
    assert result.exit_code == 0, result.output
    rows = {r["bvid"]: r for r in json.loads(result.stdout)}
    assert len(rows) == 6  # four discovered, two crawled
    assert (rows[small.bvid]["status"], rows[small.bvid]["comments"]) == ("limit", 50)
    assert "max-comments-per-video 50" in rows[small.bvid]["why"]
    assert (rows[tiny.bvid]["status"], rows[tiny.bvid]["why"]) == ("done", "complete")
    assert rows[tiny.bvid]["comments"] == rows[tiny.bvid]["reply_count"] == 87
    new = [r for r in rows.values() if r["status"] == "new"]
    assert len(new) == 4 and all(r["why"] == "discovered, not crawled yet" for r in new)
    state = table(settings, f"SELECT updated_at FROM crawl_state WHERE bvid = '{tiny.bvid}' "
                            "AND listing = 'main'")["updated_at"].iloc[0]
    shanghai = (state.tz_convert("UTC") + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert rows[tiny.bvid]["last_activity"] == shanghai  # times in Asia/Shanghai

    one = CliRunner().invoke(app, ["crawl", "status", tiny.bvid, "--home", str(settings.home)])
    assert one.exit_code == 0 and tiny.bvid in one.stdout and small.bvid not in one.stdout


def test_a_crawl_prints_its_result_on_stdout_and_a_summary_on_stderr(server, make_settings):
    settings = make_settings()
    video = server.dataset.videos[TINY]
    result = CliRunner().invoke(app, ["crawl", "videos", video.bvid, "--home", str(settings.home),
                                      "--api-base", server.url, "--no-images"],
                                env={"EMOPULSE_CRAWL_THROTTLE_S": "0"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["comments"] == 87
    assert "crawl summary" in result.stderr
    assert re.search(r"comments\s*│\s*87\s*│", result.stderr)


def test_progress_counts_per_video_and_overall():
    with Progress(total=2, enabled=False) as progress:
        with progress.video("BV1a") as bar:
            bar.advance(pages=1, comments=20, emotes=3)
            bar.advance(pages=1, comments=5)
        progress.error()
        with progress.video("BV1b") as other:
            other.advance(pages=2, comments=7)
    assert bar.counts == {"pages": 2, "comments": 25, "emotes": 3, "errors": 0}
    assert progress.totals == {"pages": 4, "comments": 32, "emotes": 3, "errors": 1}


def test_concurrency_crawls_videos_at_once_with_the_same_result(server, make_settings,
                                                                 monkeypatch):
    """Two videos' comment requests are in flight at the same time (one is received by the
    server before the other is answered), while request starts stay a throttle apart."""
    small, tiny = server.dataset.videos[SMALL], server.dataset.videos[TINY]
    throttle = 0.05
    lock, overlapped = threading.Lock(), threading.Event()
    starts: list[float] = []  # when each request reached the server
    in_flight: dict[int, str] = {}  # request index -> oid, for comment requests not answered
    overlaps: list[tuple[str, str]] = []  # (oid received, oid of one still in flight)
    held: list[int] = []

    def watch_overlap(index, request, phase):
        """Record overlapping comment requests; hold the first one until another video's
        comment request arrives (bounded: serially, it never does)."""
        comment = request.path in (MAIN, REPLY)
        with lock:
            if phase == "received":
                starts.append(time.monotonic())
            if not comment:
                return
            oid = request.params["oid"]
            if phase == "answered":
                in_flight.pop(index, None)
                return
            overlaps.extend((oid, other) for other in in_flight.values() if other != oid)
            in_flight[index] = oid
            hold = not held
            if hold:
                held.append(index)
            if overlaps:
                overlapped.set()
        if hold:
            overlapped.wait(timeout=5)

    server.watch(watch_overlap)
    sent: list[float] = []  # when the client let each request start (the throttle's business)
    wait_turn = BilibiliClient._wait_turn

    def timed_wait_turn(client):
        wait_turn(client)
        with lock:
            sent.append(time.monotonic())

    monkeypatch.setattr(BilibiliClient, "_wait_turn", timed_wait_turn)
    parallel = make_settings("parallel", crawl_throttle_s=throttle)
    result = crawl(parallel, bvids=[small.bvid, tiny.bvid], concurrency=2)
    server.watchers.clear()
    assert result["videos"] == 2 and result["errors"] == []
    # one video's comment request arrived while the other video's was still unanswered
    assert {(str(SMALL), str(TINY)), (str(TINY), str(SMALL))} & set(overlaps), overlaps
    # the throttle is global: measured where the client starts requests (the server's receive
    # times also carry the network's and the scheduler's jitter)
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:])]
    assert len(starts) == len(sent) and len(gaps) > 15
    assert min(gaps) > throttle * 0.9, sorted(gaps)[:5]

    serial = make_settings("serial")
    crawl(serial, bvids=[small.bvid, tiny.bvid])
    for bvid in (small.bvid, tiny.bvid):
        assert comments_of(parallel, bvid).equals(comments_of(serial, bvid))


def test_pseudonymised_crawls_store_keyed_hashes_of_commenters(server, make_settings,
                                                               monkeypatch):
    video = server.dataset.videos[TINY]
    monkeypatch.setenv("EMOPULSE_PSEUDONYMISE", "1")
    settings = make_settings()
    refused = CliRunner().invoke(app, ["crawl", "videos", video.bvid, "--home",
                                       str(settings.home), "--api-base", server.url])
    assert refused.exit_code == 1 and "EMOPULSE_PSEUDONYMISE_KEY" in refused.output
    assert server.requests == []  # refused before asking anything

    monkeypatch.setenv("EMOPULSE_PSEUDONYMISE_KEY", "a-secret-key")
    settings = make_settings()
    crawl(settings, bvids=[video.bvid])
    stored = comments_of(settings, video.bvid).set_index("rpid")
    hasher = Pseudonymiser("a-secret-key")
    for reply in video.replies.values():
        row = stored.loc[reply.rpid]
        assert (row["mid"], row["uname"]) == (hasher.mid(reply.mid), hasher.uname(reply.uname))
    names = {r.uname for r in video.replies.values()}
    raw = table(settings, "SELECT payload::VARCHAR AS text FROM raw_pages "
                          "WHERE payload IS NOT NULL")
    assert not any(name in text for name in names for text in raw["text"])
    owner = table(settings, f"SELECT owner_mid FROM videos WHERE bvid = '{video.bvid}'")
    assert owner["owner_mid"].iloc[0] == video.owner_mid  # the uploader is public: kept
    for path in settings.home.rglob("*"):
        assert not path.is_file() or b"a-secret-key" not in path.read_bytes(), path
