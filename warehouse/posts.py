"""Loading post batches: posts, their images, metrics, texts and comments, in one transaction.

Every table is a bulk idempotent upsert keyed by the source's ids (`post_id`, `(post_id,
image_index)`, `(post_id, observed_at)`, `comment_id`), so loading a file twice changes nothing,
and a newer file of the same notes adds metric observations beside the old ones. `load_posts`
returns the publication days it touched, which is what `windows.refresh_windows` recomputes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa
from emopulse.ingest.posts import PostBatch

from .merge import merge_rows
from .writer import Warehouse

__all__ = ["PostLoad", "load_posts", "post_days"]


@dataclass(frozen=True, slots=True)
class PostLoad:
    """How many rows of each kind one batch carried, and the days whose posts it (re)loaded."""

    posts: int = 0
    images: int = 0
    metrics: int = 0
    texts: int = 0
    comments: int = 0
    days: frozenset[date] = frozenset()


def _strings(values: Iterable[tuple[str, ...] | None]) -> pa.Array:
    return pa.array([None if v is None else list(v) for v in values], pa.list_(pa.string()))


def post_days(wh: Warehouse, post_ids: Iterable[str]) -> set[date]:
    """The publication days the given posts have in the warehouse now."""
    ids = pa.table({"post_id": pa.array(list(dict.fromkeys(post_ids)), pa.string())})
    wh.con.register("_post_ids", ids)
    try:
        rows = wh.con.execute(
            "SELECT DISTINCT published_date FROM posts JOIN _post_ids USING (post_id) "
            "WHERE published_date IS NOT NULL"
        ).fetchall()
    finally:
        wh.con.unregister("_post_ids")
    return {d for (d,) in rows}


def _drop_stale_images(wh: Warehouse, batch: PostBatch) -> None:
    """Delete image rows past the end of each reloaded post's new image list."""
    counts: dict[str, int] = {p.post_id: 0 for p in batch.posts}
    for image in batch.images:
        counts[image.post_id] = max(counts.get(image.post_id, 0), image.image_index + 1)
    table = pa.table({"post_id": pa.array(list(counts), pa.string()),
                      "n": pa.array(list(counts.values()), pa.int32())})
    wh.con.register("_image_counts", table)
    try:
        wh.con.execute(
            "DELETE FROM post_images AS i USING _image_counts AS c "
            "WHERE i.post_id = c.post_id AND i.image_index >= c.n"
        )
    finally:
        wh.con.unregister("_image_counts")


def load_posts(wh: Warehouse, batch: PostBatch) -> PostLoad:
    """Upsert everything `batch` holds (one transaction) and return what it carried.

    NULL never overwrites a value, so a thinner source (the trend CSV has no titles) never wipes a
    richer one, and image categories assigned by clustering survive a re-import.
    """
    now = datetime.now(UTC)
    posts, images, metrics, texts, comments = (
        batch.posts, batch.images, batch.metrics, batch.texts, batch.comments,
    )
    source = f"{batch.layout}:{batch.path.name}"
    with wh.transaction():
        days = post_days(wh, (p.post_id for p in posts)) if posts else set()
        merge_rows(wh, "posts", pa.table({
            "post_id": pa.array([p.post_id for p in posts], pa.string()),
            "platform": pa.array([p.platform for p in posts], pa.string()),
            "type": pa.array([p.type for p in posts], pa.string()),
            "title": pa.array([p.title for p in posts], pa.string()),
            "description": pa.array([p.description for p in posts], pa.string()),
            "user_id": pa.array([p.user_id for p in posts], pa.string()),
            "nickname": pa.array([p.nickname for p in posts], pa.string()),
            "ip_location": pa.array([p.ip_location for p in posts], pa.string()),
            "note_url": pa.array([p.note_url for p in posts], pa.string()),
            "source_keyword": pa.array([p.source_keyword for p in posts], pa.string()),
            "tags": _strings(p.tags for p in posts),
            "published_at": pa.array([p.published_at for p in posts], pa.timestamp("us", "UTC")),
            "published_date": pa.array([p.published_date for p in posts], pa.date32()),
            "date_resolution": pa.array([p.date_resolution for p in posts], pa.string()),
            "last_update_time": pa.array([p.last_update_time for p in posts], pa.timestamp("us", "UTC")),
            "source": pa.array([p.source for p in posts], pa.string()),
            "imported_at": pa.array([now] * len(posts), pa.timestamp("us", "UTC")),
        }))
        if posts:
            _drop_stale_images(wh, batch)
            wh.mark_changed("post_images")
        merge_rows(wh, "post_images", pa.table({
            "post_id": pa.array([i.post_id for i in images], pa.string()),
            "image_index": pa.array([i.image_index for i in images], pa.int32()),
            "url": pa.array([i.url for i in images], pa.string()),
            "local_path": pa.array([i.local_path for i in images], pa.string()),
            "category": pa.array([i.category for i in images], pa.int32()),
            "category_source": pa.array([i.category_source for i in images], pa.string()),
        }))
        merge_rows(wh, "post_metrics", pa.table({
            "post_id": pa.array([m.post_id for m in metrics], pa.string()),
            "observed_at": pa.array([m.observed_at for m in metrics], pa.timestamp("us", "UTC")),
            "likes": pa.array([m.likes for m in metrics], pa.int64()),
            "collects": pa.array([m.collects for m in metrics], pa.int64()),
            "comments": pa.array([m.comments for m in metrics], pa.int64()),
            "shares": pa.array([m.shares for m in metrics], pa.int64()),
            "source": pa.array([source] * len(metrics), pa.string()),
        }))
        merge_rows(wh, "post_texts", pa.table({
            "post_id": pa.array([t.post_id for t in texts], pa.string()),
            "text": pa.array([t.text for t in texts], pa.string()),
            "hashtags": _strings(t.hashtags for t in texts),
            "emotes": _strings(t.emotes for t in texts),
        }))
        merge_rows(wh, "post_comments", pa.table({
            "comment_id": pa.array([c.comment_id for c in comments], pa.string()),
            "post_id": pa.array([c.post_id for c in comments], pa.string()),
            "parent_comment_id": pa.array([c.parent_comment_id for c in comments], pa.string()),
            "user_id": pa.array([c.user_id for c in comments], pa.string()),
            "nickname": pa.array([c.nickname for c in comments], pa.string()),
            "ip_location": pa.array([c.ip_location for c in comments], pa.string()),
            "content": pa.array([c.content for c in comments], pa.string()),
            "text": pa.array([c.text for c in comments], pa.string()),
            "emotes": _strings(c.emotes for c in comments),
            "created_at": pa.array([c.created_at for c in comments], pa.timestamp("us", "UTC")),
            "likes": pa.array([c.likes for c in comments], pa.int64()),
            "sub_comments": pa.array([c.sub_comments for c in comments], pa.int64()),
            "pictures": _strings(c.pictures for c in comments),
            "observed_at": pa.array([c.observed_at for c in comments], pa.timestamp("us", "UTC")),
            "source": pa.array([c.source for c in comments], pa.string()),
        }))
    days |= {p.published_date for p in posts if p.published_date is not None}
    return PostLoad(len(posts), len(images), len(metrics), len(texts), len(comments), frozenset(days))
