"""Passes over a video's comments against the local server, over real HTTP: complete, then
incremental, bounded by --since and --max-comments-per-video, restarted after a stale cursor."""

from __future__ import annotations

from emopulse.ingest.window import day_start

from crawlkit import (
    MAIN, REPLY, SEARCH, SMALL, VIEW, asked_after, comments_of, crawl, main_state, make_settings,
    requests_to, server, table,
)

__all__ = ["make_settings", "server"]  # fixtures


def expected_rpids(server, aid: int) -> set[int]:
    return set(server.dataset.videos[aid].replies)


def test_a_crawl_stores_every_comment_once_and_a_second_asks_for_nothing(server, make_settings):
    settings, video = make_settings(), server.dataset.videos[SMALL]
    first = crawl(settings, bvids=[video.bvid])
    stored = comments_of(settings, video.bvid)
    assert set(stored["rpid"]) == expected_rpids(server, SMALL) and stored["rpid"].is_unique
    assert first["comments"] >= len(stored) and first["errors"] == []
    state = main_state(settings, video.bvid)
    newest = video.roots[0]
    assert (state["status"], state["is_end"], state["total"]) == ("done", True, 175)
    assert (state["head_rpid"], state["head_ctime"]) == (newest.rpid, newest.ctime)
    assert state["floor_ctime"] is None or state["floor_ctime"] != state["floor_ctime"]  # NULL

    before = len(server.requests)
    again = crawl(settings, bvids=[video.bvid])
    assert again["up_to_date"] == 1 and "up to date" in again["skipped"][video.bvid]
    assert again["pages"] == again["comments"] == 0
    assert asked_after(server, before) == [VIEW]  # the fresh reply count, no comment page


def test_a_later_pass_reads_only_new_comments_and_grown_threads(server, make_settings):
    settings, video = make_settings(), server.dataset.videos[SMALL]
    crawl(settings, bvids=[video.bvid])
    pinned = video.pinned
    # an old, much-liked root far below where the next pass stops: the hot page shows it
    hot = sorted(video.roots, key=lambda r: (-r.like, -r.rpid))[:20]
    busy = next(r for r in hot if r not in video.roots[:15])
    new_roots = [server.add_reply(SMALL, f"新评论{i}[doge]") for i in range(25)]
    grown = server.add_reply(SMALL, "置顶楼又有人回复了", root=pinned.rpid)  # 22 -> 23 replies
    late = server.add_reply(SMALL, "老楼也有新回复", root=busy.rpid)

    before = len(server.requests)
    result = crawl(settings, bvids=[video.bvid])
    mains = requests_to(server, MAIN, before)
    assert [r.params["mode"] for r in mains] == ["2", "2", "3"]  # 25 new roots, then by likes
    replies = requests_to(server, REPLY, before)
    assert (str(pinned.rpid), "2") in [(r.params["root"], r.params["pn"]) for r in replies]
    stored = comments_of(settings, video.bvid)
    assert set(stored["rpid"]) == expected_rpids(server, SMALL)
    assert {r.rpid for r in new_roots} | {grown.rpid, late.rpid} <= set(stored["rpid"])
    assert result["errors"] == [] and result["videos"] == 1 and result["comments"] == 27
    state = main_state(settings, video.bvid)
    assert (state["head_rpid"], state["total"]) == (new_roots[-1].rpid, 202)
    assert state["status"] == "done"
    assert stored.set_index("rpid").loc[pinned.rpid, "rcount"] == 23


def test_since_keeps_comments_from_that_day_in_asia_shanghai(server, make_settings):
    settings, video = make_settings(), server.dataset.videos[SMALL]
    since = day_start("2019-03-14")  # 2019-03-13T16:00:00Z
    assert since == 1552492800
    crawl(settings, bvids=[video.bvid], since="2019-03-14")
    roots = set(table(settings, f"SELECT rpid FROM comments WHERE bvid = '{video.bvid}' "
                                "AND root = 0")["rpid"])
    wanted = {r.rpid for r in video.roots if r.ctime >= since}
    assert roots == wanted and len(wanted) == 66
    # 15 of them were posted before 08:00 that day: a UTC day boundary would have lost them
    assert len({r.rpid for r in video.roots if since <= r.ctime < since + 8 * 3600}) == 15
    assert video.pinned.rpid not in roots  # pinned, but older than --since
    state = main_state(settings, video.bvid)
    assert (state["status"], state["is_end"], state["floor_ctime"]) == ("done", True, since)

    before, stored = len(server.requests), comments_of(settings, video.bvid)
    narrower = crawl(settings, bvids=[video.bvid], since="2019-03-20")  # nothing to do
    assert narrower["up_to_date"] == 1 and "up to date" in narrower["skipped"][video.bvid]
    assert asked_after(server, before) == [VIEW]  # no comment page, no thread
    assert comments_of(settings, video.bvid).equals(stored)
    crawl(settings, bvids=[video.bvid])  # without --since: the rest is read (a full pass)
    assert set(comments_of(settings, video.bvid)["rpid"]) == expected_rpids(server, SMALL)
    assert main_state(settings, video.bvid)["floor_ctime"] != since


