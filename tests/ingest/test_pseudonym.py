"""Keyed pseudonyms for commenters, in parsed answers and raw bodies alike."""

from __future__ import annotations

import json

import pytest

from emopulse.ingest import Pseudonymiser, parse_comment
from emopulse.ingest.localserver.shapes import mid_of

REPLY = {
    "rpid": 7, "oid": 170001, "mid": 123, "mid_str": "123", "root": 0, "parent": 0, "ctime": 1,
    "member": {"mid": "123", "uname": "甲", "avatar": "a.jpg"},
    "content": {"message": "回复 @乙 :好[doge]", "members": [{"mid": "456", "uname": "乙"}]},
    "replies": [{"rpid": 8, "oid": 170001, "mid": 456, "root": 7, "parent": 7, "ctime": 2,
                 "member": {"mid": "456", "uname": "乙"}, "content": {"message": "嗯"}}],
}
ANSWER = {"code": 0, "data": {"replies": [REPLY], "upper": {"mid": 999},
                              "owner": {"mid": 999, "name": "UP主"}}}


def test_commenters_are_renamed_consistently_and_owners_kept():
    hasher = Pseudonymiser("k")
    out = hasher.scrub(ANSWER)
    reply = out["data"]["replies"][0]
    assert reply["mid"] == reply["mid_str"] == reply["member"]["mid"] == hasher.mid(123)
    assert reply["member"]["uname"] == hasher.uname("甲")
    assert reply["replies"][0]["member"]["mid"] == hasher.mid("456")
    assert reply["content"]["message"] == f"回复 @{hasher.uname('乙')} :好[doge]"
    assert out["data"]["upper"] == {"mid": 999} and out["data"]["owner"]["name"] == "UP主"
    assert ANSWER["data"]["replies"][0]["member"]["uname"] == "甲"  # the input is untouched
    comment = parse_comment(reply, source="api:main")
    assert (comment.mid, comment.uname) == (hasher.mid(123), hasher.uname("甲"))


def test_the_key_matters_and_never_shows():
    assert Pseudonymiser("k").mid(1) != Pseudonymiser("other").mid(1)
    assert Pseudonymiser("k").mid(1) != Pseudonymiser("k").uname(1)
    assert "k" not in repr(Pseudonymiser("k")).replace("key", "")
    with pytest.raises(ValueError, match="empty"):
        Pseudonymiser("")


def test_bodies_that_are_not_json_are_scrubbed_too():
    hasher = Pseudonymiser("k")
    truncated = json.dumps(ANSWER, ensure_ascii=False)[:200]
    scrubbed = hasher.scrub_text(truncated)
    assert "甲" not in scrubbed and "123" not in scrubbed
    assert scrubbed.startswith('{"code":0,"data":{"replies":[]}}')  # the reply it was cut in is dropped


# A reply as the local server (and Bilibili) sends it: a full profile, an @-mention with its
# members entry and at_name_to_mid, the IP region, a sub-reply preview that answers a sub-reply.
def _full_reply() -> dict:
    from emopulse.ingest.localserver.dataset import Reply
    from emopulse.ingest.localserver.shapes import reply_json

    child = Reply(rpid=12, aid=170001, mid=456, uname="乙", message="回复 @丙 :同意", like=0,
                  ctime=3, root=11, parent=11, location="上海")
    root = Reply(rpid=11, aid=170001, mid=123, uname="甲", message="@丁 你看[doge]", like=1,
                 ctime=2, location="北京", children=[child])
    out = reply_json(root, "http://h")
    out["fansgrade"], out["card_label"] = 1, [{"rpid": 11, "text_content": "UP主觉得很赞"}]
    return out


def _strings(value) -> list:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value]


def test_a_reply_keeps_only_what_names_nobody():
    hasher = Pseudonymiser("k")
    original = _full_reply()
    assert original["member"]["avatar"] and original["member"]["sign"] is not None
    out = hasher.scrub({"code": 0, "data": {"replies": [original], "upper": {"mid": 999}}})
    reply = out["data"]["replies"][0]
    assert reply["member"] == {"mid": hasher.mid(123), "uname": hasher.uname("甲")}
    assert reply["content"]["members"] == [{"mid": hasher.mid(mid_of("丁")), "uname": hasher.uname("丁")}]
    assert reply["content"]["at_name_to_mid"] == {hasher.uname("丁"): hasher.mid(mid_of("丁"))}
    assert reply["content"]["message"] == f"@{hasher.uname('丁')} 你看[doge]"
    assert reply["content"]["emote"]["[doge]"]["text"] == "[doge]"  # emotes are kept
    sub = reply["replies"][0]
    assert sub["member"] == {"mid": hasher.mid(456), "uname": hasher.uname("乙")}
    assert sub["content"]["message"] == f"回复 @{hasher.uname('丙')} :同意"  # no members entry needed
    for gone in ("up_action", "fansgrade", "card_label"):
        assert gone not in reply
    assert reply["reply_control"] == {"time_desc": original["reply_control"]["time_desc"]}
    assert out["data"]["upper"] == {"mid": 999}
    everything = _strings(out)
    for name in ("甲", "乙", "丙", "丁", "123", "456", 123, 456, mid_of("丁"), str(mid_of("丁"))):
        assert name not in everything
    assert not [s for s in everything if isinstance(s, str) and ("http://h/bfs/face" in s or "签名" in s
                                                                 or "IP属地" in s or "@丁" in s)]
    assert parse_comment(reply, source="api:main").uname == hasher.uname("甲")


def test_a_person_outside_a_reply_loses_the_profile_and_keeps_the_rest():
    hasher = Pseudonymiser("k")
    nav = {"code": 0, "data": {"isLogin": True, "mid": 42, "uname": "我", "face": "http://h/me.jpg",
                               "wallet": {"mid": 42}, "wbi_img": {"img_url": "i", "sub_url": "s"}}}
    data = hasher.scrub(nav)["data"]
    assert data == {"isLogin": True, "mid": hasher.mid(42), "uname": hasher.uname("我"),
                    "wbi_img": {"img_url": "i", "sub_url": "s"}}


def test_an_answer_cut_short_is_closed_scrubbed_and_loses_the_reply_it_was_cut_in():
    hasher = Pseudonymiser("k")
    first, second = _full_reply(), _full_reply()
    second["rpid"] = 13
    answer = {"code": 0, "data": {"replies": [first, second]}}
    body = json.dumps(answer, ensure_ascii=False)
    cut = body[: body.rindex('"members"')]  # the second reply's mention is cut from its members
    scrubbed = hasher.scrub_text(cut)
    assert "cut short" in scrubbed and "@丁" not in scrubbed and "丁" not in scrubbed
    readable = json.loads(scrubbed[: scrubbed.index("\n[emopulse")])
    assert [r["rpid"] for r in readable["data"]["replies"]] == [11]  # the cut one is dropped
    assert readable["data"]["replies"][0]["member"]["uname"] == hasher.uname("甲")
    with pytest.raises(ValueError):
        json.loads(scrubbed)  # still stored as a body, never as a payload
    html = '<html>{"mid": 5, "uname": "甲", "avatar": "http://h/a.jpg"}</html>'
    assert hasher.scrub_text(html) == (f'<html>{{"mid": "{hasher.mid(5)}", "uname": '
                                       f'"{hasher.uname("甲")}", "avatar": ""}}</html>')
