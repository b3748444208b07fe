"""Loading `ingest` records: raw pages, videos, comments with their emotes, crawl checkpoints.

Every loader is a bulk, idempotent upsert; `load_comment_page` writes a page's raw answer, its rows
and the listing's cursor in one transaction, so a crash never leaves rows without their checkpoint
or a checkpoint past rows that were not written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
from emopulse.ingest.records import Comment, CommentPage, Emote, RawPage, Video, VideoPage

from .merge import merge_rows
from .schema import VIDEO_STATUSES
from .writer import Warehouse, connection_of

__all__ = [
    "PageLoad",
    "crawl_state",
    "land_raw_page",
    "load_comment_page",
    "load_video_page",
    "mark_video",
    "page_id_of",
    "upsert_comments",
    "upsert_emotes",
    "upsert_videos",
]


@dataclass(frozen=True, slots=True)
class PageLoad:
    """What one page added: its raw page id and how many rows of each kind it carried."""

    page_id: int
    comments: int = 0
    comment_emotes: int = 0
    videos: int = 0
    error: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def page_id_of(raw: RawPage) -> int:
    """A stable positive 63-bit id of a raw page: the same answer lands once."""
    key = json.dumps(
        [raw.endpoint, raw.params, raw.fetched_at.isoformat(), raw.http_status, raw.body],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest()) >> 1


def _json_or_none(text: str) -> str | None:
    """`text` when it is strict JSON (what DuckDB's JSON type accepts), else None."""

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return None
    return text


def land_raw_page(wh: Warehouse, raw: RawPage, *, parse_error: str | None = None) -> int:
    """Land one raw answer in `raw_pages` (idempotent) and return its `page_id`."""
    payload = _json_or_none(raw.body)
    page_id = page_id_of(raw)
    merge_rows(
        wh,
        "raw_pages",
        {
            "page_id": [page_id],
            "endpoint": [raw.endpoint],
            "params": [json.dumps(raw.params, ensure_ascii=False, sort_keys=True, default=str)],
            "fetched_at": [raw.fetched_at],
            "http_status": [raw.http_status],
            "code": [raw.code],
            "payload": [payload],
            "body": [None if payload is not None else raw.body],
            "parse_error": [parse_error],
            "landed_at": [_now()],
        },
    )
    return page_id


def upsert_videos(wh: Warehouse, videos: Iterable[Video]) -> int:
    """Merge video records by bvid; new rows start with status 'ok'."""
    videos = list(videos)
    now = _now()
    return merge_rows(
        wh,
        "videos",
        {
            "bvid": [v.bvid for v in videos],
            "aid": [v.aid for v in videos],
            "title": [v.title for v in videos],
            "owner_mid": [v.owner_mid for v in videos],
            "owner_name": [v.owner_name for v in videos],
            "pubdate": [v.pubdate for v in videos],
            "reply_count": [v.reply_count for v in videos],
            "view_count": [v.view_count for v in videos],
            "source": [v.source for v in videos],
            "status": ["ok"] * len(videos),
            "discovered_at": [now] * len(videos),
            "updated_at": [now] * len(videos),
        },
    )


def upsert_emotes(
    wh: Warehouse, emotes: Iterable[Emote], *, image_paths: dict[str, str] | None = None
) -> int:
    """Merge catalog entries by `emoji_alt`; `image_paths` maps emoji_alt to a stored image."""
    emotes = list(emotes)
    paths = image_paths or {}
    now = _now()
    return merge_rows(
        wh,
        "emotes",
        {
            "emoji_alt": [e.emoji_alt for e in emotes],
            "emote_id": [e.emote_id for e in emotes],
            "emoji_name": [e.emoji_name for e in emotes],
            "package_id": [e.package_id for e in emotes],
            "package_name": [e.package_name for e in emotes],
            "url": [e.url for e in emotes],
            "image_path": [paths.get(e.emoji_alt) for e in emotes],
            "updated_at": [now] * len(emotes),
        },
    )


def upsert_comments(
    wh: Warehouse, comments: Iterable[Comment], *, bvid: str | None = None, aid: int | None = None
) -> tuple[int, int]:
    """Merge comments by rpid and replace each one's emote set; return (comments, emote rows).

    `bvid`/`aid` fill comments that lack them (a page knows its video). Emotes used are also
    merged into the `emotes` catalog (never overwriting richer entries with NULLs).
    """
    comments = list(comments)
    if not comments:
        return 0, 0
    now = _now()
    used = [(c.rpid, e) for c in comments for e in c.emotes]
    with wh.transaction() as con:
        n = merge_rows(
            wh,
            "comments",
            {
                "rpid": [c.rpid for c in comments],
                "bvid": [c.bvid or bvid for c in comments],
                "aid": [c.aid if c.aid is not None else aid for c in comments],
                "root": [c.root for c in comments],
                "parent": [c.parent for c in comments],
                "mid": [c.mid for c in comments],
                "uname": [c.uname for c in comments],
                "message": [c.message for c in comments],
                "sentence": [c.sentence for c in comments],
                "ctime": [c.ctime for c in comments],
                "likes": [c.likes for c in comments],
                "rcount": [c.rcount for c in comments],
                "source": [c.source for c in comments],
                "crawled_at": [now] * len(comments),
            },
        )
        _drop_stale_emotes(con, comments)
        merge_rows(
            wh,
            "comment_emotes",
            {
                "rpid": [rpid for rpid, _ in used],
                "emoji_alt": [e.emoji_alt for _, e in used],
                "emoji_name": [e.emoji_name for _, e in used],
                "emote_id": [e.emote_id for _, e in used],
                "package_id": [e.package_id for _, e in used],
                "occurrences": [e.occurrences for _, e in used],
            },
        )
        upsert_emotes(
            wh,
            (
                Emote(e.emoji_alt, e.emoji_name, emote_id=e.emote_id, package_id=e.package_id)
                for _, e in used
            ),
        )
    wh.mark_changed("comment_emotes")
    return n, len(used)


def _drop_stale_emotes(con: duckdb.DuckDBPyConnection, comments: list[Comment]) -> None:
    """Delete emote rows of these comments that their new emote set no longer has."""
    keep = pa.table(
        {
            "rpid": pa.array([c.rpid for c in comments for e in c.emotes], pa.int64()),
            "emoji_alt": pa.array([e.emoji_alt for c in comments for e in c.emotes], pa.string()),
        }
    )
    ids = pa.table({"rpid": pa.array([c.rpid for c in comments], pa.int64())})
    con.register("_reloaded_ids", ids)
    con.register("_reloaded_keep", keep)
    try:
        con.execute(
            "DELETE FROM comment_emotes AS e WHERE rpid IN (SELECT rpid FROM _reloaded_ids) "
            "AND NOT EXISTS (SELECT 1 FROM _reloaded_keep AS k "
            "WHERE k.rpid = e.rpid AND k.emoji_alt = e.emoji_alt)"
        )
    finally:
        con.unregister("_reloaded_ids")
        con.unregister("_reloaded_keep")


def _checkpoint(wh: Warehouse, page: CommentPage) -> None:
    """Advance the listing's cursor and counters (same transaction as the page's rows)."""
    ctimes = [c.ctime for c in page.comments if c.ctime is not None]
    wh.con.execute(
        """
        INSERT INTO crawl_state VALUES (?, ?, ?, ?, 1, ?, ?, ?, NULL, ?)
        ON CONFLICT (bvid, listing) DO UPDATE SET
            cursor = EXCLUDED.cursor, is_end = EXCLUDED.is_end,
            pages = crawl_state.pages + 1, comments = crawl_state.comments + EXCLUDED.comments,
            newest_ctime = greatest(crawl_state.newest_ctime, EXCLUDED.newest_ctime),
            status = EXCLUDED.status, message = NULL, updated_at = EXCLUDED.updated_at
        """,
        [
            page.bvid,
            page.listing,
            page.cursor,
            page.is_end,
            len(page.comments),
            max(ctimes) if ctimes else None,
            "done" if page.is_end else "running",
            _now(),
        ],
    )
    wh.mark_changed("crawl_state")


def _record_error(wh: Warehouse, bvid: str, listing: str, error: str) -> None:
    """Note a failed page on the listing without moving its cursor."""
    wh.con.execute(
        """
        INSERT INTO crawl_state VALUES (?, ?, NULL, false, 0, 0, NULL, 'error', ?, ?)
        ON CONFLICT (bvid, listing) DO UPDATE SET
            status = 'error', message = EXCLUDED.message, updated_at = EXCLUDED.updated_at
        """,
        [bvid, listing, error, _now()],
    )
    wh.mark_changed("crawl_state")


def load_comment_page(wh: Warehouse, page: CommentPage) -> PageLoad:
    """Raw page + comments + their emotes + catalog + checkpoint, all in one transaction.

    A page with `error` keeps only its raw page (with `parse_error`) and marks the listing's state
    'error'; its cursor does not move.
    """
    with wh.transaction():
        page_id = land_raw_page(wh, page.raw, parse_error=page.error)
        if page.error:
            _record_error(wh, page.bvid, page.listing, page.error)
            return PageLoad(page_id, error=page.error)
        upsert_videos(wh, [Video(page.bvid, aid=page.aid)])
        upsert_emotes(wh, page.emotes)
        n_comments, n_emotes = upsert_comments(wh, page.comments, bvid=page.bvid, aid=page.aid)
        _checkpoint(wh, page)
    return PageLoad(page_id, comments=n_comments, comment_emotes=n_emotes)


def load_video_page(wh: Warehouse, page: VideoPage) -> PageLoad:
    """Raw discovery page + its videos in one transaction (only the raw page if it failed)."""
    with wh.transaction():
        page_id = land_raw_page(wh, page.raw, parse_error=page.error)
        if page.error:
            return PageLoad(page_id, error=page.error)
        n = upsert_videos(wh, page.videos)
    return PageLoad(page_id, videos=n)


def mark_video(wh: Warehouse, bvid: str, status: str) -> None:
    """Set a video's status: 'ok', 'deleted' or 'comments_closed' (creating the row if needed)."""
    if status not in VIDEO_STATUSES:
        raise ValueError(f"video status must be one of {VIDEO_STATUSES}, not {status!r}")
    now = _now()
    with wh.transaction() as con:
        con.execute(
            "INSERT INTO videos (bvid, status, discovered_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (bvid) DO UPDATE SET status = EXCLUDED.status, "
            "updated_at = EXCLUDED.updated_at",
            [bvid, status, now, now],
        )
    wh.mark_changed("videos")


def crawl_state(
    wh_or_con: Warehouse | duckdb.DuckDBPyConnection, bvid: str, listing: str
) -> dict[str, Any] | None:
    """The checkpoint row of one listing as a dict, or None when it was never crawled."""
    rel = connection_of(wh_or_con).execute(
        "SELECT * FROM crawl_state WHERE bvid = ? AND listing = ?", [bvid, listing]
    )
    rows = rel.fetchall()
    if not rows:
        return None
    return dict(zip([d[0] for d in rel.description], rows[0], strict=True))
