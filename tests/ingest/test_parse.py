"""Pure parsing: tokens, sentences and reply objects → Comment records."""

import pytest

from emopulse.ingest import ParseError, extract_tokens, parse_comment, strip_tokens
from emopulse.ingest.parse import emoji_name, parse_search_video


def emote(emote_id: int, text: str) -> dict:
    return {"id": emote_id, "package_id": 1, "state": 0, "type": 1, "text": text,
            "url": f"https://i0.hdslb.com/bfs/emote/{emote_id}.png", "meta": {"size": 1}}


def reply(message: str, emotes: dict | None = None, **extra: object) -> dict:
    content: dict = {"message": message, "members": []}
    if emotes is not None:
        content["emote"] = emotes
    base = {"rpid": 101, "oid": 170001, "type": 1, "mid": 42, "root": 0, "parent": 0,
            "ctime": 1700000000, "like": 7, "rcount": 0, "replies": None,
            "member": {"mid": "42", "uname": "小明"}, "content": content}
    return {**base, **extra}


def test_extract_tokens_in_order_with_repeats() -> None:
    assert extract_tokens("a[doge]b[笑哭][doge] [热词系列_知识增加]") == [
        "[doge]", "[笑哭]", "[doge]", "[热词系列_知识增加]"]
    assert extract_tokens("no tokens [] here") == []


def test_strip_tokens_all_or_given_and_tidies_whitespace() -> None:
    text = "好耶[doge]  真的[自创]\n[笑哭] ok"
    assert strip_tokens(text) == "好耶 真的 ok"
    assert strip_tokens(text, ["[doge]", "[笑哭]"]) == "好耶 真的[自创] ok"
    assert strip_tokens(text, []) == "好耶[doge] 真的[自创] [笑哭] ok"
    assert emoji_name("[脱单doge]") == "脱单doge"


def test_several_emotes_repeated_tokens_and_unknown_brackets() -> None:
    message = "[doge]今天[笑哭][笑哭]不错[doge][doge][我编的]"
    comment = parse_comment(
        reply(message, {"[doge]": emote(26, "[doge]"), "[笑哭]": emote(27, "[笑哭]")}),
        source="api:main", bvid="BV17x411w7KC",
    )
    by_alt = {e.emoji_alt: e for e in comment.emotes}
    assert set(by_alt) == {"[doge]", "[笑哭]"}  # [我编的] is text, not an emote
    assert by_alt["[doge]"].occurrences == 3
    assert by_alt["[笑哭]"].occurrences == 2
    assert (by_alt["[doge]"].emote_id, by_alt["[doge]"].package_id) == (26, 1)
    assert by_alt["[doge]"].emoji_name == "doge" and by_alt["[doge]"].rpid == 101
    assert comment.sentence == "今天 不错 [我编的]"
    assert comment.message == message


def test_reply_fields() -> None:
    comment = parse_comment(reply("hi", root=5, parent=6, rcount=3), source="api:reply",
                            bvid="BV17x411w7KC")
    assert (comment.rpid, comment.aid, comment.bvid) == (101, 170001, "BV17x411w7KC")
    assert (comment.root, comment.parent, comment.rcount) == (5, 6, 3)
    assert comment.mid == "42" and isinstance(comment.mid, str)
    assert (comment.uname, comment.ctime, comment.likes) == ("小明", 1700000000, 7)
    assert comment.source == "api:reply"
    assert comment.emotes == () and comment.sentence == "hi"


def test_no_emote_map_means_no_emotes_even_with_brackets() -> None:
    comment = parse_comment(reply("看起来像[doge]"), source="api:main")
    assert comment.emotes == ()
    assert comment.sentence == "看起来像[doge]"


def test_missing_fields_raise_parse_error() -> None:
    broken = reply("x")
    del broken["content"]
    with pytest.raises(ParseError, match="reply object"):
        parse_comment(broken, source="api:main")


def test_search_title_loses_keyword_tags_and_entities() -> None:
    item = {"type": "video", "aid": 170001, "bvid": "BV17x411w7KC", "author": "up", "mid": 9,
            "title": '<em class="keyword">鬼畜</em>全明星 &amp; <em class="keyword">鬼畜</em>',
            "review": 1234, "play": 99, "pubdate": 1600000000}
    video = parse_search_video(item, keyword="鬼畜")
    assert video.title == "鬼畜全明星 & 鬼畜"
    assert (video.reply_count, video.view_count, video.source) == (1234, 99, "search:鬼畜")
