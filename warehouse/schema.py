"""The warehouse's tables, declared dlt-style: columns, primary key and write disposition together.

Loaders never spell out keys in SQL of their own: they hand rows to `merge.merge_rows`, which reads
the key and the merge rules from the `TableSpec` here. `migrations` creates the tables from these
specs, and `snapshots` publishes every table in `PUBLISHED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DERIVED_FROM",
    "PUBLISHED",
    "TABLES",
    "VIDEO_STATUSES",
    "EMOJI_COMMENTS_COLUMNS",
    "TableSpec",
    "create_table_sql",
    "table",
]

WriteDisposition = Literal["merge", "replace"]

VIDEO_STATUSES = ("ok", "deleted", "comments_closed")

EMOJI_COMMENTS_COLUMNS = (
    "bvid",
    "emoji_alt",
    "emoji_name",
    "message",
    "sentence",
    "mid",
    "uname",
    "ctime_iso",
)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One table: ordered `columns` (name -> DuckDB type), its key and how rows reach it.

    `merge` upserts on `primary_key`; on conflict a column takes the incoming value unless that is
    NULL (so a thin record never wipes a richer one), except the `keep` columns, which keep the
    value of the first insert. `replace` tables are rebuilt whole by the code that owns them.
    """

    name: str
    columns: dict[str, str]
    primary_key: tuple[str, ...] = ()
    write_disposition: WriteDisposition = "merge"
    keep: tuple[str, ...] = ()
    description: str = ""


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "raw_pages",
            {
                "page_id": "BIGINT",
                "endpoint": "VARCHAR",
                "params": "JSON",
                "fetched_at": "TIMESTAMPTZ",
                "http_status": "INTEGER",
                "code": "INTEGER",
                "payload": "JSON",
                "body": "VARCHAR",
                "parse_error": "VARCHAR",
                "landed_at": "TIMESTAMPTZ",
            },
            primary_key=("page_id",),
            keep=("landed_at",),
            description="Every API answer as received; `body` only when it is not JSON.",
        ),
        TableSpec(
            "videos",
            {
                "bvid": "VARCHAR",
                "aid": "BIGINT",
                "title": "VARCHAR",
                "owner_mid": "BIGINT",
                "owner_name": "VARCHAR",
                "pubdate": "BIGINT",
                "reply_count": "BIGINT",
                "view_count": "BIGINT",
                "source": "VARCHAR",
                "status": "VARCHAR",
                "discovered_at": "TIMESTAMPTZ",
                "updated_at": "TIMESTAMPTZ",
            },
            primary_key=("bvid",),
            keep=("source", "status", "discovered_at"),
            description="Videos; `source`: how it was first found; `status`: see mark_video.",
        ),
        TableSpec(
            "comments",
            {
                "rpid": "BIGINT",
                "bvid": "VARCHAR",
                "aid": "BIGINT",
                "root": "BIGINT",
                "parent": "BIGINT",
                "mid": "VARCHAR",
                "uname": "VARCHAR",
                "message": "VARCHAR",
                "sentence": "VARCHAR",
                "ctime": "BIGINT",
                "likes": "BIGINT",
                "rcount": "BIGINT",
                "source": "VARCHAR",
                "crawled_at": "TIMESTAMPTZ",
            },
            primary_key=("rpid",),
            description="Comments by rpid (negative: synthetic id of a file row); ctime in Unix s.",
        ),
        TableSpec(
            "comment_emotes",
            {
                "rpid": "BIGINT",
                "emoji_alt": "VARCHAR",
                "emoji_name": "VARCHAR",
                "emote_id": "BIGINT",
                "package_id": "BIGINT",
                "occurrences": "INTEGER",
            },
            primary_key=("rpid", "emoji_alt"),
            description="Emotes used in each comment; a reloaded comment's set replaces the old.",
        ),
        TableSpec(
            "emotes",
            {
                "emoji_alt": "VARCHAR",
                "emote_id": "BIGINT",
                "emoji_name": "VARCHAR",
                "package_id": "BIGINT",
                "package_name": "VARCHAR",
                "url": "VARCHAR",
                "image_path": "VARCHAR",
                "updated_at": "TIMESTAMPTZ",
            },
            primary_key=("emoji_alt",),
            description="Emote catalog keyed by the token text, e.g. `[doge]`.",
        ),
        TableSpec(
            "crawl_state",
            {
                "bvid": "VARCHAR",
                "listing": "VARCHAR",
                "cursor": "VARCHAR",
                "is_end": "BOOLEAN",
                "pages": "INTEGER",
                "comments": "BIGINT",
                "newest_ctime": "BIGINT",
                "status": "VARCHAR",
                "message": "VARCHAR",
                "updated_at": "TIMESTAMPTZ",
            },
            primary_key=("bvid", "listing"),
            description="Checkpoint per listing, written in the page's own transaction; `pages` "
            "and `comments` count what the listing's loaded pages carried (a reloaded page counts "
            "again), `newest_ctime` is the newest comment seen.",
        ),
        TableSpec(
            "models",
            {
                "model_id": "VARCHAR",
                "task": "VARCHAR",
                "version": "INTEGER",
                "created_at": "TIMESTAMPTZ",
                "metrics": "JSON",
                "artifacts": "JSON",
                "sha256": "VARCHAR",
                "params": "JSON",
            },
            primary_key=("model_id",),
            keep=("version", "created_at"),
            description="Model registry; version counts up per task.",
        ),
        TableSpec(
            "predictions",
            {
                "model_id": "VARCHAR",
                "task": "VARCHAR",
                "entity_id": "VARCHAR",
                "rank": "INTEGER",
                "label": "VARCHAR",
                "score": "DOUBLE",
                "scored_at": "TIMESTAMPTZ",
            },
            primary_key=("model_id", "entity_id", "rank"),
            description="Top-k labels a model gave each entity (a comment's rpid as text).",
        ),
        TableSpec(
            "emoji_counts",
            {"emoji_alt": "VARCHAR", "emoji_name": "VARCHAR", "count": "BIGINT", "share": "DOUBLE"},
            write_disposition="replace",
            description="Emote frequencies over emoji_comments; rare ones folded into `others`.",
        ),
        TableSpec(
            "emoji_training_set",
            {"rpid": "BIGINT", **{c: "VARCHAR" for c in EMOJI_COMMENTS_COLUMNS}},
            write_disposition="replace",
            description="emoji_comments rows (with rpid) of emotes with more than N comments.",
        ),
    )
}

# Tables and views readers get as Parquet snapshots (and catalog views), in this order.
PUBLISHED: tuple[str, ...] = (*TABLES, "emoji_comments")

# A published view is re-exported whenever one of the tables it reads changed.
DERIVED_FROM: dict[str, tuple[str, ...]] = {"emoji_comments": ("comments", "comment_emotes")}


def table(name: str) -> TableSpec:
    """The spec of table `name` (KeyError names the known tables)."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None


def create_table_sql(spec: TableSpec) -> str:
    """`CREATE TABLE IF NOT EXISTS` for a spec, with its primary key."""
    cols = [f'"{name}" {type_}' for name, type_ in spec.columns.items()]
    if spec.primary_key:
        cols.append(f"PRIMARY KEY ({', '.join(spec.primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {spec.name} (\n  " + ",\n  ".join(cols) + "\n)"
