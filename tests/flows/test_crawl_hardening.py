"""Weeks of crawling with nothing lost (issue 8): soft blocks, full passes, the up-to-date check,
gone threads, malformed replies, re-checks of gone videos, a client-wide backoff and the circuit
breaker. Every test crawls the local server over real HTTP into a real DuckDB file."""

from __future__ import annotations

import json
import threading
import time

import pytest

from emopulse.flows.cooldown import EXIT_TEMPFAIL, CoolingDown
from emopulse.ingest.localserver import Fault

from crawlkit import (
    MAIN, NAV, REPLY, SMALL, SPI, TINY, VIEW, comments_of, crawl, main_state, make_settings,
    requests_to, server, table,
)

__all__ = ["make_settings", "server"]  # fixtures


def all_of(server, aid: int) -> set[int]:
    return set(server.dataset.videos[aid].replies)


def stored(settings, bvid: str) -> set[int]:
    return set(comments_of(settings, bvid)["rpid"])


def inject_after(server, path: str, answered: int, fault: Fault) -> None:
    """Inject `fault` once `answered` requests to `path` have been answered."""
    seen: list[int] = []

    def watcher(index, request, phase):
        if phase == "answered" and request.path == path:
            seen.append(index)
            if len(seen) == answered:
                server.inject(fault)

    server.watch(watcher)


# -- a soft-blocked page is never the end ---------------------------------------------------------


def test_a_soft_blocked_page_is_retried_with_fresh_keys_then_recorded_blocked(server, make_settings):
    settings = make_settings(crawl_max_retries=2)
    tiny = server.dataset.videos[TINY]
    inject_after(server, MAIN, 1, Fault("softblock", at=MAIN, times=3))  # page 2, 3 attempts
    mark = len(server.requests)
    result = crawl(settings, bvids=[tiny.bvid])
    state = main_state(settings, tiny.bvid)
    assert state["status"] == "blocked" and not state["is_end"]
    assert "soft" in state["message"] and state["cursor"] is not None
    assert any(tiny.bvid in e and "blocked" in e for e in result["errors"])
    # each retry dropped the WBI keys and buvid cookies and asked for new ones
    assert len(requests_to(server, NAV, mark)) == 3 and len(requests_to(server, SPI, mark)) == 3
    assert stored(settings, tiny.bvid) < all_of(server, TINY)

    mark = len(server.requests)
    crawl(settings, bvids=[tiny.bvid])  # no longer blocked: goes on from the saved cursor
    assert stored(settings, tiny.bvid) == all_of(server, TINY)
    assert json.loads(json.loads(requests_to(server, MAIN, mark)[0].params["pagination_str"])
                      ["offset"])  # not from the top
    assert main_state(settings, tiny.bvid)["status"] == "done"


def test_one_soft_block_then_a_good_answer_loses_nothing(server, make_settings):
    settings = make_settings()
    small = server.dataset.videos[SMALL]
    server.inject(Fault("softblock", at=MAIN, times=1))
    result = crawl(settings, bvids=[small.bvid])
    assert result["errors"] == []
    assert stored(settings, small.bvid) == all_of(server, SMALL)


# -- full passes ----------------------------------------------------------------------------------


def late_changes(server, aid: int) -> tuple[int, int]:
    """A comment released late under an old root position, and a reply under an old root that
    neither the newest page nor the hot page shows."""
    video = server.dataset.videos[aid]
    old_root = video.roots[-3]  # near the end of the time order
    late = server.add_reply(aid, "审核后才出现的评论", older_than=old_root.rpid)
    hot = {r.rpid for r in sorted(video.roots, key=lambda r: (-r.like, -r.rpid))[:20]}
    quiet_root = next(r for r in reversed(video.roots) if r.rpid not in hot and r is not late)
    grown = server.add_reply(aid, "老楼里的新回复", root=quiet_root.rpid)
    return late.rpid, grown.rpid


