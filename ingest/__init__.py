"""emopulse.ingest: talks to Bilibili (or the local server) and returns plain records.

It knows nothing of DuckDB: the source generators yield pages of the records in `records.py`,
each with the raw answer to land first.
"""

from .bilibili import (
    comment_page_of,
    comment_pages,
    emote_packages,
    emote_panel,
    fetch_video,
    popular_pages,
    reply_pages,
    search_pages,
)
from .bvid import av2bv, bv2av
from .client import BilibiliClient, Download
from .errors import (
    ApiError,
    BadRequest,
    Blocked,
    CommentsClosed,
    CrawlerError,
    ImageRejected,
    NotFound,
    NotLoggedIn,
    ParseError,
    PermissionDenied,
    RateLimited,
    RiskControl,
    TransportError,
    UnreadableBody,
    WrongType,
)
from .images import emote_image
from .parse import EMOTE_TOKEN, emoji_name, extract_tokens, parse_comment, strip_tokens
from .pseudonym import Pseudonymiser
from .records import Comment, CommentEmote, CommentPage, Emote, RawPage, Video, VideoPage
from .window import SHANGHAI, Mark, Window, day_start, shanghai_time

__all__ = [
    "EMOTE_TOKEN",
    "SHANGHAI",
    "ApiError",
    "BadRequest",
    "BilibiliClient",
    "Blocked",
    "Comment",
    "CommentEmote",
    "CommentPage",
    "CommentsClosed",
    "CrawlerError",
    "Download",
    "Emote",
    "ImageRejected",
    "Mark",
    "NotFound",
    "NotLoggedIn",
    "ParseError",
    "PermissionDenied",
    "Pseudonymiser",
    "RateLimited",
    "RawPage",
    "RiskControl",
    "TransportError",
    "UnreadableBody",
    "Video",
    "VideoPage",
    "Window",
    "WrongType",
    "av2bv",
    "bv2av",
    "comment_page_of",
    "comment_pages",
    "day_start",
    "emoji_name",
    "emote_image",
    "emote_packages",
    "emote_panel",
    "extract_tokens",
    "fetch_video",
    "parse_comment",
    "popular_pages",
    "reply_pages",
    "search_pages",
    "shanghai_time",
    "strip_tokens",
]
