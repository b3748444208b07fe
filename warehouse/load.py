"""Loading `ingest` records: raw pages, videos, comments with their emotes, crawl checkpoints.

Every loader is a bulk, idempotent upsert; `load_comment_page` writes a page's raw answer, its rows
and the listing's cursor in one transaction, so a crash never leaves rows without their checkpoint
or a checkpoint past rows that were not written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
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
    "land_raw_pages",
    "load_comment_page",
    "load_comment_pages",
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
    how = json.dumps(
        [raw.endpoint, raw.params, raw.fetched_at.isoformat(), raw.http_status],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    digest = hashlib.blake2b(how.encode(), digest_size=8)
    digest.update(b"\0")
    digest.update(raw.body.encode())  # hashed as it is: no need to encode a big body as JSON
    return int.from_bytes(digest.digest()) >> 1


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
    return land_raw_pages(wh, [(raw, parse_error)])[0]


def _payload_of(raw: RawPage) -> str | None:
    """The body as the JSON payload, or None when it is not strict JSON."""
    if raw.code is not None and "NaN" not in raw.body and "Infinity" not in raw.body:
        return raw.body  # the client decoded it to read `code`: JSON, no need to parse it again
    return _json_or_none(raw.body)


def land_raw_pages(wh: Warehouse, answers: Iterable[tuple[RawPage, str | None]]) -> list[int]:
    """Land raw answers (each with its parse error or None) in one upsert; their `page_id`s."""
    answers = list(answers)
    payloads = [_payload_of(raw) for raw, _ in answers]
    page_ids = [page_id_of(raw) for raw, _ in answers]
    merge_rows(
        wh,
        "raw_pages",
        {
            "page_id": page_ids,
            "endpoint": [raw.endpoint for raw, _ in answers],
            "params": [
                json.dumps(raw.params, ensure_ascii=False, sort_keys=True, default=str)
                for raw, _ in answers
            ],
            "fetched_at": [raw.fetched_at for raw, _ in answers],
            "http_status": [raw.http_status for raw, _ in answers],
            "code": [raw.code for raw, _ in answers],
            "payload": payloads,
            "body": [
                None if payload is not None else raw.body
                for (raw, _), payload in zip(answers, payloads, strict=True)
            ],
            "parse_error": [error for _, error in answers],
            "landed_at": [_now()] * len(answers),
        },
    )
    return page_ids


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
    wh: Warehouse,
    comments: Iterable[Comment],
    *,
    bvid: str | None = None,
    aid: int | None = None,
    catalogued: Iterable[str] = (),
) -> tuple[int, int]:
    """Merge comments by rpid and replace each one's emote set; return (comments, emote rows).

    `bvid`/`aid` fill comments that lack them (a page knows its video). Emotes used are also
    merged into the `emotes` catalog (never overwriting richer entries with NULLs), except the
    `catalogued` ones, which the caller has just merged with their full entries.
    """
    comments = list({c.rpid: c for c in comments}.values())  # a comment twice: the last copy
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
        skip = set(catalogued)
        upsert_emotes(
            wh,
            (
                Emote(e.emoji_alt, e.emoji_name, emote_id=e.emote_id, package_id=e.package_id)
                for _, e in used
                if e.emoji_alt not in skip
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


_CHECKPOINT_SQL = """
INSERT INTO crawl_state (bvid, listing, cursor, is_end, pages, comments, newest_ctime, status,
                         message, updated_at, total, skip_known, started_at, finished_at,
                         full_pass, full_pass_at)
VALUES ($bvid, $listing, $cursor, $is_end, 1, $comments, $newest, $status, $message, $now,
        $total, $skip_known, $now, $finished, $full, CASE WHEN $full THEN $finished END)
ON CONFLICT (bvid, listing) DO UPDATE SET
    cursor = EXCLUDED.cursor, is_end = EXCLUDED.is_end,
    pages = crawl_state.pages + 1, comments = crawl_state.comments + EXCLUDED.comments,
    newest_ctime = greatest(crawl_state.newest_ctime, EXCLUDED.newest_ctime),
    status = EXCLUDED.status, message = EXCLUDED.message, updated_at = EXCLUDED.updated_at,
    total = coalesce(EXCLUDED.total, crawl_state.total),
    skip_known = EXCLUDED.skip_known,
    started_at = CASE WHEN $first THEN EXCLUDED.started_at ELSE crawl_state.started_at END,
    finished_at = coalesce(EXCLUDED.finished_at, crawl_state.finished_at),
    full_pass = EXCLUDED.full_pass,
    full_pass_at = coalesce(EXCLUDED.full_pass_at, crawl_state.full_pass_at)
