"""What a long-running crawl asks the warehouse between pages: listing states, what is stored,
where videos were found, and the status a listing stopped with."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
from emopulse.ingest.records import Video

from .merge import merge_rows
from .schema import CRAWL_STATUSES
from .writer import Warehouse, connection_of

__all__ = [
    "known_rpids",
    "listing_states",
    "record_video_sources",
    "set_listing_status",
    "stored_comments",
    "stored_versions",
    "thread_sizes",
    "unfinished_threads",
    "video_row",
]

Con = Warehouse | duckdb.DuckDBPyConnection


def _rows(rel: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def listing_states(wh_or_con: Con, bvid: str, listings: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The `crawl_state` rows of some listings of one video, by listing (absent: never crawled)."""
    wanted = list(dict.fromkeys(listings))
    if not wanted:
        return {}
    marks = ", ".join("?" * len(wanted))
    rel = connection_of(wh_or_con).execute(
        f"SELECT * FROM crawl_state WHERE bvid = ? AND listing IN ({marks})", [bvid, *wanted]
    )
    return {row["listing"]: row for row in _rows(rel)}


def unfinished_threads(wh_or_con: Con, bvid: str) -> list[dict[str, Any]]:
    """The video's sub-reply listings (`reply:<rpid>`) a crawl left half-read."""
    rel = connection_of(wh_or_con).execute(
        "SELECT * FROM crawl_state WHERE bvid = ? AND listing LIKE 'reply:%' AND NOT is_end "
        "ORDER BY listing",
        [bvid],
    )
    return _rows(rel)


def video_row(wh_or_con: Con, bvid: str) -> dict[str, Any] | None:
    """The `videos` row of one video, or None."""
    rows = _rows(connection_of(wh_or_con).execute("SELECT * FROM videos WHERE bvid = ?", [bvid]))
    return rows[0] if rows else None


def stored_comments(wh_or_con: Con, bvid: str) -> int:
    """How many comments of the video the warehouse holds."""
    con = connection_of(wh_or_con)
    return con.execute("SELECT count(*) FROM comments WHERE bvid = ?", [bvid]).fetchall()[0][0]


def _rows_for(wh_or_con: Con, ids: Iterable[int], sql: str,
              params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run `sql`, in which `_asked(id)` is the table of `ids` (registered for the call)."""
    asked = pa.table({"id": pa.array(list(ids), pa.int64())})
    if asked.num_rows == 0:
        return []
    con = connection_of(wh_or_con)
    con.register("_asked", asked)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.unregister("_asked")


def thread_sizes(wh_or_con: Con, bvid: str, roots: Iterable[int]) -> dict[int, int]:
    """How many sub-replies of each of these roots the warehouse holds (absent: none)."""
    return dict(_rows_for(wh_or_con, roots, "SELECT root, count(*) FROM comments WHERE bvid = ? "
                          "AND root IN (SELECT id FROM _asked) GROUP BY root", [bvid]))


def known_rpids(wh_or_con: Con, rpids: Iterable[int]) -> set[int]:
    """Which of these reply ids are stored already."""
    rows = _rows_for(wh_or_con, rpids, "SELECT rpid FROM comments WHERE rpid IN "
                     "(SELECT id FROM _asked)")
    return {rpid for (rpid,) in rows}


def stored_versions(wh_or_con: Con, rpids: Iterable[int]) -> dict[int, tuple[Any, ...]]:
    """What the warehouse holds of these replies, by rpid: (message, likes, rcount), the values
    a pass compares to tell a changed comment from an unchanged one."""
    rows = _rows_for(wh_or_con, rpids, "SELECT rpid, message, likes, rcount FROM comments "
                     "WHERE rpid IN (SELECT id FROM _asked)")
    return {rpid: tuple(rest) for rpid, *rest in rows}


def set_listing_status(
    wh: Warehouse,
    bvid: str,
    listing: str,
    status: str,
    message: str | None = None,
    *,
    is_end: bool | None = None,
) -> None:
    """Record why a listing stopped, keeping its cursor (`is_end` changes only when given)."""
    if status not in CRAWL_STATUSES:
        raise ValueError(f"crawl status must be one of {CRAWL_STATUSES}, not {status!r}")
    with wh.transaction() as con:
        con.execute(
            """
            INSERT INTO crawl_state (bvid, listing, is_end, pages, comments, status, message,
                                     updated_at)
            VALUES ($bvid, $listing, coalesce($is_end, false), 0, 0, $status, $message, $now)
            ON CONFLICT (bvid, listing) DO UPDATE SET
                status = EXCLUDED.status, message = EXCLUDED.message,
                updated_at = EXCLUDED.updated_at,
                is_end = coalesce($is_end, crawl_state.is_end)
            """,
            {"bvid": bvid, "listing": listing, "is_end": is_end, "status": status,
             "message": message, "now": datetime.now(UTC)},
        )
    wh.mark_changed("crawl_state")


def record_video_sources(wh: Warehouse, videos: Iterable[Video]) -> int:
    """Note where each video was found (its `source`) and the reply count it showed there."""
    videos = [v for v in videos if v.source]
    now = datetime.now(UTC)
    return merge_rows(
        wh,
        "video_sources",
        {
            "bvid": [v.bvid for v in videos],
            "source": [v.source for v in videos],
            "reply_count": [v.reply_count for v in videos],
            "first_seen_at": [now] * len(videos),
            "last_seen_at": [now] * len(videos),
        },
    )
