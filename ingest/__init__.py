"""emopulse.ingest: talks to Bilibili (or the local server) and returns plain records.

It knows nothing of DuckDB: the source generators yield pages of the records in `records.py`,
each with the raw answer to land first.
"""

from .bilibili import (
    comment_pages,
    emote_panel,
    fetch_video,
    popular_pages,
    reply_pages,
    search_pages,
)
from .bvid import av2bv, bv2av
from .client import BilibiliClient
from .errors import (
    ApiError,
    BadRequest,
    Blocked,
    CommentsClosed,
    CrawlerError,
    NotFound,
    NotLoggedIn,
    ParseError,
    PermissionDenied,
    RateLimited,
    RiskControl,
    TransportError,
    WrongType,
)
from .parse import EMOTE_TOKEN, emoji_name, extract_tokens, parse_comment, strip_tokens
from .records import Comment, CommentEmote, CommentPage, Emote, RawPage, Video, VideoPage

__all__ = [
    "EMOTE_TOKEN",
    "ApiError",
    "BadRequest",
    "BilibiliClient",
    "Blocked",
    "Comment",
    "CommentEmote",
    "CommentPage",
    "CommentsClosed",
    "CrawlerError",
    "Emote",
    "NotFound",
    "NotLoggedIn",
    "ParseError",
    "PermissionDenied",
    "RateLimited",
    "RawPage",
    "RiskControl",
    "TransportError",
    "Video",
    "VideoPage",
    "WrongType",
    "av2bv",
    "bv2av",
    "comment_pages",
    "emoji_name",
    "emote_panel",
    "extract_tokens",
    "fetch_video",
    "parse_comment",
    "popular_pages",
    "reply_pages",
    "search_pages",
    "strip_tokens",
]
