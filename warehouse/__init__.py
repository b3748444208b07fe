"""emopulse.warehouse: DuckDB schema and migrations, bulk loads, emote statistics, the model
registry, Parquet snapshots and the read API.

Writers open `Warehouse.open(db_path, command=...)` (one process at a time); readers use
`open_catalog(home)` / `query(home, sql)` over the published snapshots only.
"""

from .emoji_stats import OTHERS, EmojiStats, export_emoji_counts, refresh_emoji_stats
from .exceptions import ReadOnlyViolation, SnapshotMissing, WarehouseBusy, WarehouseError
from .load import (
    PageLoad,
    crawl_state,
    land_raw_page,
    load_comment_page,
    load_video_page,
    mark_video,
    upsert_comments,
    upsert_emotes,
    upsert_videos,
)
from .merge import merge_rows
from .migrations import migrate, schema_version
from .read import format_result, open_catalog, query
from .registry import latest_model, register_model, write_predictions
from .schema import EMOJI_COMMENTS_COLUMNS, PUBLISHED, TABLES, TableSpec
from .snapshots import catalog_path, current_version_dir, publish_snapshots
from .writer import Warehouse

__all__ = [
    "EMOJI_COMMENTS_COLUMNS",
    "OTHERS",
    "PUBLISHED",
    "TABLES",
    "EmojiStats",
    "PageLoad",
    "ReadOnlyViolation",
    "SnapshotMissing",
    "TableSpec",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseError",
    "catalog_path",
    "crawl_state",
    "current_version_dir",
    "export_emoji_counts",
    "format_result",
    "land_raw_page",
    "latest_model",
    "load_comment_page",
    "load_video_page",
    "mark_video",
    "merge_rows",
    "migrate",
    "open_catalog",
    "publish_snapshots",
    "query",
    "refresh_emoji_stats",
    "register_model",
    "schema_version",
    "upsert_comments",
    "upsert_emotes",
    "upsert_videos",
    "write_predictions",
]
