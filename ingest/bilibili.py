"""The Bilibili source: generators of pages (dlt-style resources), the cursor an argument.

Each yielded page carries its `RawPage`. A page that cannot be read (after the client's retries)
is yielded with `error` set (raw kept): listings paged by number go on with the next page, the
cursor listing stops there (its next cursor is in the unreadable page). One reply that cannot be
read is skipped and named in the page's `rejected`; the rest of its page loads. A page of the
cursor listing that is not its end but has no next cursor, and an empty page of a thread whose
count says replies are there, are soft blocks (`SoftBlocked`, retried by the client, then
raised), never the end. API errors (`errors.py`) are raised with
`.raw`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

from . import parse
from .client import BilibiliClient
from .errors import ParseError, SoftBlocked
from .records import Comment, CommentPage, Emote, RawPage, Video, VideoPage
from .window import Window

__all__ = [
    "comment_page_of",
    "comment_pages",
    "emote_packages",
    "emote_panel",
    "fetch_video",
    "hot_page",
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
EMOTE_PACKAGE = "/x/emote/package"
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
            continue
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
            continue
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
    client: BilibiliClient,
    *,
    bvid: str,
    aid: int,
    cursor: str | None = None,
    window: Window = Window(),
) -> Iterator[CommentPage]:
    """The cursor listing (time order) from `cursor` (None: the start, pinned replies too).

    Root replies, pinned ones and each reply's inline sub-reply preview become `Comment`s.
    Each page's `cursor` resumes after it; the last page has `is_end`, cursor None and `end`
    saying why: "end" of the listing, or where `window` ends it ("known", "since").
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
        raw, read, error = _fetch(client, MAIN, params, read_page, signed=True,
                                  check=_check_listing)
        if read is None:
            yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing="main", cursor=cursor,
                              error=error, start=cursor)
            return
        start = cursor
        comments, emotes, cursor, total, rejected = read
        comments, end = window.clip(comments)
        if end is None and cursor is None:
            end = "end"
        yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing="main", comments=comments,
                          emotes=emotes, cursor=None if end else cursor, is_end=end is not None,
                          start=start, total=total, end=end, rejected=rejected)
        if end:
            return


def hot_page(client: BilibiliClient, *, bvid: str, aid: int) -> CommentPage:
    """The first page of the listing by likes (mode 3), pinned replies too: the busiest roots.

    Old roots keep gathering replies where a time-ordered pass no longer looks; this page shows
    the most active of them with their reply counts. Its listing is "hot", read one page deep.
    """
    params = {"type": 1, "oid": aid, "mode": 3, "pagination_str": '{"offset":""}', "plat": 1,
              "web_location": 1315875}
    read_page = partial(_read_main, bvid=bvid, first=True)
    raw, read, error = _fetch(client, MAIN, params, read_page, signed=True, check=_check_listing)
    if read is None:
        return CommentPage(raw=raw, bvid=bvid, aid=aid, listing="hot", error=error)
    comments, emotes, _, total, rejected = read
    return CommentPage(raw=raw, bvid=bvid, aid=aid, listing="hot", comments=comments,
                       emotes=emotes, is_end=True, total=total, end="end", rejected=rejected)


def reply_pages(
    client: BilibiliClient,
    *,
    bvid: str,
    aid: int,
    root: int,
    cursor: str | None = None,
    expected: int | None = None,
) -> Iterator[CommentPage]:
    """Every sub-reply of the root reply `root`, page by page; the cursor is the next `pn`.

    An unreadable page is yielded with `error` and skipped while the thread's size (from an
    earlier page, else `expected`, the root's `rcount`) says more pages follow.
    """
    listing = f"reply:{root}"
    pn = int(cursor or 1)
    total = expected
    while True:
        params = {"type": 1, "oid": aid, "root": root, "ps": PAGE_SIZE, "pn": pn}
        read_page = partial(_read_replies, bvid=bvid)
        raw, read, error = _fetch(client, REPLY, params, read_page,
                                  check=partial(_check_thread, pn=pn, ps=PAGE_SIZE))
        if read is None:
            pn += 1
            yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing=listing, cursor=str(pn),
                              error=error, start=str(pn - 1))
            if total is None or (pn - 1) * PAGE_SIZE >= total:
                return
            continue
        comments, emotes, total, rejected, replies = read
        is_end = not replies or pn * PAGE_SIZE >= total
        pn += 1
        yield CommentPage(raw=raw, bvid=bvid, aid=aid, listing=listing, comments=comments,
                          emotes=emotes, cursor=None if is_end else str(pn), is_end=is_end,
                          start=str(pn - 1), total=total, end="end" if is_end else None,
                          rejected=rejected)
        if is_end:
            return


def comment_page_of(raw: RawPage, *, bvid: str) -> CommentPage:
    """Parse a landed answer of a comment listing again (a rebuild from `raw_pages`, a bench).

    Raises `ParseError` for an answer that is not a readable page of `MAIN` or `REPLY`.
    """
    try:
        data = json.loads(raw.body)["data"]
        aid = int(raw.params["oid"])
        if raw.endpoint == MAIN:
            start = json.loads(raw.params["pagination_str"])["offset"] or None
            if not _listing_goes_on(data):
                raise ParseError("not the end of the listing, yet no next cursor (soft block)")
            comments, emotes, cursor, total, rejected = _read_main(data, bvid=bvid,
                                                                   first=start is None)
            return CommentPage(raw, bvid, aid, "main", comments, emotes, cursor=cursor,
                               is_end=cursor is None, start=start, total=total,
                               end="end" if cursor is None else None, rejected=rejected)
        if raw.endpoint == REPLY:
            pn = int(raw.params["pn"])
            comments, emotes, total, rejected, replies = _read_replies(data, bvid=bvid)
            is_end = not replies or pn * PAGE_SIZE >= total
            return CommentPage(raw, bvid, aid, f"reply:{raw.params['root']}", comments, emotes,
                               cursor=None if is_end else str(pn + 1), is_end=is_end,
                               start=str(pn), total=total, end="end" if is_end else None,
                               rejected=rejected)
    except _SHAPE_ERRORS as exc:
        raise ParseError(f"{raw.endpoint}: not a readable comment page: {exc}", raw=raw) from exc
    raise ParseError(f"{raw.endpoint} is not a comment listing", raw=raw)