def test_full_reads_the_whole_listing_again_storing_only_what_changed(server, make_settings):
    settings = make_settings()
    small = server.dataset.videos[SMALL]
    crawl(settings, bvids=[small.bvid])
    late, grown = late_changes(server, SMALL)

    result = crawl(settings, bvids=[small.bvid])  # an incremental pass: the count grew by two
    assert result["full_passes"] == 0
    assert late not in stored(settings, small.bvid) and grown not in stored(settings, small.bvid)

    before = table(settings, f"SELECT rpid, crawled_at FROM comments WHERE bvid = '{small.bvid}'")
    result = crawl(settings, bvids=[small.bvid], full=True)
    assert result["full_passes"] == 1
    assert stored(settings, small.bvid) == all_of(server, SMALL)
    after = table(settings, f"SELECT rpid, crawled_at FROM comments WHERE bvid = '{small.bvid}'")
    merged = before.merge(after, on="rpid", suffixes=("_before", "_after"))
    unchanged = merged[merged["crawled_at_before"] == merged["crawled_at_after"]]
    # only the root whose reply count grew was stored again; every other comment was left alone
    assert len(merged) - len(unchanged) <= 2
    state = main_state(settings, small.bvid)
    assert state["status"] == "done" and state["full_pass_at"] is not None


def test_a_full_pass_comes_by_itself_once_the_last_is_older_than_the_setting(server, make_settings):
    small = server.dataset.videos[SMALL]
    crawl(make_settings(), bvids=[small.bvid])
    late, grown = late_changes(server, SMALL)
    result = crawl(make_settings(crawl_full_pass_days=1e-9), bvids=[small.bvid])
    assert result["full_passes"] == 1
    assert {late, grown} <= stored(make_settings(), small.bvid)


def test_an_interrupted_full_pass_resumes_as_a_full_pass(server, make_settings):
    settings = make_settings(crawl_max_retries=2)
    small = server.dataset.videos[SMALL]
    crawl(settings, bvids=[small.bvid])
    late, _ = late_changes(server, SMALL)
    inject_after(server, MAIN, 2, Fault("code:-799", at=MAIN, times=3))  # page 3 fails
    crawl(settings, bvids=[small.bvid], full=True)
    state = main_state(settings, small.bvid)
    assert state["full_pass"] and not state["is_end"] and state["status"] == "error"
    assert late not in stored(settings, small.bvid)
    crawl(settings, bvids=[small.bvid])  # no --full: the pass under way stays full
    assert late in stored(settings, small.bvid)
    assert main_state(settings, small.bvid)["full_pass_at"] is not None


# -- the up-to-date check -------------------------------------------------------------------------


def test_new_comments_after_deletions_are_read(server, make_settings):
    settings = make_settings()
    tiny = server.dataset.videos[TINY]
    crawl(settings, bvids=[tiny.bvid])
    gone = server.delete_replies(TINY, 12)
    new = [server.add_reply(TINY, f"删帖之后的新评论 {i}").rpid for i in range(5)]
    assert server.dataset.videos[TINY].reply_count < main_state(settings, tiny.bvid)["total"]
    result = crawl(settings, bvids=[tiny.bvid])
    assert result["up_to_date"] == 0
    assert set(new) <= stored(settings, tiny.bvid)
    assert {r.rpid for r in gone} <= stored(settings, tiny.bvid)  # deleted ones stay stored


def test_an_unchanged_count_is_passed_again_once_the_last_pass_is_too_old(server, make_settings):
    tiny = server.dataset.videos[TINY]
    crawl(make_settings(), bvids=[tiny.bvid])
    mark = len(server.requests)
    assert crawl(make_settings(), bvids=[tiny.bvid])["up_to_date"] == 1
    assert requests_to(server, MAIN, mark) == []
    mark = len(server.requests)
    result = crawl(make_settings(crawl_max_pass_age_h=1e-9), bvids=[tiny.bvid])
    assert result["up_to_date"] == 0 and len(requests_to(server, MAIN, mark)) >= 1


# -- a gone thread is the thread's business -------------------------------------------------------


