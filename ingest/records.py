"""Plain records that `ingest` yields and `warehouse` loads.

They know nothing of DuckDB: each is a frozen dataclass of Python values, so a crawler, a file
importer or a test can build them, and the warehouse turns batches of them into Arrow tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Comment", "CommentEmote", "CommentPage", "Emote", "RawPage", "Video", "VideoPage"]


@dataclass(frozen=True, slots=True)
class RawPage:
    """One HTTP answer exactly as received, with how it was asked for (secrets removed)."""

    endpoint: str  # URL path, e.g. "/x/v2/reply/wbi/main"
    params: dict[str, Any]  # query parameters without w_rid/wts and without any cookie
    fetched_at: datetime  # timezone-aware UTC
    http_status: int
    code: int | None  # the API's `code`, None when the body was not JSON
    body: str  # the body text as received


@dataclass(frozen=True, slots=True)
class Emote:
    """A catalog entry: one emote of one package, keyed by its token text like `[doge]`."""

    emoji_alt: str  # "[doge]"
    emoji_name: str  # "doge"
    emote_id: int | None = None
    package_id: int | None = None
    package_name: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class CommentEmote:
    """An emote used in a comment, with how many times its token occurs in the message."""

    rpid: int
    emoji_alt: str
    emoji_name: str
    emote_id: int | None = None
    package_id: int | None = None
    occurrences: int = 1


@dataclass(frozen=True, slots=True)
class Comment:
    """A Bilibili reply (or a row of a comment file), keyed by `rpid`."""

    rpid: int  # the reply id; file rows without one get a stable negative synthetic id
    message: str
    sentence: str  # message with every emote token removed: the text a model may see
    source: str  # "api:<listing>" or "file:<name>"
    bvid: str | None = None
    aid: int | None = None
    root: int = 0
    parent: int = 0
    mid: str | None = None
    uname: str | None = None
    ctime: int | None = None  # Unix seconds
    likes: int | None = None
    rcount: int | None = None
    emotes: tuple[CommentEmote, ...] = ()


@dataclass(frozen=True, slots=True)
class Video:
    bvid: str
    aid: int | None = None
    title: str | None = None
    owner_mid: int | None = None
    owner_name: str | None = None
    pubdate: int | None = None  # Unix seconds
    reply_count: int | None = None
    view_count: int | None = None
    source: str | None = None  # "popular", "search:<keyword>", "explicit", "file:<name>"


@dataclass(frozen=True, slots=True)
class VideoPage:
    """One page of a discovery listing (popular or search) and the videos parsed from it."""

    raw: RawPage
    videos: list[Video] = field(default_factory=list)
    is_end: bool = False
    error: str | None = None  # why the page could not be parsed; `videos` is then empty


@dataclass(frozen=True, slots=True)
class CommentPage:
    """One page of a comment listing, parsed, with the cursor that continues it.

    `listing` names the listing the cursor belongs to: "main" for the video's cursor listing,
    "reply:<root rpid>" for the sub-replies of one comment.
    """

    raw: RawPage
    bvid: str
    aid: int
    listing: str
    comments: list[Comment] = field(default_factory=list)
    emotes: list[Emote] = field(default_factory=list)
    cursor: str | None = None  # what to send to get the next page; None at the end
    is_end: bool = False
    error: str | None = None  # why the page could not be parsed; `comments` is then empty
    start: str | None = None  # the cursor that asked for this page (None: the listing's start)
    total: int | None = None  # comments the API says the listing has (main: all replies)
    end: str | None = None  # why the listing ends here: "end", "known" (reached the newest
    #   stored comment) or "since" (reached comments older than the --since bound)
    rejected: list[str] = field(default_factory=list)  # replies skipped as unreadable, why
