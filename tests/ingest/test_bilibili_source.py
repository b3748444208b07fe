"""The source generators over scripted answers: cursors, null replies, unreadable pages."""

from __future__ import annotations

import json

import httpx
import pytest

from emopulse.ingest import NotFound, comment_pages, emote_panel, fetch_video, popular_pages

from fakeapi import FakeApi, api

NEXT = json.dumps({"type": 3, "direction": 1, "Data": {"cursor": 200}})


def reply(rpid: int, message: str = "hi", *, replies: list | None = None, root: int = 0) -> dict:
    return {"rpid": rpid, "oid": 170001, "mid": rpid * 10, "root": root, "parent": root,
            "ctime": 1700000000 + rpid, "like": 1, "rcount": len(replies or []),
            "member": {"mid": str(rpid * 10), "uname": f"u{rpid}"},
            "content": {"message": message}, "replies": replies}


def main_page(replies, *, top=None, next_offset: str | None = None) -> httpx.Response:
    end = next_offset is None
    cursor = {"all_count": 9, "is_begin": top is not None, "is_end": end, "mode": 2,
              "pagination_reply": {} if end else {"next_offset": next_offset}}
    return api(0, {"cursor": cursor, "replies": replies, "top_replies": top})


def pagination(request: httpx.Request) -> dict:
    return json.loads(request.url.params["pagination_str"])


def test_comment_pages_walk_the_cursor_with_pinned_previews_and_null_replies(make_client):
    fake = FakeApi([
        main_page([reply(300, replies=[reply(301, root=300)]), reply(200)],
                  top=[reply(100)], next_offset=NEXT),
        main_page(None),  # the last page: `replies` is null
    ])
    pages = list(comment_pages(make_client(transport=fake.transport), bvid="BV17x411w7KC",
                               aid=170001))
    assert [p.cursor for p in pages] == [NEXT, None]
    assert [p.is_end for p in pages] == [False, True]
    first = pages[0].comments
    assert [c.rpid for c in first] == [100, 300, 301, 200]
    assert [c.source for c in first] == ["api:top", "api:main", "api:main", "api:main"]
    assert first[2].root == 300 and first[0].bvid == "BV17x411w7KC"
    assert pages[1].comments == [] and pages[1].error is None
    sent = [r for r in fake.requests if r.url.path == "/x/v2/reply/wbi/main"]
    assert pagination(sent[0]) == {"offset": ""}
    assert pagination(sent[1]) == {"offset": NEXT}
    assert sent[1].url.params["mode"] == "2" and sent[1].url.params["oid"] == "170001"
    assert pages[1].raw.params["pagination_str"] == json.dumps({"offset": NEXT},
                                                               separators=(",", ":"))


def test_resuming_from_a_cursor_skips_pinned_replies(make_client):
    fake = FakeApi([main_page([reply(150)], top=[reply(100)])])
    pages = list(comment_pages(make_client(transport=fake.transport), bvid="BV1", aid=1,
                               cursor=NEXT))
    assert [c.rpid for c in pages[0].comments] == [150]


def test_an_unreadable_page_is_retried_then_yielded_with_its_raw_body_and_stops(make_client):
    truncated = '{"code":0,"data":{"cursor":{"is_e'
    fake = FakeApi([main_page([reply(300)], next_offset=NEXT),
                    httpx.Response(200, text=truncated), httpx.Response(200, text=truncated)])
    client = make_client(transport=fake.transport, max_retries=1)
    pages = list(comment_pages(client, bvid="BV1", aid=1))
    assert len(pages) == 2 and pages[0].error is None
    bad = pages[1]
    assert "not JSON" in bad.error and bad.comments == []
    assert bad.raw.body == truncated and bad.raw.code is None
    assert bad.cursor == bad.start == NEXT and not bad.is_end  # resuming retries the same page
    assert not fake.script


def test_an_unreadable_page_that_reads_on_a_retry_is_not_an_error(make_client):
    fake = FakeApi([httpx.Response(200, text="<html>busy</html>"), main_page([reply(300)])])
    (page,) = comment_pages(make_client(transport=fake.transport), bvid="BV1", aid=1)
    assert page.error is None and [c.rpid for c in page.comments] == [300]
    assert page.is_end and page.end == "end" and page.total == 9


def test_a_page_of_the_wrong_shape_is_reported(make_client):
    fake = FakeApi([api(0, {"replies": [reply(1)]})])  # no cursor
    (page,) = comment_pages(make_client(transport=fake.transport), bvid="BV1", aid=1)
    assert "unexpected answer" in page.error and page.raw.code == 0 and page.comments == []


def test_api_errors_propagate_with_the_raw_page(make_client):
    fake = FakeApi([api(-404, None, "啥都木有")])
    with pytest.raises(NotFound) as caught:
        fetch_video(make_client(transport=fake.transport), "BV1xx")
    assert caught.value.raw.params == {"bvid": "BV1xx"}


def test_popular_pages_filter_by_reply_count_and_stop_at_no_more(make_client):
    def item(aid: int, replies: int) -> dict:
        return {"aid": aid, "bvid": f"BV{aid}", "title": "t", "pubdate": 1,
                "owner": {"mid": 2, "name": "up"}, "stat": {"reply": replies, "view": 5}}

    fake = FakeApi([api(0, {"list": [item(1, 10), item(2, 500)], "no_more": False}),
                    api(0, {"list": [item(3, 900)], "no_more": True})])
    pages = list(popular_pages(make_client(transport=fake.transport), max_pages=5,
                               min_reply=100))
    assert [[v.aid for v in p.videos] for p in pages] == [[2], [3]]
    assert pages[-1].is_end and pages[0].videos[0].source == "popular"


def test_emote_panel_reads_packages(make_client):
    fake = FakeApi([api(0, {"packages": [{"id": 1, "text": "小黄脸", "emote": [
        {"id": 26, "package_id": 1, "text": "[doge]", "url": "u"}]}]})])
    raw, emotes = emote_panel(make_client(transport=fake.transport))
    assert raw.params == {"business": "reply"}
    assert [(e.emoji_alt, e.emoji_name, e.emote_id, e.package_name) for e in emotes] == [
        ("[doge]", "doge", 26, "小黄脸")]