def test_a_404_on_a_sub_reply_thread_is_recorded_on_the_thread_and_the_video_goes_on(
        server, make_settings):
    settings = make_settings()
    small = server.dataset.videos[SMALL]
    server.inject(Fault("code:-404", at=REPLY, times=1))
    result = crawl(settings, bvids=[small.bvid])
    threads = table(settings, f"SELECT listing, status, is_end FROM crawl_state WHERE bvid = "
                              f"'{small.bvid}' AND listing LIKE 'reply:%' AND status = 'deleted'")
    assert len(threads) == 1 and bool(threads["is_end"][0])
    assert main_state(settings, small.bvid)["status"] == "done"
    video = table(settings, f"SELECT status FROM videos WHERE bvid = '{small.bvid}'")
    assert video["status"][0] == "ok" and small.bvid not in result["skipped"]
    root = int(threads["listing"][0].split(":")[1])
    children = {r.rpid for r in server.dataset.videos[SMALL].replies[root].children}
    assert all_of(server, SMALL) - stored(settings, small.bvid) <= children  # only that thread

    mark = len(server.requests)
    crawl(settings, bvids=[small.bvid], full=True)  # later runs still crawl the video
    assert len(requests_to(server, MAIN, mark)) >= 1


# -- one malformed reply ----------------------------------------------------------------------------


def test_a_malformed_reply_is_skipped_and_recorded_and_the_listing_moves_on(server, make_settings):
    settings = make_settings()
    small = server.dataset.videos[SMALL]
    server.inject(Fault("badreply", at=MAIN, times=1))
    result = crawl(settings, bvids=[small.bvid])
    assert result["rejected"] == 1
    missing = all_of(server, SMALL) - stored(settings, small.bvid)
    assert len(missing) == 1  # that reply alone; its sub-reply preview and thread are kept
    state = main_state(settings, small.bvid)
    assert state["status"] == "done" and state["is_end"]
    pages = table(settings, "SELECT parse_error, payload FROM raw_pages WHERE parse_error IS NOT "
                            "NULL")
    assert len(pages) == 1 and str(missing.pop()) in pages["parse_error"][0]
    assert "package_id" in pages["parse_error"][0] and pages["payload"][0] is not None


# -- deleted and closed videos are asked again ----------------------------------------------------


def test_a_deleted_video_is_rechecked_with_recheck_or_after_the_setting(server, make_settings):
    tiny = server.dataset.videos[TINY]
    server.inject(Fault("code:-404", at=VIEW, times=1))
    crawl(make_settings(), bvids=[tiny.bvid])
    assert table(make_settings(), "SELECT status FROM videos")["status"][0] == "deleted"

    mark = len(server.requests)
    result = crawl(make_settings(), bvids=[tiny.bvid])
    assert "deleted" in result["skipped"][tiny.bvid] and server.requests[mark:] == []

    crawl(make_settings(), bvids=[tiny.bvid], recheck=True)
    assert table(make_settings(), "SELECT status FROM videos")["status"][0] == "ok"
    assert stored(make_settings(), tiny.bvid) == all_of(server, TINY)


def test_a_closed_video_is_rechecked_after_the_setting(server, make_settings):
    tiny = server.dataset.videos[TINY]
    server.inject(Fault("code:12002", at=MAIN, times=1))
    crawl(make_settings(), bvids=[tiny.bvid])
    assert main_state(make_settings(), tiny.bvid)["status"] == "comments_closed"
    mark = len(server.requests)
    crawl(make_settings(), bvids=[tiny.bvid])
    assert server.requests[mark:] == []
    crawl(make_settings(crawl_recheck_days=1e-9), bvids=[tiny.bvid])
    assert stored(make_settings(), tiny.bvid) == all_of(server, TINY)


# -- politeness under concurrency -----------------------------------------------------------------


def test_a_backoff_pauses_every_thread_of_the_client(server, make_settings):
    backoff = 0.4
    settings = make_settings(crawl_backoff_s=backoff)
    bvids = [v.bvid for v in server.dataset.videos.values()][:4]
    received: list[tuple[float, int]] = []
    answered: dict[int, float] = {}
    lock = threading.Lock()

    def watcher(index, request, phase):
        with lock:
            if phase == "received":
                received.append((time.monotonic(), index))
            else:
                answered[index] = time.monotonic()

    server.watch(watcher)
    server.inject(Fault("code:-799", at=6, times=1))  # while both threads are crawling
    crawl(settings, bvids=bvids, concurrency=2)
    hit = answered[6]
    during = [i for t, i in received if hit < t < hit + backoff]
    # at most the other thread's request already on its way when the -799 came back
    assert len(during) <= 1, f"requests {during} started while the client was backing off"
    assert any(t >= hit + backoff for t, _ in received)  # and the crawl went on after it


