"""Keyed pseudonyms for commenters, in parsed answers and raw bodies alike."""

from __future__ import annotations

import json

import pytest

from emopulse.ingest import Pseudonymiser, parse_comment

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
    assert '"uname": "甲"' not in scrubbed and '"mid": 123' not in scrubbed
    assert hasher.mid("123") in scrubbed
