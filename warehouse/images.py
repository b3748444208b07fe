"""Post images for clustering: which to embed, their stored embeddings, the centroids, categories.

Images whose category the dataset gave (`category_source = 'dataset'`) are never clustered. The
flow embeds what `images_to_embed` lists, stores it with `save_embeddings`, clusters
`read_embeddings` against `read_clusters`, and writes the result with `save_clusters` and
`set_categories`, which returns the publication days whose windows need recomputing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from .merge import merge_rows
from .writer import Warehouse

__all__ = [
    "cluster_source",
    "images_to_embed",
    "read_clusters",
    "read_embeddings",
    "save_clusters",
    "save_embeddings",
    "set_categories",
]


def cluster_source(encoder: str) -> str:
    """The `category_source` of categories from clustering `encoder` embeddings."""
    return f"kmeans:{encoder}"


def images_to_embed(wh: Warehouse, encoder: str) -> pd.DataFrame:
    """(post_id, image_index, local_path) of local images without an `encoder` embedding."""
    return wh.con.execute(
        """
        SELECT i.post_id, i.image_index, i.local_path FROM post_images AS i
        WHERE i.local_path IS NOT NULL AND i.category_source IS DISTINCT FROM 'dataset'
          AND NOT EXISTS (SELECT 1 FROM image_embeddings AS e WHERE e.post_id = i.post_id
                          AND e.image_index = i.image_index AND e.encoder = ?)
        ORDER BY i.post_id, i.image_index
        """,
        [encoder],
    ).df()


def save_embeddings(wh: Warehouse, encoder: str, keys: pd.DataFrame, vectors: np.ndarray) -> int:
    """Store one embedding per row of `keys` (post_id, image_index)."""
    if len(keys) != len(vectors):
        raise ValueError(f"{len(keys)} keys for {len(vectors)} embeddings")
    now = datetime.now(UTC)
    return merge_rows(wh, "image_embeddings", pa.table({
        "post_id": pa.array(keys["post_id"].tolist(), pa.string()),
        "image_index": pa.array(keys["image_index"].tolist(), pa.int32()),
        "encoder": pa.array([encoder] * len(keys), pa.string()),
        "embedding": pa.array(list(np.asarray(vectors, np.float32)), pa.list_(pa.float32())),
        "embedded_at": pa.array([now] * len(keys), pa.timestamp("us", "UTC")),
    }))


def read_embeddings(wh: Warehouse, encoder: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Keys (post_id, image_index) and embeddings [n, d] of the clusterable images."""
    df = wh.con.execute(
        """
        SELECT e.post_id, e.image_index, e.embedding FROM image_embeddings AS e
        JOIN post_images AS i USING (post_id, image_index)
        WHERE e.encoder = ? AND i.category_source IS DISTINCT FROM 'dataset'
        ORDER BY e.post_id, e.image_index
        """,
        [encoder],
    ).df()
    vectors = np.stack(df.pop("embedding").to_numpy()).astype(np.float32) if len(df) else np.zeros((0, 0), np.float32)
    return df, vectors


def read_clusters(wh: Warehouse, encoder: str) -> tuple[list[int], np.ndarray] | None:
    """The current (ids, centroids) for `encoder`, or None before the first clustering."""
    df = wh.con.execute(
        "SELECT cluster_id, centroid FROM image_clusters WHERE encoder = ? ORDER BY cluster_id", [encoder]
    ).df()
    if df.empty:
        return None
    return df.cluster_id.astype(int).tolist(), np.stack(df.centroid.to_numpy()).astype(np.float32)


def save_clusters(wh: Warehouse, encoder: str, ids: Sequence[int], centroids: np.ndarray,
                  sizes: Sequence[int]) -> None:
    """Replace the centroids of `encoder` with these."""
    now = datetime.now(UTC)
    table = pa.table({
        "cluster_id": pa.array(list(ids), pa.int32()),
        "encoder": pa.array([encoder] * len(ids), pa.string()),
        "centroid": pa.array(list(np.asarray(centroids, np.float32)), pa.list_(pa.float32())),
        "images": pa.array(list(sizes), pa.int64()),
        "updated_at": pa.array([now] * len(ids), pa.timestamp("us", "UTC")),
    })
    with wh.transaction() as con:
        con.execute("DELETE FROM image_clusters WHERE encoder = ?", [encoder])
        con.register("_clusters", table)
        try:
            con.execute("INSERT INTO image_clusters SELECT * FROM _clusters")
        finally:
            con.unregister("_clusters")
    wh.mark_changed("image_clusters")


def set_categories(wh: Warehouse, keys: pd.DataFrame, categories: Sequence[int], source: str) -> set[date]:
    """Set the category of each image in `keys`; return the publication days of posts whose
    categories changed."""
    table = pa.table({
        "post_id": pa.array(keys["post_id"].tolist(), pa.string()),
        "image_index": pa.array(keys["image_index"].tolist(), pa.int32()),
        "category": pa.array(list(categories), pa.int32()),
    })
    with wh.transaction() as con:
        con.register("_categories", table)
        try:
            days = {d for (d,) in con.execute(
                """
                SELECT DISTINCT p.published_date FROM _categories AS n
                JOIN post_images AS i USING (post_id, image_index) JOIN posts AS p USING (post_id)
                WHERE i.category IS DISTINCT FROM n.category AND p.published_date IS NOT NULL
                """
            ).fetchall()}
            con.execute(
                "UPDATE post_images AS i SET category = n.category, category_source = ? FROM _categories AS n "
                "WHERE i.post_id = n.post_id AND i.image_index = n.image_index "
                "AND (i.category IS DISTINCT FROM n.category OR i.category_source IS DISTINCT FROM ?)",
                [source, source],
            )
        finally:
            con.unregister("_categories")
    wh.mark_changed("post_images")
    return days
