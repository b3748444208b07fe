"""emopulse.warehouse: DuckDB schema and migrations, bulk loads, emote statistics, the model
registry, Parquet snapshots and the read API.

Writers open `Warehouse.open(db_path, command=...)` (one process at a time); readers use
`open_catalog(home)` / `query(home, sql)` over the published snapshots only.
"""

from .captions import prompt_sha256, read_captions, write_captions
from .cooldowns import active_cooldown, start_cooldown
from .crawling import (
    known_rpids,
    listing_states,
    record_video_sources,
    set_listing_status,
    stored_comments,
    stored_versions,
    thread_sizes,
    unfinished_threads,
    video_row,
)
from .emoji_stats import OTHERS, EmojiStats, export_emoji_counts, refresh_emoji_stats
from .emote_images import emotes_needing_images, record_emote_image, unknown_packages
from .exceptions import ReadOnlyViolation, SnapshotMissing, WarehouseBusy, WarehouseError
from .load import (
    PageLoad,
    crawl_state,
    land_raw_page,
    land_raw_pages,
    load_comment_page,
    load_comment_pages,
    load_video_page,
    mark_video,
    rejected_note,
    upsert_comments,
    upsert_emotes,
    upsert_videos,
)
from .merge import merge_rows
from .migrations import migrate, schema_version
from .posts import PostLoad, load_posts
from .read import format_result, open_catalog, query
from .registry import (
    champion_model, find_model_row, fix_frozen_set, frozen_keys, latest_model, list_models, model_decisions,
    record_decision, register_model, set_model_status, unscored_comments, unscored_posts, write_predictions,
)
from .schema import EMOJI_COMMENTS_COLUMNS, ENTITY_KINDS, PUBLISHED, TABLES, TableSpec
from .snapshots import catalog_path, current_version_dir, publish_snapshots
from .writer import Warehouse
from .windows import WindowRefresh, refresh_windows

__all__ = [
    "EMOJI_COMMENTS_COLUMNS",
    "ENTITY_KINDS",
    "OTHERS",
    "PUBLISHED",
    "TABLES",
    "EmojiStats",
    "PageLoad",
    "PostLoad",
    "ReadOnlyViolation",
    "SnapshotMissing",
    "TableSpec",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseError",
    "WindowRefresh",
    "active_cooldown",
    "catalog_path",
    "crawl_state",
    "current_version_dir",
    "emotes_needing_images",
    "export_emoji_counts",
    "champion_model",
    "find_model_row",
    "fix_frozen_set",
    "frozen_keys",
    "list_models",
    "model_decisions",
    "record_decision",
    "set_model_status",
    "format_result",
    "known_rpids",
    "land_raw_page",
    "land_raw_pages",
    "latest_model",
    "listing_states",
    "load_comment_page",
    "load_comment_pages",
    "load_video_page",
    "mark_video",
    "rejected_note",
    "load_posts",
    "merge_rows",
    "migrate",
    "open_catalog",
    "prompt_sha256",
    "publish_snapshots",
    "query",
    "read_captions",
    "record_emote_image",
    "record_video_sources",
    "refresh_emoji_stats",
    "refresh_windows",
    "register_model",
    "schema_version",
    "set_listing_status",
    "start_cooldown",
    "stored_comments",
    "stored_versions",
    "thread_sizes",
    "unfinished_threads",
    "unknown_packages",
    "unscored_comments",
    "unscored_posts",
    "upsert_comments",
    "upsert_emotes",
    "upsert_videos",
    "video_row",
    "write_captions",
    "write_predictions",
]
