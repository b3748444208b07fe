"""Cool-downs: a source that answered -412 rests until a time stored here, across runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from .merge import merge_rows
from .writer import Warehouse, connection_of

__all__ = ["active_cooldown", "start_cooldown"]


def active_cooldown(
    wh_or_con: Warehouse | duckdb.DuckDBPyConnection, source: str, *, now: datetime | None = None
) -> dict[str, Any] | None:
    """The cool-down row of `source` while it lasts (`until` after `now`), else None."""
    now = now or datetime.now(UTC)
    rel = connection_of(wh_or_con).execute(
        "SELECT * FROM crawl_cooldowns WHERE source = ? AND until > ?", [source, now]
    )
    rows = rel.fetchall()
    if not rows:
        return None
    return dict(zip([d[0] for d in rel.description], rows[0], strict=True))


def start_cooldown(
    wh: Warehouse,
    source: str,
    *,
    until: datetime,
    code: int,
    endpoint: str | None,
    bvid: str | None,
    message: str,
) -> None:
    """Rest `source` until `until` (replacing any earlier cool-down of it)."""
    merge_rows(
        wh,
        "crawl_cooldowns",
        {
            "source": [source],
            "until": [until],
            "code": [code],
            "endpoint": [endpoint],
            "bvid": [bvid],
            "message": [message],
            "started_at": [datetime.now(UTC)],
        },
    )