def test_a_streak_of_risk_control_answers_trips_the_breaker(server, make_settings):
    settings = make_settings(crawl_max_retries=2, crawl_breaker_streak=5)
    bvids = [v.bvid for v in server.dataset.videos.values()][:4]
    server.inject(Fault("code:-352", at=MAIN, times=100))
    with pytest.raises(CoolingDown) as caught:
        crawl(settings, bvids=bvids)
    assert caught.value.exit_code == EXIT_TEMPFAIL and "circuit breaker" in str(caught.value)
    assert len(requests_to(server, MAIN)) == 5  # not 3 attempts for each of 4 videos
    cooldowns = table(settings, "SELECT source, code FROM crawl_cooldowns")
    assert list(cooldowns["source"]) == [server.url] and cooldowns["code"][0] == -352

    mark = len(server.requests)
    with pytest.raises(CoolingDown):  # the next crawl rests without a single request
        crawl(settings, bvids=bvids)
    assert server.requests[mark:] == []


def test_a_good_answer_resets_the_streak(server, make_settings):
    settings = make_settings(crawl_max_retries=3, crawl_breaker_streak=5)
    tiny = server.dataset.videos[TINY]
    server.inject(Fault("code:-799", at=MAIN, times=3))  # 3 in a row, then good answers
    result = crawl(settings, bvids=[tiny.bvid])
    assert result["errors"] == [] and stored(settings, tiny.bvid) == all_of(server, TINY)


# -- threads: soft blocks and gone pages are never the thread's end --------------------------------


def test_a_soft_blocked_thread_page_stays_open_and_the_next_run_reads_it(server, make_settings):
    settings = make_settings(crawl_max_retries=2)
    small = server.dataset.videos[SMALL]
    server.inject(Fault("softblock", at=REPLY, times=3))  # the first thread, every attempt
    result = crawl(settings, bvids=[small.bvid])
    blocked = table(settings, f"SELECT listing, is_end FROM crawl_state WHERE bvid = '{small.bvid}'"
                              " AND status = 'blocked'")
    assert len(blocked) == 1 and blocked["listing"][0].startswith("reply:")
    assert not bool(blocked["is_end"][0])
    assert any("blocked" in e for e in result["errors"])
    assert stored(settings, small.bvid) < all_of(server, SMALL)
    crawl(settings, bvids=[small.bvid])  # the open thread is finished first
    assert stored(settings, small.bvid) == all_of(server, SMALL)


def test_one_soft_blocked_thread_page_is_retried_and_loses_nothing(server, make_settings):
    settings = make_settings()
    small = server.dataset.videos[SMALL]
    server.inject(Fault("softblock", at=REPLY, times=1))
    assert crawl(settings, bvids=[small.bvid])["errors"] == []
    assert stored(settings, small.bvid) == all_of(server, SMALL)


def test_a_404_on_a_later_page_of_a_thread_is_asked_again_by_a_full_pass(server, make_settings):
    settings = make_settings()
    small = server.dataset.videos[SMALL]
    root = small.pinned.rpid  # its thread has 22 replies: two pages

    def gone_on_page_two(index, request, phase):
        if (phase == "answered" and request.path == REPLY and request.params.get("pn") == "1"
                and request.params.get("root") == str(root)):
            server.inject(Fault("code:-404", at=REPLY, times=1))

    server.watch(gone_on_page_two)
    crawl(settings, bvids=[small.bvid])
    state = table(settings, f"SELECT status, is_end FROM crawl_state WHERE listing = 'reply:{root}'")
    assert state["status"][0] == "deleted" and bool(state["is_end"][0])
    assert len(all_of(server, SMALL) - stored(settings, small.bvid)) == 2
    server.watchers.clear()
    crawl(settings, bvids=[small.bvid], full=True)
    assert stored(settings, small.bvid) == all_of(server, SMALL)


def test_a_video_with_only_a_pinned_comment_is_up_to_date_on_the_next_run(server, make_settings):
    settings = make_settings()
    tiny = server.dataset.videos[TINY]
    server.delete_replies(TINY, len(tiny.roots))
    crawl(settings, bvids=[tiny.bvid])
    mark = len(server.requests)
    result = crawl(settings, bvids=[tiny.bvid])
    assert result["up_to_date"] == 1 and requests_to(server, MAIN, mark) == []