def emote_panel(client: BilibiliClient) -> tuple[RawPage, list[Emote]]:
    """The emote catalog visible to this client (free packages when logged out)."""
    raw, emotes, error = _fetch(client, EMOTE_PANEL, {"business": "reply"}, _read_panel)
    if emotes is None:
        raise ParseError(str(error), raw=raw)
    return raw, emotes


def emote_packages(client: BilibiliClient, ids: Iterable[int]) -> tuple[RawPage, list[Emote]]:
    """The emotes of the given packages (`/x/emote/package?ids=`), e.g. ones met in comments."""
    params = {"business": "reply", "ids": ",".join(str(i) for i in sorted(set(ids)))}
    raw, emotes, error = _fetch(client, EMOTE_PACKAGE, params, _read_panel)
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
    check: Callable[[dict[str, Any], RawPage], None] | None = None,
) -> tuple[RawPage, _T | None, str | None]:
    """`(raw, read(data), None)`, or `(raw, None, why)` when the answer cannot be read."""
    try:
        payload, raw = client.get_json(endpoint, params, signed=signed, check=check)
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


def _listing_goes_on(data: Any) -> bool:
    """False for a cursor-listing page that is not the end yet has no next cursor."""
    try:
        cursor = data["cursor"]
        if cursor["is_end"]:
            return True
        return bool((cursor.get("pagination_reply") or {}).get("next_offset"))
    except (KeyError, TypeError, AttributeError):
        return True  # not this check's business: the reader names the shape problem


def _check_listing(payload: dict[str, Any], raw: RawPage) -> None:
    """Refuse a soft-blocked page of the cursor listing (`SoftBlocked`, retried by the client)."""
    if not _listing_goes_on(payload.get("data")):
        raise SoftBlocked(0, "the listing is not at its end, yet the page has no next cursor "
                          "and no replies: risk control (soft block)", raw.endpoint, raw=raw)


def _check_thread(payload: dict[str, Any], raw: RawPage, *, pn: int, ps: int) -> None:
    """Refuse an empty page of a sub-reply thread whose own count says replies are there."""
    try:
        data = payload["data"]
        replies, count = data.get("replies"), int(data["page"]["count"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return  # the reader names the shape problem
    if not replies and count > (pn - 1) * ps:
        raise SoftBlocked(0, f"page {pn} of a thread of {count} replies came back empty: risk "
                          "control (soft block)", raw.endpoint, raw=raw)


def _read_main(
    data: Mapping[str, Any], *, bvid: str, first: bool
) -> tuple[list[Comment], list[Emote], str | None, int | None, list[str]]:
    """Comments, emotes, the cursor after this page (None at the end), `all_count` and the
    replies skipped as unreadable."""
    replies = [(r, "api:main") for r in data.get("replies") or []]
    if first:
        replies = [(r, "api:top") for r in data.get("top_replies") or []] + replies
    comments, emotes, rejected = _comments(replies, bvid=bvid)
    cursor = data["cursor"]
    next_offset = (cursor.get("pagination_reply") or {}).get("next_offset") or None
    is_end = bool(cursor["is_end"]) or next_offset is None
    total = cursor.get("all_count")
    return (comments, emotes, None if is_end else next_offset,
            None if total is None else int(total), rejected)


def _read_replies(
    data: Mapping[str, Any], *, bvid: str
) -> tuple[list[Comment], list[Emote], int, list[str], int]:
    """Comments, emotes, the thread's size (`page.count`), the replies skipped as unreadable
    and how many replies the page held (readable or not)."""
    replies = [(r, "api:reply") for r in data.get("replies") or []]
    comments, emotes, rejected = _comments(replies, bvid=bvid)
    return comments, emotes, int(data["page"]["count"]), rejected, len(replies)


def _read_panel(data: Mapping[str, Any]) -> list[Emote]:
    return [
        parse.parse_emote(e["text"], e, package_name=package.get("text"))
        for package in data["packages"] or []
        for e in package.get("emote") or []
    ]


def _comments(
    replies: list[tuple[Mapping[str, Any], str]], *, bvid: str
) -> tuple[list[Comment], list[Emote], list[str]]:
    """Comments of replies and their inline sub-reply previews, the emotes they use, and why
    each reply that could not be read was skipped (the others are kept)."""
    comments: list[Comment] = []
    emotes: dict[str, Emote] = {}
    rejected: list[str] = []
    for reply, source in replies:
        previews = reply.get("replies") if isinstance(reply, Mapping) else None
        for item in [reply, *(previews if isinstance(previews, list) else [])]:
            try:
                comment = parse.parse_comment(item, source=source, bvid=bvid)
                used = {token: parse.parse_emote(token, info)
                        for token, info in (item["content"].get("emote") or {}).items()}
            except _SHAPE_ERRORS as exc:
                rpid = item.get("rpid") if isinstance(item, Mapping) else None
                rejected.append(f"reply {rpid if rpid is not None else '(no rpid)'}: {exc}")
                continue
            comments.append(comment)
            for token, emote in used.items():
                emotes.setdefault(token, emote)
    return comments, list(emotes.values()), rejected
