"""The emote catalog's images: which still need a download, and how each attempt went."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from .writer import Warehouse, connection_of

__all__ = ["emotes_needing_images", "record_emote_image", "unknown_packages"]


def emotes_needing_images(
    wh_or_con: Warehouse | duckdb.DuckDBPyConnection, *, max_attempts: int
) -> list[dict[str, Any]]:
    """Emotes with an id and a URL but no stored image, tried fewer than `max_attempts` times:
    `emote_id`, `url`, `attempts` (one row per emote id)."""
    rel = connection_of(wh_or_con).execute(
        """
        SELECT emote_id, any_value(url) AS url, max(coalesce(image_attempts, 0)) AS attempts
        FROM emotes
        WHERE emote_id IS NOT NULL AND url IS NOT NULL AND image_path IS NULL
        GROUP BY emote_id HAVING max(coalesce(image_attempts, 0)) < ?
        ORDER BY emote_id
        """,
        [max_attempts],
    )
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def record_emote_image(
    wh: Warehouse, emote_id: int, *, path: str | None = None, error: str | None = None
) -> None:
    """Note one download attempt of an emote's image: the stored `path` (relative to the
    home folder) or the `error` it failed with."""
    if (path is None) == (error is None):
        raise ValueError("give either the stored path or the error")
    with wh.transaction() as con:
        con.execute(
            """
            UPDATE emotes SET image_path = ?, image_error = ?,
                image_attempts = coalesce(image_attempts, 0) + 1, image_checked_at = ?
            WHERE emote_id = ?
            """,
            [path, error, datetime.now(UTC), emote_id],
        )
    wh.mark_changed("emotes")


def unknown_packages(wh_or_con: Warehouse | duckdb.DuckDBPyConnection) -> list[int]:
    """Emote packages met in comments whose catalog entries are still bare (no package name)."""
    rows = connection_of(wh_or_con).execute(
        """
        SELECT DISTINCT package_id FROM (
            SELECT package_id FROM emotes WHERE package_name IS NULL
            UNION ALL
            SELECT e.package_id FROM comment_emotes AS e
            LEFT JOIN emotes AS c ON c.emoji_alt = e.emoji_alt
            WHERE c.package_name IS NULL
        ) WHERE package_id IS NOT NULL ORDER BY package_id
        """
    ).fetchall()
    return [package_id for (package_id,) in rows]