def test_max_comments_per_video_is_exact_and_a_larger_limit_goes_on(server, make_settings):
    settings, video = make_settings(), server.dataset.videos[SMALL]
    first = crawl(settings, bvids=[video.bvid], max_comments=100)
    assert len(comments_of(settings, video.bvid)) == 100 and first["comments"] == 100
    state = main_state(settings, video.bvid)
    assert state["status"] == "limit" and not state["is_end"]
    assert "max-comments-per-video 100" in state["message"]

    before = len(server.requests)
    same = crawl(settings, bvids=[video.bvid], max_comments=100)
    assert requests_to(server, MAIN, before) == [] and "limit 100" in same["skipped"][video.bvid]
    crawl(settings, bvids=[video.bvid], max_comments=140)
    assert len(comments_of(settings, video.bvid)) == 140
    crawl(settings, bvids=[video.bvid])
    assert set(comments_of(settings, video.bvid)["rpid"]) == expected_rpids(server, SMALL)
    assert main_state(settings, video.bvid)["status"] == "done"


def test_a_refused_saved_cursor_restarts_in_time_order_skipping_stored(server, make_settings):
    settings, video = make_settings(), server.dataset.videos[SMALL]
    crawl(settings, bvids=[video.bvid], max_comments=100)  # stops with a cursor mid-listing
    saved = main_state(settings, video.bvid)["cursor"]
    assert saved
    server.expire_cursors()
    fresh = [server.add_reply(SMALL, f"过期之后{i}") for i in range(3)]

    before = len(server.requests)
    result = crawl(settings, bvids=[video.bvid])
    mains = requests_to(server, MAIN, before)
    assert "session_id" in mains[0].params["pagination_str"]  # the saved cursor, refused
    assert mains[1].params["pagination_str"] == '{"offset":""}'  # then the top of the listing
    stored = comments_of(settings, video.bvid)
    assert set(stored["rpid"]) == expected_rpids(server, SMALL) and stored["rpid"].is_unique
    assert {r.rpid for r in fresh} <= set(stored["rpid"])
    assert result["comments"] == 178 - 100  # only what was missing was loaded
    state = main_state(settings, video.bvid)
    assert (state["status"], state["is_end"], state["skip_known"]) == ("done", True, False)


def test_discovered_videos_keep_source_and_reply_count_and_skip_when_nothing_is_new(
    server, make_settings, tmp_path
):
    settings, video = make_settings(), server.dataset.videos[SMALL]
    found = crawl(settings, popular_pages=1, min_reply=2000, discover_only=True)
    big = {v.bvid: v.reply_count for v in server.dataset.videos.values() if v.reply_count >= 2000}
    assert found["discovered"] == len(big) == 4 and found["pages"] == 0
    assert requests_to(server, MAIN) == []
    popular = table(settings, "SELECT bvid, reply_count, source FROM videos")
    assert dict(zip(popular["bvid"], popular["reply_count"])) == big
    assert set(popular["source"]) == {"popular"}

    keywords = tmp_path / "kw.txt"
    keywords.write_text("# 只找一个视频\nav841124054\n", encoding="utf-8")
    from emopulse.flows.steps import read_keywords

    before = len(server.requests)
    crawl(settings, keywords=read_keywords(keywords), search_pages=2)
    assert requests_to(server, VIEW, before) == []  # search gave the aid and the reply count
    sources = table(settings, f"SELECT source, reply_count FROM video_sources "
                              f"WHERE bvid = '{video.bvid}'")
    assert sources.to_dict("records") == [{"source": "search:av841124054", "reply_count": 175}]
    assert set(comments_of(settings, video.bvid)["rpid"]) == expected_rpids(server, SMALL)

    before = len(server.requests)
    again = crawl(settings, keywords=["av841124054"])
    assert again["up_to_date"] == 1 and again["pages"] == 0
    assert set(asked_after(server, before)) == {SEARCH}  # search alone: no view, no comments
    server.add_reply(SMALL, "又来一条")
    before = len(server.requests)
    crawl(settings, keywords=["av841124054"])
    assert [r.params["mode"] for r in requests_to(server, MAIN, before)] == ["2", "3"]
