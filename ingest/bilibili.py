"""The Bilibili source: generators of pages (dlt-style resources), the cursor an argument.

Each yielded page carries its `RawPage`; a page that fails to parse is yielded with `error` set
(raw kept) and the listing stops there. API errors (`errors.py`) are raised with `.raw`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

from . import parse
from .client import BilibiliClient
from .errors import ParseError
from .records import Comment, CommentPage, Emote, RawPage, Video, VideoPage

__all__ = [
    "comment_pages",
    "emote_panel",
    "fetch_video",
    "popular_pages",
    "reply_pages",
    "search_pages",
]

POPULAR = "/x/web-interface/popular"
SEARCH = "/x/web-interface/wbi/search/type"
VIEW = "/x/web-interface/view"
MAIN = "/x/v2/reply/wbi/main"
REPLY = "/x/v2/reply/reply"
EMOTE_PANEL = "/x/emote/user/panel/web"
PAGE_SIZE = 20
_SHAPE_ERRORS = (ParseError, KeyError, TypeError, ValueError, AttributeError)
_T = TypeVar("_T")


def popular_pages(
    client: BilibiliClient, *, max_pages: int, min_reply: int = 0
) -> Iterator[VideoPage]:
    """Pages of the popular list, keeping videos with at least `min_reply` comments."""
    for pn in range(1, max_pages + 1):
        params = {"pn": pn, "ps": PAGE_SIZE, "web_location": "333.934"}
        raw, read, error = _fetch(client, POPULAR, params, _read_popular, signed=True)
        if read is None:
            yield VideoPage(raw=raw, error=error)
            return
        videos, is_end = read
        keep = [v for v in videos if (v.reply_count or 0) >= min_reply]
        yield VideoPage(raw=raw, videos=keep, is_end=is_end)
        if is_end:
            return


def search_pages(
    client: BilibiliClient, keyword: str, *, order: str = "pubdate", max_pages: int
) -> Iterator[VideoPage]:
    """Pages of a keyword video search (20 per page) in `order`."""
    for page in range(1, max_pages + 1):
        params = {"search_type": "video", "keyword": keyword, "page": page, "order": order}
        read_page = partial(_read_search, keyword=keyword, page=page)
        raw, read, error = _fetch(client, SEARCH, params, read_page, signed=True)
        if read is None:
            yield VideoPage(raw=raw, error=error)
            return
        videos, is_end = read
        yield VideoPage(raw=raw, videos=videos, is_end=is_end)
        if is_end:
            return


def fetch_video(client: BilibiliClient, bvid: str) -> tuple[RawPage, Video]:
    """The `view` of one video (its `aid` keys the comments)."""
    raw, video, error = _fetch(client, VIEW, {"bvid": bvid}, parse.parse_view_video)
    if video is None:
        raise ParseError(f"{error} (bvid {bvid})", raw=raw)
    return raw, video


def comment_pages(
    client: BilibiliClient, *, bvid: str, aid: int, cursor: str | None = None
) -> Iterator[CommentPage]:
    """The cursor listing (time order) from `cursor` (None: the start, pinned replies too).

    Root replies, pinned ones and each reply's inline sub-reply preview become `Comment`s.
    Each page's `cursor` resumes after it; the last page has `is_end` and cursor None.
    """
    while True:
        params = {
            "type": 1,
            "oid": aid,
            "mode": 2,
            "pagination_str": json.dumps({"offset": cursor or ""}, separators=(",", ":")),
            "plat": 1,
            "web_location": 1315875,
        }
        read_page = partial(_read_main, bvid=bvid, first=cursor is None)
        raw, read, error = _fetch(client, MAIN, params, read_page, signed=True)
        if read is None:
            yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing="main", cursor=cursor,
                              error=error)
            return
        comments, emotes, cursor, is_end = read
        yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing="main", comments=comments,
                          emotes=emotes, cursor=cursor, is_end=is_end)
        if is_end:
            return


def reply_pages(
    client: BilibiliClient, *, bvid: str, aid: int, root: int, cursor: str | None = None
) -> Iterator[CommentPage]:
    """Every sub-reply of the root reply `root`, page by page; the cursor is the next `pn`."""
    listing = f"reply:{root}"
    pn = int(cursor or 1)
    while True:
        params = {"type": 1, "oid": aid, "root": root, "ps": PAGE_SIZE, "pn": pn}
        read_page = partial(_read_replies, bvid=bvid, pn=pn)
        raw, read, error = _fetch(client, REPLY, params, read_page)
        if read is None:
            yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing=listing, cursor=str(pn),
                              error=error)
            return
        comments, emotes, is_end = read
        pn += 1
        yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing=listing, comments=comments,
                          emotes=emotes, cursor=None if is_end else str(pn), is_end=is_end)
        if is_end:
            return


def emote_panel(client: BilibiliClient) -> tuple[RawPage, list[Emote]]:
    """The emote catalog visible to this client (free packages when logged out)."""
    raw, emotes, error = _fetch(client, EMOTE_PANEL, {"business": "reply"}, _read_panel)
    if emotes is None:
        raise ParseError(str(error), raw=raw)
    return raw, emotes


def _fetch(
    client: BilibiliClient,
    endpoint: str,
    params: Mapping[str, Any],
    read: Callable[[Any], _T],
    *,
    signed: bool = False,
) -> tuple[RawPage, _T | None, str | None]:
    """`(raw, read(data), None)`, or `(raw, None, why)` when the answer cannot be read."""
    try:
        payload, raw = client.get_json(endpoint, params, signed=signed)
    except ParseError as exc:
        if exc.raw is None:
            raise
        return exc.raw, None, str(exc)
    try:
        return raw, read(payload["data"]), None
    except _SHAPE_ERRORS as exc:
        return raw, None, f"{endpoint}: unexpected answer: {type(exc).__name__}: {exc}"


def _read_popular(data: Mapping[str, Any]) -> tuple[list[Video], bool]:
    videos = [parse.parse_popular_video(item) for item in data["list"] or []]
    return videos, bool(data.get("no_more")) or not videos


def _read_search(data: Mapping[str, Any], *, keyword: str, page: int) -> tuple[list[Video], bool]:
    results = [r for r in data.get("result") or [] if r.get("type", "video") == "video"]
    videos = [parse.parse_search_video(r, keyword=keyword) for r in results]
    return videos, page >= int(data.get("numPages") or 0) or not videos


def _read_main(
    data: Mapping[str, Any], *, bvid: str, first: bool
) -> tuple[list[Comment], list[Emote], str | None, bool]:
    """Comments, emotes, the cursor after this page (None at the end) and `is_end`."""
    replies = [(r, "api:main") for r in data.get("replies") or []]
    if first:
        replies = [(r, "api:top") for r in data.get("top_replies") or []] + replies
    comments, emotes = _comments(replies, bvid=bvid)
    next_offset = data["cursor"]["pagination_reply"].get("next_offset") or None
    is_end = bool(data["cursor"]["is_end"]) or next_offset is None
    return comments, emotes, None if is_end else next_offset, is_end


def _read_replies(
    data: Mapping[str, Any], *, bvid: str, pn: int
) -> tuple[list[Comment], list[Emote], bool]:
    replies = [(r, "api:reply") for r in data.get("replies") or []]
    comments, emotes = _comments(replies, bvid=bvid)
    return comments, emotes, not replies or pn * PAGE_SIZE >= int(data["page"]["count"])


def _read_panel(data: Mapping[str, Any]) -> list[Emote]:
    return [
        parse.parse_emote(e["text"], e, package_name=package.get("text"))
        for package in data["packages"] or []
        for e in package.get("emote") or []
    ]


def _comments(
    replies: list[tuple[Mapping[str, Any], str]], *, bvid: str
) -> tuple[list[Comment], list[Emote]]:
    """Comments of replies and their inline sub-reply previews, plus the emotes they use."""
    comments: list[Comment] = []
    emotes: dict[str, Emote] = {}
    for reply, source in replies:
        for item in [reply, *(reply.get("replies") or [])]:
            comments.append(parse.parse_comment(item, source=source, bvid=bvid))
            for token, info in (item["content"].get("emote") or {}).items():
                emotes.setdefault(token, parse.parse_emote(token, info))
    return comments, list(emotes.values())
