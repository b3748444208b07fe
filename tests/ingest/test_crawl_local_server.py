"""The real client crawling the local server over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections import Counter

import pytest

from emopulse.ingest import (
    Blocked,
    comment_pages,
    emote_panel,
    fetch_video,
    popular_pages,
    reply_pages,
    search_pages,
)
from emopulse.ingest.localserver import Fault
from emopulse.ingest.localserver.shapes import PREVIEW

AID = 841124054  # 175 comments: 127 roots on 7 pages; the pinned one has 22 sub-replies
MAIN = "/x/v2/reply/wbi/main"
NAV = "/x/web-interface/nav"


def crawl_main(client, video, cursor=None):
    return list(comment_pages(client, bvid=video.bvid, aid=video.aid, cursor=cursor))


def test_crawl_a_video_completely(server, make_client):
    client = make_client(server.url)
    raw, video = fetch_video(client, server.dataset.videos[AID].bvid)
    assert (video.aid, raw.http_status, raw.code) == (AID, 200, 0)
    expected = server.dataset.videos[AID]

    pages = crawl_main(client, video)
    assert [p.is_end for p in pages] == [False] * (len(pages) - 1) + [True]
    assert all(p.error is None and p.raw.code == 0 for p in pages)
    listed = [c for p in pages for c in p.comments]
    counts = Counter(c.rpid for c in listed)
    assert max(counts.values()) == 1  # every comment at most once
    pinned = [c for c in listed if c.source == "api:top" and c.root == 0]
    assert [c.rpid for c in pinned] == [expected.pinned.rpid]
    roots = [c for c in listed if c.root == 0]
    assert len(roots) == len(expected.roots) + 1

    rest = []
    for root in roots:
        if root.rcount > PREVIEW:
            rest += [c for p in reply_pages(client, bvid=video.bvid, aid=AID, root=root.rpid)
                     for c in p.comments]
    assert len(rest) > 20  # the sub-reply listing took more than one page
    crawled = {c.rpid: c for c in listed + rest}
    assert set(crawled) == set(expected.replies)  # every comment of the video
    for rpid, comment in crawled.items():
        source = expected.replies[rpid]
        assert (comment.message, comment.likes, comment.uname) == (
            source.message, source.like, source.uname)
        assert (comment.root, comment.ctime, comment.bvid) == (source.root, source.ctime,
                                                                video.bvid)
    with_emotes = [c for c in crawled.values() if c.emotes]
    assert with_emotes and all(e.emote_id and e.package_id == 1 for c in with_emotes
                               for e in c.emotes)
    emote_urls = {e.url for p in pages for e in p.emotes}
    assert emote_urls and all(u.startswith(server.url + "/bfs/emote/") for u in emote_urls)


def test_resuming_from_a_page_cursor_finishes_without_duplicates(server, make_client):
    client = make_client(server.url)
    video = server.dataset.videos[AID]
    full = {c.rpid for p in crawl_main(client, video) for c in p.comments}
    first_two = []
    for page in comment_pages(client, bvid=video.bvid, aid=AID):
        first_two.append(page)
        if len(first_two) == 2:
            break
    resumed = crawl_main(client, video, cursor=first_two[-1].cursor)
    rpids = [c.rpid for p in first_two + resumed for c in p.comments]
    assert len(rpids) == len(set(rpids)) and set(rpids) == full


def test_rotated_keys_give_403_and_the_client_refreshes_them(server, make_client):
    client = make_client(server.url)
    video = server.dataset.videos[AID]
    pages = comment_pages(client, bvid=video.bvid, aid=AID)
    first = next(pages)
    server.rotate_wbi_keys()
    rest = list(pages)
    assert rest[-1].is_end and all(p.error is None for p in rest)
    assert sum(r.path == NAV for r in server.requests) == 2
    main_answers = [r for r in server.requests if r.path == MAIN]
    assert len(main_answers) == len(rest) + 2  # one request refused with -403, then retried
    rpids = [c.rpid for p in [first, *rest] for c in p.comments]
    assert len(rpids) == len(set(rpids))


def test_risk_control_and_rate_limits_are_retried(server, make_client, sleeps):
    server.inject(Fault("code:-352", at=MAIN), Fault("code:-799", at=MAIN),
                  Fault("http500", at=MAIN))
    video = server.dataset.videos[AID]
    pages = crawl_main(make_client(server.url, max_retries=3), video)
    assert pages[-1].is_end and all(p.error is None for p in pages)
    assert len(sleeps) == 3  # three backoffs
    assert sum(r.path == NAV for r in server.requests) == 2  # keys refreshed after -352


def test_truncated_page_is_retried_then_reported_and_resumable(server, make_client):
    video = server.dataset.videos[AID]
    client = make_client(server.url, max_retries=1)
    server.inject(Fault("truncated", at=MAIN, times=2))
    (bad,) = crawl_main(client, video)
    assert bad.error and bad.raw.code is None and bad.raw.body.startswith('{"code": 0')
    assert bad.cursor is None and not bad.is_end  # retry from the start
    assert crawl_main(client, video)[-1].is_end


def test_http_412_page_raises_blocked(server, make_client):
    server.inject(Fault("http412", at=MAIN))
    video = server.dataset.videos[AID]
    with pytest.raises(Blocked) as caught:
        crawl_main(make_client(server.url), video)
    assert caught.value.raw.http_status == 412 and "<html" in caught.value.raw.body


def test_discovery_and_emote_panel(server, make_client):
    client = make_client(server.url)
    (page,) = popular_pages(client, max_pages=3, min_reply=1000)
    assert page.is_end and {v.aid for v in page.videos} == {
        aid for aid, v in server.dataset.videos.items() if v.reply_count >= 1000}
    found = [v for p in search_pages(client, "鬼畜", max_pages=2) for v in p.videos]
    assert found and all("<em" not in v.title for v in found)
    assert [v.pubdate for v in found] == sorted((v.pubdate for v in found), reverse=True)
    raw, emotes = emote_panel(client)
    assert raw.code == 0 and len(emotes) >= 40
    assert all(e.url.startswith(server.url) and e.package_name == "小黄脸" for e in emotes)