"""

# A finished pass of the main listing: the newest root it covers is where the next pass stops.
_FINISH_SQL = """
UPDATE crawl_state SET
    head_ctime = coalesce(newest.ctime, crawl_state.head_ctime),
    head_rpid = coalesce(newest.rpid, crawl_state.head_rpid),
    floor_ctime = CASE $end WHEN 'end' THEN NULL WHEN 'since' THEN $since ELSE floor_ctime END
FROM (SELECT max(ctime) AS ctime, max_by(rpid, (ctime, rpid)) AS rpid FROM comments
      WHERE bvid = $bvid AND root = 0 AND source = 'api:main') AS newest
WHERE crawl_state.bvid = $bvid AND crawl_state.listing = 'main'
"""


def _checkpoint(
    wh: Warehouse,
    page: CommentPage,
    *,
    status: str | None = None,
    message: str | None = None,
    since: int | None = None,
    skip_known: bool = False,
    full: bool = False,
) -> None:
    """Advance the listing's cursor and counters (same transaction as the page's rows).

    The first page of a main pass (`start` None) records the pass's start and the listing's
    `total`; the last one (`is_end`) moves `head_*` to the newest stored root and `floor_ctime`
    to `since` when the pass ended there (to NULL when it reached the listing's end). `full`
    marks a pass that reads the whole listing (no stop at the newest stored comment); its last
    page sets `full_pass_at`.
    """
    ctimes = [c.ctime for c in page.comments if c.ctime is not None]
    now = _now()
    main = page.listing == "main"
    first = page.start is None or not main
    wh.con.execute(
        _CHECKPOINT_SQL,
        {
            "bvid": page.bvid,
            "listing": page.listing,
            "cursor": page.cursor,
            "is_end": page.is_end,
            "comments": len(page.comments),
            "newest": max(ctimes) if ctimes else None,
            "status": status or ("done" if page.is_end else "running"),
            "message": message,
            "now": now,
            "total": page.total if first else None,
            "skip_known": skip_known and not page.is_end,
            "first": page.start is None,
            "finished": now if page.is_end else None,
            "full": full and main,
        },
    )
    if main and page.is_end:
        wh.con.execute(_FINISH_SQL, {"bvid": page.bvid, "end": page.end, "since": since})
    wh.mark_changed("crawl_state")


def _record_error(wh: Warehouse, bvid: str, listing: str, error: str) -> None:
    """Note a failed page on the listing without moving its cursor."""
    wh.con.execute(
        """
        INSERT INTO crawl_state (bvid, listing, cursor, is_end, pages, comments, status, message,
                                 updated_at)
        VALUES (?, ?, NULL, false, 0, 0, 'error', ?, ?)
        ON CONFLICT (bvid, listing) DO UPDATE SET
            status = 'error', message = EXCLUDED.message, updated_at = EXCLUDED.updated_at
        """,
        [bvid, listing, error, _now()],
    )
    wh.mark_changed("crawl_state")


def _ensure_video(wh: Warehouse, bvid: str, aid: int) -> None:
    """The page's video has a row with its aid (one statement: this runs for every page)."""
    now = _now()
    wh.con.execute(
        "INSERT INTO videos (bvid, aid, status, discovered_at, updated_at) "
        "VALUES (?, ?, 'ok', ?, ?) ON CONFLICT (bvid) DO UPDATE SET "
        "aid = coalesce(EXCLUDED.aid, videos.aid), updated_at = EXCLUDED.updated_at",
        [bvid, aid, now, now],
    )
    wh.mark_changed("videos")


def rejected_note(page: CommentPage) -> str | None:
    """What the raw page's `parse_error` says of replies skipped as unreadable (None: none)."""
    if not page.rejected:
        return None
    return f"{len(page.rejected)} unreadable replies skipped: " + "; ".join(page.rejected)


def load_comment_page(
    wh: Warehouse,
    page: CommentPage,
    *,
    status: str | None = None,
    message: str | None = None,
    since: int | None = None,
    skip_known: bool = False,
    full: bool = False,
) -> PageLoad:
    """Raw page + comments + their emotes + catalog + checkpoint, all in one transaction.

    A page with `error` keeps only its raw page (with `parse_error`) and marks the listing's state
    'error'; its cursor does not move. `status`/`message` override the listing's status
    ('running', or 'done' on the last page), `since` is the pass's lower time bound (it becomes
    `floor_ctime` when the pass ends there), `skip_known` marks a pass that skips stored
    comments and `full` one that reads the whole listing.
    """
    with wh.transaction():
        page_id = land_raw_page(wh, page.raw, parse_error=page.error or rejected_note(page))
        if page.error:
            _record_error(wh, page.bvid, page.listing, page.error)
            return PageLoad(page_id, error=page.error)
        _ensure_video(wh, page.bvid, page.aid)
        upsert_emotes(wh, page.emotes)
        n_comments, n_emotes = upsert_comments(wh, page.comments, bvid=page.bvid, aid=page.aid,
                                               catalogued=(e.emoji_alt for e in page.emotes))
        _checkpoint(wh, page, status=status, message=message, since=since, skip_known=skip_known,
                    full=full)
    return PageLoad(page_id, comments=n_comments, comment_emotes=n_emotes)


def load_comment_pages(wh: Warehouse, pages: Iterable[CommentPage]) -> PageLoad:
    """Many recorded pages in one transaction: the bulk path for backfills and rebuilds.

    The rows and raw pages are those of loading the pages one by one in this order (except that
    a comment met twice is the last copy whole, where one by one a NULL in the later copy would
    keep the earlier value); each listing is checkpointed once, at its last page, with the
    pages' counts summed.
    """
    pages = list(pages)
    good = [p for p in pages if not p.error]
    comments = [
        c if c.bvid is not None and c.aid is not None
        else replace(c, bvid=c.bvid or p.bvid, aid=p.aid if c.aid is None else c.aid)
        for p in good for c in p.comments
    ]
    with wh.transaction() as con:
        land_raw_pages(wh, [(p.raw, p.error or rejected_note(p)) for p in pages])
        upsert_videos(wh, list({p.bvid: Video(p.bvid, aid=p.aid) for p in good}.values()))
        emotes = [e for p in good for e in p.emotes]
        upsert_emotes(wh, emotes)
        n_comments, n_emotes = upsert_comments(wh, comments,
                                               catalogued=(e.emoji_alt for e in emotes))
        last: dict[tuple[str, str], CommentPage] = {}
        counts: dict[tuple[str, str], list[int]] = {}
        for p in good:
            key = (p.bvid, p.listing)
            last[key] = p
            ctimes = [c.ctime for c in p.comments if c.ctime is not None]
            pages_, comments, newest = counts.get(key, [0, 0, -1])
            counts[key] = [pages_ + 1, comments + len(p.comments), max([newest, *ctimes])]
        states = pa.table({
            "bvid": [k[0] for k in last], "listing": [k[1] for k in last],
            "cursor": [p.cursor for p in last.values()],
            "is_end": [p.is_end for p in last.values()],
            "pages": [counts[k][0] for k in last], "comments": [counts[k][1] for k in last],
            "newest_ctime": [counts[k][2] if counts[k][2] >= 0 else None for k in last],
            "total": [p.total for p in last.values()],
        })
        con.register("_bulk_states", states)
        try:
            con.execute(_BULK_CHECKPOINT_SQL, [_now()])
        finally:
            con.unregister("_bulk_states")
    wh.mark_changed("crawl_state")
    return PageLoad(-1, comments=n_comments, comment_emotes=n_emotes)


_BULK_CHECKPOINT_SQL = """
INSERT INTO crawl_state (bvid, listing, cursor, is_end, pages, comments, newest_ctime, status,
                         updated_at, total)
SELECT bvid, listing, cursor, is_end, pages, comments, newest_ctime,
       CASE WHEN is_end THEN 'done' ELSE 'running' END, $1, total FROM _bulk_states
ON CONFLICT (bvid, listing) DO UPDATE SET
    cursor = EXCLUDED.cursor, is_end = EXCLUDED.is_end,
    pages = crawl_state.pages + EXCLUDED.pages,
    comments = crawl_state.comments + EXCLUDED.comments,
    newest_ctime = greatest(crawl_state.newest_ctime, EXCLUDED.newest_ctime),
    status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
    total = coalesce(EXCLUDED.total, crawl_state.total)
"""


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
