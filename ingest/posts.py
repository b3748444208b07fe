"""Plain records of social posts (Xiaohongshu notes), what the post readers yield.

Like `records.py` they know nothing of DuckDB: a reader turns one file into a `PostBatch`, and the
warehouse loads a batch in one transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from .files import RowError

__all__ = [
    "Post",
    "PostBatch",
    "PostComment",
    "PostFileError",
    "PostImage",
    "PostMetrics",
    "PostText",
    "RowError",
]


class PostFileError(ValueError):
    """A file as a whole cannot be read: not JSON, unknown columns, not UTF-8, empty."""


@dataclass(frozen=True, slots=True)
class Post:
    """One note, keyed by its id (a 24-hex ObjectId on Xiaohongshu)."""

    post_id: str
    source: str  # "mediacrawler:<file name>" or "mkt:<file name>"
    platform: str = "xhs"
    type: str | None = None  # "normal" (images) or "video"
    title: str | None = None
    description: str | None = None
    user_id: str | None = None
    nickname: str | None = None
    ip_location: str | None = None
    note_url: str | None = None
    source_keyword: str | None = None
    tags: tuple[str, ...] | None = None
    published_at: datetime | None = None  # aware; None when only a date is known
    published_date: date | None = None  # the local (UTC+8) calendar day
    date_resolution: str | None = None  # how `published_date` was found (see postdates)
    last_update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class PostImage:
    """Image `image_index` of a post: a URL and/or a local file, and a category when known."""

    post_id: str
    image_index: int
    url: str | None = None
    local_path: str | None = None
    category: int | None = None  # dataset-given category id; clusters are assigned later
    category_source: str | None = None  # "dataset" when `category` came with the data


@dataclass(frozen=True, slots=True)
class PostMetrics:
    """Engagement of a post as observed at one moment."""

    post_id: str
    observed_at: datetime  # aware: MediaCrawler's last_modify_ts, else the file's mtime
    likes: int | None = None
    collects: int | None = None
    comments: int | None = None
    shares: int | None = None


@dataclass(frozen=True, slots=True)
class PostText:
    """A post's text for models: cleaned of hashtags and emotes, which are kept apart."""

    post_id: str
    text: str
    hashtags: tuple[str, ...] = ()
    emotes: tuple[str, ...] = ()  # `[笑哭R]`-style tokens and Unicode emoji, in order, repeated


@dataclass(frozen=True, slots=True)
class PostComment:
    """A comment on a post (MediaCrawler's comment rows)."""

    comment_id: str
    post_id: str
    source: str
    content: str | None = None
    text: str | None = None  # content cleaned like PostText.text
    emotes: tuple[str, ...] = ()
    parent_comment_id: str | None = None  # None for a top-level comment
    user_id: str | None = None
    nickname: str | None = None
    ip_location: str | None = None
    created_at: datetime | None = None
    likes: int | None = None
    sub_comments: int | None = None
    pictures: tuple[str, ...] = ()
    observed_at: datetime | None = None


@dataclass(slots=True)
class PostBatch:
    """Everything one file held, with the rows it rejected and how its dates were resolved."""

    path: Path
    layout: str
    rows: int = 0  # data rows read, good and bad
    posts: list[Post] = field(default_factory=list)
    images: list[PostImage] = field(default_factory=list)
    metrics: list[PostMetrics] = field(default_factory=list)
    texts: list[PostText] = field(default_factory=list)
    comments: list[PostComment] = field(default_factory=list)
    skipped: list[RowError] = field(default_factory=list)
    dates: Counter[str] = field(default_factory=Counter)  # resolution -> posts
    notes: list[str] = field(default_factory=list)  # other things worth telling the user
