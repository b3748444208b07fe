"""The warehouse's tables, declared dlt-style: columns, primary key and write disposition together.

Loaders never spell out keys in SQL of their own: they hand rows to `merge.merge_rows`, which reads
the key and the merge rules from the `TableSpec` here. `migrations` creates the tables from these
specs, and `snapshots` publishes every table in `PUBLISHED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ADDED_COLUMNS",
    "ENTITY_KINDS",
    "REGISTRY_COLUMNS",
    "HARDENING_COLUMNS",
    "CRAWL_STATUSES",
    "CRAWL_TABLES",
    "DERIVED_FROM",
    "POST_TABLES",
    "SENTIMENT_TABLES",
    "CAPTION_TABLES",
    "EMOTION_TABLES",
    "FORECAST_TABLES",
    "MODEL_STATUSES",
    "RUN_STATUSES",
    "SERVICE_COLUMNS",
    "SERVICE_TABLES",
    "PREDICTION_INPUT_COLUMNS",
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

# Why a listing's crawl stopped (crawl_state.status); `emopulse crawl status` shows them.
CRAWL_STATUSES = (
    "running",  # a pass is under way (or was killed: the next run resumes from `cursor`)
    "done",  # the pass finished: the end of the listing, the newest stored comment, or --since
    "limit",  # --max-comments-per-video reached; a larger limit continues from `cursor`
    "stopped",  # the API refused to page further (-400); the next run restarts the listing
    "error",  # a page could not be read (raw page kept) or retries ran out; resumable
    "blocked",  # -412 / circuit breaker: the source cools down (crawl_cooldowns); or a
    #   soft-blocked page (not the end, yet no next cursor) after its retries: resumable
    "deleted",  # -404: the video is gone
    "comments_closed",  # 12002
)

# What `predictions.entity_kind` may say: the table the entity id comes from.
ENTITY_KINDS = ("comment", "post", "text")

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


# Social posts (issue 4): created by migration 3; see warehouse/posts.py and warehouse/windows.py.
POST_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "posts",
        {
            "post_id": "VARCHAR",
            "platform": "VARCHAR",
            "type": "VARCHAR",
            "title": "VARCHAR",
            "description": "VARCHAR",
            "user_id": "VARCHAR",
            "nickname": "VARCHAR",
            "ip_location": "VARCHAR",
            "note_url": "VARCHAR",
            "source_keyword": "VARCHAR",
            "tags": "VARCHAR[]",
            "published_at": "TIMESTAMPTZ",
            "published_date": "DATE",
            "date_resolution": "VARCHAR",
            "last_update_time": "TIMESTAMPTZ",
            "source": "VARCHAR",
            "imported_at": "TIMESTAMPTZ",
        },
        primary_key=("post_id",),
        keep=("imported_at",),
        description="Posts (Xiaohongshu notes) by id; published_date is the local (UTC+8) day, "
        "date_resolution says how it was found.",
    ),
    TableSpec(
        "post_images",
        {
            "post_id": "VARCHAR",
            "image_index": "INTEGER",
            "url": "VARCHAR",
            "local_path": "VARCHAR",
            "category": "INTEGER",
            "category_source": "VARCHAR",
        },
        primary_key=("post_id", "image_index"),
        description="A post's images; category: the dataset's id ('dataset') or an image "
        "cluster ('kmeans:<encoder>').",
    ),
    TableSpec(
        "post_metrics",
        {
            "post_id": "VARCHAR",
            "observed_at": "TIMESTAMPTZ",
            "likes": "BIGINT",
            "collects": "BIGINT",
            "comments": "BIGINT",
            "shares": "BIGINT",
            "source": "VARCHAR",
        },
        primary_key=("post_id", "observed_at"),
        description="Engagement over time: one row per post and observation time.",
    ),
    TableSpec(
        "post_texts",
        {"post_id": "VARCHAR", "text": "VARCHAR", "hashtags": "VARCHAR[]", "emotes": "VARCHAR[]"},
        primary_key=("post_id",),
        description="Title and description cleaned for models; hashtags and emote/emoji tokens.",
    ),
    TableSpec(
        "post_comments",
        {
            "comment_id": "VARCHAR",
            "post_id": "VARCHAR",
            "parent_comment_id": "VARCHAR",
            "user_id": "VARCHAR",
            "nickname": "VARCHAR",
            "ip_location": "VARCHAR",
            "content": "VARCHAR",
            "text": "VARCHAR",
            "emotes": "VARCHAR[]",
            "created_at": "TIMESTAMPTZ",
            "likes": "BIGINT",
            "sub_comments": "BIGINT",
            "pictures": "VARCHAR[]",
            "observed_at": "TIMESTAMPTZ",
            "source": "VARCHAR",
        },
        primary_key=("comment_id",),
        description="Comments on posts (MediaCrawler); text: content cleaned of emotes.",
    ),
    TableSpec(
        "image_embeddings",
        {
            "post_id": "VARCHAR",
            "image_index": "INTEGER",
            "encoder": "VARCHAR",
            "embedding": "FLOAT[]",
            "embedded_at": "TIMESTAMPTZ",
        },
        primary_key=("post_id", "image_index", "encoder"),
        description="Image embeddings (L2-normalised) by encoder, so re-clustering re-embeds nothing.",
    ),
    TableSpec(
        "image_clusters",
        {
            "cluster_id": "INTEGER",
            "encoder": "VARCHAR",
            "centroid": "FLOAT[]",
            "images": "BIGINT",
            "updated_at": "TIMESTAMPTZ",
        },
        write_disposition="replace",
        description="The current k-means centroids; ids stay stable across re-clustering.",
    ),
    TableSpec(
        "daily_category_stats",
        {
            "day": "DATE",
            "category": "INTEGER",
            "posts": "BIGINT",
            "likes": "BIGINT",
            "collects": "BIGINT",
            "comments": "BIGINT",
        },
        primary_key=("day", "category"),
        write_disposition="replace",
        description="Per publication day and category: posts (once per category their images "
        "fall in) and their latest likes, collects, comments.",
    ),
    TableSpec(
        "trend_windows",
        {
            "window_end": "DATE",
            "category": "INTEGER",
            "posts_60d": "BIGINT",
            "likes_60d": "BIGINT",
            "collects_60d": "BIGINT",
            "comments_60d": "BIGINT",
            "daily_posts": "BIGINT[]",
            "daily_likes": "BIGINT[]",
            "daily_collects": "BIGINT[]",
            "daily_comments": "BIGINT[]",
            "target_month": "DATE",
            "label_share": "DOUBLE",
            "label_trend": "INTEGER",
        },
        primary_key=("window_end", "category"),
        write_disposition="replace",
        description="60-day windows per category (daily_* lists oldest first, gaps as 0) and "
        "labels for the month two months on; NULL labels: that month is not complete.",
    ),
)

# Crawling that lasts weeks (issue 3): created by migration 2, with the columns in ADDED_COLUMNS.
CRAWL_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "video_sources",
        {
            "bvid": "VARCHAR",
            "source": "VARCHAR",
            "reply_count": "BIGINT",
            "first_seen_at": "TIMESTAMPTZ",
            "last_seen_at": "TIMESTAMPTZ",
        },
        primary_key=("bvid", "source"),
        keep=("first_seen_at",),
        description="Every discovery of a video: `popular`, `search:<keyword>`, `explicit`, with "
        "the reply count it showed then.",
    ),
    TableSpec(
        "crawl_cooldowns",
        {
            "source": "VARCHAR",
            "until": "TIMESTAMPTZ",
            "code": "INTEGER",
            "endpoint": "VARCHAR",
            "bvid": "VARCHAR",
            "message": "VARCHAR",
            "started_at": "TIMESTAMPTZ",
        },
        primary_key=("source",),
        description="A source (API base URL) that answered -412 rests until `until`; crawls "
        "refuse to start before then.",
    ),
)

# Columns migration 2 appends to tables of migration 1 (their specs list them last).
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "emotes": ("image_attempts", "image_error", "image_checked_at"),
    "crawl_state": (
        "total", "head_ctime", "head_rpid", "floor_ctime", "skip_known", "started_at",
        "finished_at",
    ),
}

# Columns migration 4 appends (crawl hardening, issue 8).
HARDENING_COLUMNS: dict[str, tuple[str, ...]] = {"crawl_state": ("full_pass", "full_pass_at")}

# Labelled image + text pairs for the sentiment model (issue 10): created by migration 6.
SENTIMENT_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "sentiment_pairs",
        {
            "source": "VARCHAR",
            "guid": "VARCHAR",
            "text": "VARCHAR",
            "image_path": "VARCHAR",
            "image_sha256": "VARCHAR",
            "label": "VARCHAR",
            "list_file": "VARCHAR",
            "imported_at": "TIMESTAMPTZ",
        },
        primary_key=("source", "guid"),
        keep=("imported_at",),
        description="Image + text pairs (`emopulse import pairs`): label positive | neutral | negative, "
        "NULL for an unlabelled list; image_path absolute, image_sha256 of its bytes.",
    ),
)

# Captions of images (issue 10): created by migration 7; see warehouse/captions.py.
CAPTION_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "captions",
        {
            "image_sha256": "VARCHAR",
            "captioner": "VARCHAR",
            "prompt_sha256": "VARCHAR",
            "caption": "VARCHAR",
            "prompt": "VARCHAR",
            "created_at": "TIMESTAMPTZ",
        },
        primary_key=("image_sha256", "captioner", "prompt_sha256"),
        keep=("created_at",),
        description="What a captioner said of an image, keyed by the image's sha256, the captioner "
        "(`openai:<model>` for an OpenAI-compatible endpoint, `imagenet:<encoder>` for the offline "
        "stand-in) and the prompt's sha256: an image is captioned once per captioner and prompt.",
    ),
)

# Texts labelled with emotions (GoEmotions, issue 11): created by migration 8.
EMOTION_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "emotion_texts",
        {
            "source": "VARCHAR",
            "split": "VARCHAR",
            "text_id": "VARCHAR",
            "text": "VARCHAR",
            "labels": "VARCHAR[]",
            "file": "VARCHAR",
            "line": "INTEGER",
            "imported_at": "TIMESTAMPTZ",
        },
        primary_key=("source", "split", "text_id"),
        keep=("imported_at",),
        description="Texts with their emotion labels (`emopulse import goemotions`): split train | dev | "
        "test, labels the names of emotion_labels in label id order; file and line where the row was read.",
    ),
    TableSpec(
        "emotion_labels",
        {"source": "VARCHAR", "label_id": "INTEGER", "name": "VARCHAR", "imported_at": "TIMESTAMPTZ"},
        primary_key=("source", "label_id"),
        keep=("imported_at",),
        description="The label names of a source of emotion_texts in labels.txt's order (label_id from 0), "
        "the order an emotion model's outputs follow.",
    ),
)

# The trend model's forecasts (issue 12): created by migration 9.
FORECAST_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "trend_forecasts",
        {
            "model_id": "VARCHAR",
            "forecast_at": "TIMESTAMPTZ",
            "category": "INTEGER",
            "window_end": "DATE",
            "target_month": "DATE",
            "share": "DOUBLE",
            "share_lo": "DOUBLE",
            "share_hi": "DOUBLE",
            "trend": "INTEGER",
            "p_down": "DOUBLE",
            "p_flat": "DOUBLE",
            "p_up": "DOUBLE",
        },
        primary_key=("model_id", "category", "window_end"),
        description="A trend model's forecast for a window whose target month was not complete: the category's "
        "share of the target month's posts with its interval, the trend (-1, 0, 1) and its probabilities. "
        "Kept once the month completes (`trend_forecast_outcomes` compares them with what happened).",
    ),
)

# The service (issue 13): what each scheduled job did (`runs`), the schedule (`jobs`), the frozen
# evaluation sets of the promotion gate and its decisions. Created by migration 10.
RUN_STATUSES = ("running", "completed", "failed", "skipped", "waiting")
MODEL_STATUSES = ("champion", "challenger", "rejected", "retired", "archived")

SERVICE_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "runs",
        {
            "run_id": "VARCHAR",
            "job": "VARCHAR",
            "trigger": "VARCHAR",
            "params": "JSON",
            "started_at": "TIMESTAMPTZ",
            "finished_at": "TIMESTAMPTZ",
            "status": "VARCHAR",
            "rows_changed": "BIGINT",
            "error": "VARCHAR",
            "runner": "VARCHAR",
            "detail": "JSON",
        },
        primary_key=("run_id",),
        keep=("started_at",),
        description="One row per run of a scheduled job: `trigger` schedule, catch-up (a restart found runs "
        "missed: coalesced into one), after:<job> (a follow-up), once or manual; `status` running, completed, "
        "failed, skipped (nothing to do yet) or waiting (for the writer); `params` without secrets; "
        "`rows_changed` the rows the job wrote; `runner` embedded:<pid> or prefect:<flow run id>; "
        "`detail` what the job returned.",
    ),
    TableSpec(
        "jobs",
        {
            "job": "VARCHAR",
            "flow": "VARCHAR",
            "schedule": "VARCHAR",
            "params": "JSON",
            "next_run_at": "TIMESTAMPTZ",
            "last_status": "VARCHAR",
            "last_run_at": "TIMESTAMPTZ",
        },
        primary_key=("job",),
        description="The schedule table as the runner (embedded or Prefect) last saw it: the job, its flow, "
        "its schedule (every N s/min/h, a cron line, or after:<job>), its parameters, when it runs next and "
        "how its last run ended.",
    ),
    TableSpec(
        "frozen_sets",
        {"task": "VARCHAR", "key_kind": "VARCHAR", "key": "VARCHAR", "fixed_at": "TIMESTAMPTZ"},
        primary_key=("task", "key_kind", "key"),
        description="The promotion gate's frozen evaluation set per task (emoji: videos; sentiment: pairs; "
        "emotions: texts; trend: target months), fixed before the task's first model trains, excluded from "
        "every later training and renewed only by `emopulse models freeze TASK --renew`.",
    ),
    TableSpec(
        "model_decisions",
        {
            "decision_id": "VARCHAR",
            "decided_at": "TIMESTAMPTZ",
            "task": "VARCHAR",
            "action": "VARCHAR",
            "model_id": "VARCHAR",
            "champion_id": "VARCHAR",
            "metric": "VARCHAR",
            "model_score": "DOUBLE",
            "champion_score": "DOUBLE",
            "tolerance": "DOUBLE",
            "frozen_items": "BIGINT",
            "reason": "VARCHAR",
        },
        primary_key=("decision_id",),
        description="Every registry decision with both figures on the frozen set: `action` promote, reject, "
        "rollback, archive or manual-promote; `model_score` the model's primary metric, `champion_score` the "
        "champion's before the decision (NULL when there was none).",
    ),
)

# Columns migration 10 appends: where a model stands (champion, challenger, rejected, retired, archived).
SERVICE_COLUMNS: dict[str, tuple[str, ...]] = {"models": ("status",)}

# Columns migration 7 appends: whether a prediction saw only the text of an image + text input.
PREDICTION_INPUT_COLUMNS: dict[str, tuple[str, ...]] = {"predictions": ("text_only",)}

# Columns migration 5 appends (the model registry's file hashes, issue 9).
REGISTRY_COLUMNS: dict[str, tuple[str, ...]] = {"models": ("files",)}

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
            # append-only: a page landed again (same id: same answer) keeps its first row, so
            # snapshots publish raw_pages as parts that never overlap (warehouse/snapshots.py)
            keep=("endpoint", "params", "fetched_at", "http_status", "code", "payload", "body",
                  "parse_error", "landed_at"),
            description="Every API answer as received, landed once; `body` only when it is not "
            "JSON.",
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
                "image_attempts": "INTEGER",
                "image_error": "VARCHAR",
                "image_checked_at": "TIMESTAMPTZ",
            },
            primary_key=("emoji_alt",),
            description="Emote catalog keyed by the token text, e.g. `[doge]`; `image_path` is "
            "relative to the home folder, `image_error` why the last download failed.",
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
                "total": "BIGINT",
                "head_ctime": "BIGINT",
                "head_rpid": "BIGINT",
                "floor_ctime": "BIGINT",
                "skip_known": "BOOLEAN",
                "started_at": "TIMESTAMPTZ",
                "finished_at": "TIMESTAMPTZ",
                "full_pass": "BOOLEAN",
                "full_pass_at": "TIMESTAMPTZ",
            },
            primary_key=("bvid", "listing"),
            description="Checkpoint per listing, written in the page's own transaction; `pages` "
            "and `comments` count what the listing's loaded pages carried (a reloaded page counts "
            "again), `newest_ctime` is the newest comment seen. `total`: the count the API "
            "reported (main: at the start of the last pass); `head_*`: the newest root comment "
            "of the last complete pass (the next pass stops there); `floor_ctime`: complete down "
            "to this time (NULL: to the first comment); `skip_known`: the pass restarted after "
            "a stale cursor and skips stored comments; `full_pass`: the pass under way reads the "
            "whole listing; `full_pass_at`: when the last full pass finished.",
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
                "files": "JSON",
                "status": "VARCHAR",
            },
            primary_key=("model_id",),
            keep=("version", "created_at"),
            description="Model registry; version counts up per task. `artifacts`: name → path "
            "relative to the home; `files`: every file of the model folder (path relative to the "
            "home) → sha256, checked when scoring loads it; `sha256`: model.onnx's; `status`: champion (what "
            "scoring and forecasts use), challenger, rejected (by the promotion gate), retired (a former "
            "champion) or archived.",
        ),
        TableSpec(
            "predictions",
            {
                "model_id": "VARCHAR",
                "entity_kind": "VARCHAR",
                "entity_id": "VARCHAR",
                "label": "VARCHAR",
                "score": "DOUBLE",
                "rank": "INTEGER",
                "scored_at": "TIMESTAMPTZ",
                "text_only": "BOOLEAN",
            },
            primary_key=("model_id", "entity_kind", "entity_id", "label"),
            description="What a model said of each entity, one row per label: `entity_kind` "
            "comment (rpid as text), post (post_id) or text; a ranking model writes its top-k "
            "labels (score: softmax probability), a multi-label model every label (score: "
            "intensity in [0, 1]), a regression model every output (score: the value); `rank`: "
            "the label's rank by score, 1 = highest; `text_only`: an image + text model saw no image "
            "(a comment, a post without a readable image), NULL for a model that takes no images.",
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
        *CRAWL_TABLES,
        *POST_TABLES,
        *SENTIMENT_TABLES,
        *CAPTION_TABLES,
        *EMOTION_TABLES,
        *FORECAST_TABLES,
        *SERVICE_TABLES,
    )
}

# Tables and views readers get as Parquet snapshots (and catalog views), in this order.
PUBLISHED: tuple[str, ...] = (*TABLES, "emoji_comments", "emoji_comments_keyed", "daily_sentiment", "daily_emotions",
                              "trend_forecast_outcomes")

# A published view is re-exported whenever one of the tables it reads changed.
DERIVED_FROM: dict[str, tuple[str, ...]] = {"emoji_comments": ("comments", "comment_emotes"),
                                            "emoji_comments_keyed": ("comments", "comment_emotes"),
                                            "daily_sentiment": ("predictions", "models", "comments", "posts"),
                                            "daily_emotions": ("predictions", "models", "comments", "posts"),
                                            "trend_forecast_outcomes": ("trend_forecasts", "trend_windows")}


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
