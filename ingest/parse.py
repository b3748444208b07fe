"""Pure functions from Bilibili JSON (and comment text) to the records of `records.py`.

Shape problems raise `ParseError` naming what is missing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .errors import ParseError
from .records import Comment, CommentEmote, Emote, Video

__all__ = [
    "EMOTE_TOKEN",
    "emoji_name",
    "extract_tokens",
    "parse_comment",
    "parse_emote",
    "parse_popular_video",
    "parse_search_video",
    "parse_view_video",
    "strip_tokens",
]

EMOTE_TOKEN = re.compile(r"\[[^\[\]\r\n]{1,32}\]")
_KEYWORD_TAG = re.compile(r"</?em[^>]*>")


def extract_tokens(text: str) -> list[str]:
    """Every `[xxx]` token in `text`, in order, with repeats (emote or not)."""
    return EMOTE_TOKEN.findall(text)


def strip_tokens(text: str, tokens: Iterable[str] | None = None) -> str:
    """`text` without the given tokens (every `[xxx]` token when None), whitespace tidied."""
    if tokens is None:
        text = EMOTE_TOKEN.sub(" ", text)
    else:
        for token in tokens:
            text = text.replace(token, " ")
    return " ".join(text.split())


def emoji_name(token: str) -> str:
    """`"[doge]"` → `"doge"`."""
    return token[1:-1]


@contextmanager
def _shape(what: str) -> Iterator[None]:
    """Turn a missing key or a wrong type while reading `what` into a `ParseError`."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ParseError(f"unexpected {what}: {type(exc).__name__}: {exc}") from exc


def parse_emote(token: str, info: Mapping[str, Any], *, package_name: str | None = None) -> Emote:
    """A catalog `Emote` from one `content.emote` (or emote panel) entry."""
    with _shape(f"emote {token}"):
        return Emote(
            emoji_alt=token,
            emoji_name=emoji_name(token),
            emote_id=int(info["id"]),
            package_id=int(info["package_id"]),
            package_name=package_name,
            url=info.get("url"),
        )


def parse_comment(reply: Mapping[str, Any], *, source: str, bvid: str | None = None) -> Comment:
    """A `Comment` from one reply object; emotes come from `content.emote` only."""
    with _shape("reply object"):
        rpid = int(reply["rpid"])
        content = reply["content"]
        message = content["message"]
        emote_map: Mapping[str, Any] = content.get("emote") or {}
        emotes = tuple(
            CommentEmote(
                rpid=rpid,
                emoji_alt=token,
                emoji_name=emoji_name(token),
                emote_id=int(info["id"]),
                package_id=int(info["package_id"]),
                occurrences=message.count(token),
            )
            for token, info in emote_map.items()
            if token in message
        )
        mid = reply.get("mid") or (reply.get("member") or {}).get("mid")
        return Comment(
            rpid=rpid,
            message=message,
            sentence=strip_tokens(message, emote_map.keys()),
            source=source,
            bvid=bvid,
            aid=int(reply["oid"]),
            root=int(reply.get("root") or 0),
            parent=int(reply.get("parent") or 0),
            mid=None if mid is None else str(mid),
            uname=(reply.get("member") or {}).get("uname"),
            ctime=int(reply["ctime"]),
            likes=int(reply.get("like") or 0),
            rcount=int(reply.get("rcount") or 0),
            emotes=emotes,
        )


def parse_popular_video(item: Mapping[str, Any]) -> Video:
    """A `Video` from one `data.list[]` item of `/x/web-interface/popular`."""
    with _shape("popular item"):
        stat, owner = item.get("stat") or {}, item.get("owner") or {}
        return Video(
            bvid=item["bvid"],
            aid=int(item["aid"]),
            title=item.get("title"),
            owner_mid=owner.get("mid"),
            owner_name=owner.get("name"),
            pubdate=item.get("pubdate"),
            reply_count=stat.get("reply"),
            view_count=stat.get("view"),
            source="popular",
        )


def parse_search_video(item: Mapping[str, Any], *, keyword: str) -> Video:
    """A `Video` from one video result of `/x/web-interface/wbi/search/type`."""
    with _shape("search result"):
        return Video(
            bvid=item["bvid"],
            aid=int(item["aid"]),
            title=html.unescape(_KEYWORD_TAG.sub("", item.get("title") or "")),
            owner_mid=item.get("mid"),
            owner_name=item.get("author"),
            pubdate=item.get("pubdate"),
            reply_count=item.get("review"),
            view_count=item.get("play"),
            source=f"search:{keyword}",
        )


def parse_view_video(data: Mapping[str, Any]) -> Video:
    """A `Video` from the `data` of `/x/web-interface/view`."""
    with _shape("view data"):
        stat, owner = data.get("stat") or {}, data.get("owner") or {}
        return Video(
            bvid=data["bvid"],
            aid=int(data["aid"]),
            title=data.get("title"),
            owner_mid=owner.get("mid"),
            owner_name=owner.get("name"),
            pubdate=data.get("pubdate"),
            reply_count=stat.get("reply"),
            view_count=stat.get("view"),
            source="explicit",
        )
