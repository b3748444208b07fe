"""Post batches for the warehouse tests (`from post_builders import ...`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from emopulse.ingest.posts import Post, PostBatch, PostImage, PostMetrics
from emopulse.warehouse import Warehouse
from emopulse.warehouse.posts import load_posts

OBSERVED = datetime(2025, 1, 1, tzinfo=UTC)


def batch(posts: Sequence[tuple[str, date, Sequence[int], int]], *, observed: datetime = OBSERVED,
          name: str = "test.csv") -> PostBatch:
    """(post_id, day, image categories, likes) → a batch; collects = likes // 2, comments = 1."""
    out = PostBatch(path=Path(name), layout="test")
    for post_id, day, categories, likes in posts:
        out.posts.append(Post(post_id, f"test:{name}", published_date=day, date_resolution="test"))
        out.images.extend(PostImage(post_id, i, category=c, category_source="dataset")
                          for i, c in enumerate(categories))
        out.metrics.append(PostMetrics(post_id, observed, likes=likes, collects=likes // 2, comments=1))
    return out


def add(wh: Warehouse, posts: Sequence[tuple[str, date, Sequence[int], int]], **kwargs) -> set[date]:
    """Load posts; return the days to refresh."""
    return set(load_posts(wh, batch(posts, **kwargs)).days)


def table(wh: Warehouse, name: str, order: str) -> list[tuple]:
    return wh.con.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall()
