"""Versioned schema migrations, recorded in `schema_version`; applying them twice is a no-op.

Migration 1 creates every table as `schema.TABLES` declares it. A later schema change appends a
migration (e.g. `ALTER TABLE t ADD COLUMN IF NOT EXISTS c T`) and updates the spec in the same
change, so fresh and old databases converge on the same schema.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from .schema import (
    ADDED_COLUMNS, CAPTION_TABLES, CRAWL_TABLES, EMOJI_COMMENTS_COLUMNS, EMOTION_TABLES, FORECAST_TABLES, HARDENING_COLUMNS, POST_TABLES,
    PREDICTION_INPUT_COLUMNS, REGISTRY_COLUMNS, SENTIMENT_TABLES, SERVICE_COLUMNS, SERVICE_TABLES, TABLES,
    create_table_sql,
)

__all__ = ["DAILY_EMOTIONS_SQL", "DAILY_SENTIMENT_SQL", "MIGRATIONS", "TREND_FORECAST_OUTCOMES_SQL", "Migration", "migrate",
           "schema_version"]

# One row per (comment, emote), deduplicated: the same user (mid, else uname) posting the same
# content (message, else sentence) counts once per emote; the earliest real comment is kept. A row
# with no user at all is never merged with another. `emoji_comments` is this without `rpid`.
EMOJI_COMMENTS_KEYED_SQL = """
CREATE OR REPLACE VIEW emoji_comments_keyed AS
WITH joined AS (
    SELECT c.rpid, c.bvid, e.emoji_alt, e.emoji_name, c.message, c.sentence, c.mid, c.uname,
           c.ctime,
           coalesce(nullif(c.mid, ''), nullif(c.uname, ''), 'rpid:' || c.rpid) AS user_key,
           coalesce(nullif(c.message, ''), c.sentence) AS content_key
    FROM comments AS c JOIN comment_emotes AS e USING (rpid)
)
SELECT rpid, bvid, emoji_alt, emoji_name, message, sentence, mid, uname,
       strftime(make_timestamp(ctime::BIGINT * 1000000), '%Y-%m-%dT%H:%M:%S') || '+00:00'
           AS ctime_iso
FROM joined
QUALIFY row_number() OVER (
    PARTITION BY user_key, content_key, emoji_alt ORDER BY ctime NULLS LAST, rpid < 0, rpid
) = 1
"""

EMOJI_COMMENTS_SQL = (
    "CREATE OR REPLACE VIEW emoji_comments AS SELECT "
    + ", ".join(EMOJI_COMMENTS_COLUMNS)
    + " FROM emoji_comments_keyed"
)


# Per day and entity kind, how many comments (their ctime's UTC day) and posts (their local
# published_date) the latest sentiment model labels positive, neutral or negative (its top label),
# and their share of that day's scored entities of the kind.
DAILY_SENTIMENT_SQL = """
CREATE OR REPLACE VIEW daily_sentiment AS
WITH model AS (
    SELECT model_id FROM models WHERE task = 'sentiment' ORDER BY version DESC LIMIT 1
), top AS (
    SELECT p.entity_kind, p.entity_id, p.label
    FROM predictions AS p JOIN model USING (model_id) WHERE p.rank = 1
), dated AS (
    SELECT t.entity_kind, t.label, CAST(make_timestamp(c.ctime::BIGINT * 1000000) AS DATE) AS day
    FROM top AS t JOIN comments AS c ON t.entity_kind = 'comment' AND CAST(c.rpid AS VARCHAR) = t.entity_id
    UNION ALL
    SELECT t.entity_kind, t.label, po.published_date AS day
    FROM top AS t JOIN posts AS po ON t.entity_kind = 'post' AND po.post_id = t.entity_id
)
SELECT day, entity_kind, label, count(*) AS n,
       count(*) / sum(count(*)) OVER (PARTITION BY day, entity_kind) AS share
FROM dated WHERE day IS NOT NULL
GROUP BY day, entity_kind, label
"""

# Per day, entity kind and emotion, the mean intensity the latest emotions model gives comments
# (their ctime's UTC day) and posts (their local published_date) as an energy of 0-10 (its score,
# in [0, 1], times 10), and how many entities it scored.
DAILY_EMOTIONS_SQL = """
CREATE OR REPLACE VIEW daily_emotions AS
WITH model AS (
    SELECT model_id FROM models WHERE task = 'emotions' ORDER BY version DESC LIMIT 1
), scored AS (
    SELECT p.entity_kind, p.entity_id, p.label AS emotion, p.score
    FROM predictions AS p JOIN model USING (model_id)
), dated AS (
    SELECT s.entity_kind, s.entity_id, s.emotion, s.score,
           CAST(make_timestamp(c.ctime::BIGINT * 1000000) AS DATE) AS day
    FROM scored AS s JOIN comments AS c ON s.entity_kind = 'comment' AND CAST(c.rpid AS VARCHAR) = s.entity_id
    UNION ALL
    SELECT s.entity_kind, s.entity_id, s.emotion, s.score, po.published_date AS day
    FROM scored AS s JOIN posts AS po ON s.entity_kind = 'post' AND po.post_id = s.entity_id
)
SELECT day, entity_kind, emotion, avg(score) * 10 AS mean_energy, count(DISTINCT entity_id) AS n
FROM dated WHERE day IS NOT NULL
GROUP BY day, entity_kind, emotion
"""

# Every trend forecast whose target month has completed since, beside what happened: the actual
# share and trend, the absolute error, whether the interval held it, whether the trend was right.
TREND_FORECAST_OUTCOMES_SQL = """
CREATE OR REPLACE VIEW trend_forecast_outcomes AS
SELECT f.model_id, f.forecast_at, f.category, f.window_end, f.target_month, f.share, f.share_lo, f.share_hi,
       f.trend, w.label_share AS actual_share, w.label_trend AS actual_trend,
       abs(f.share - w.label_share) AS abs_error,
       w.label_share BETWEEN f.share_lo AND f.share_hi AS in_interval,
       f.trend = w.label_trend AS trend_hit
FROM trend_forecasts AS f JOIN trend_windows AS w USING (window_end, category)
WHERE w.label_share IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


def _initial(con: duckdb.DuckDBPyConnection) -> None:
    for spec in TABLES.values():
        con.execute(create_table_sql(spec))
    con.execute(EMOJI_COMMENTS_KEYED_SQL)
    con.execute(EMOJI_COMMENTS_SQL)


def _crawling(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 3: pass state on crawl_state, image state on emotes, video_sources, cool-downs."""
    _add_columns(con, ADDED_COLUMNS)
    for spec in CRAWL_TABLES:
        con.execute(create_table_sql(spec))


def _posts(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 4: posts, their images, metrics, texts and comments, embeddings, clusters, windows."""
    for spec in POST_TABLES:
        con.execute(create_table_sql(spec))


def _add_columns(con: duckdb.DuckDBPyConnection, added: dict[str, tuple[str, ...]]) -> None:
    for name, columns in added.items():
        for column in columns:
            type_ = TABLES[name].columns[column]
            con.execute(f'ALTER TABLE {name} ADD COLUMN IF NOT EXISTS "{column}" {type_}')


def _hardening(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 8: full passes (`crawl_state.full_pass`, `full_pass_at`). A main listing whose
    last pass read it to its end counts that pass as its last full one, so upgrading does not
    send every video through a full pass at once."""
    _add_columns(con, HARDENING_COLUMNS)
    con.execute("UPDATE crawl_state SET full_pass_at = finished_at WHERE listing = 'main' "
                "AND is_end AND floor_ctime IS NULL AND full_pass_at IS NULL")


def _columns_of(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [name]).fetchall()]


def _long_predictions(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 9: `predictions` keyed by (model_id, entity_kind, entity_id, label), without `task`;
    `models.files` (sha256 of every file of a model folder).

    Today's rows are top-k emotes of comments: they become `entity_kind` 'comment', label, score
    and rank kept (a label twice for one entity, which the old key allowed, keeps its best rank)."""
    _add_columns(con, REGISTRY_COLUMNS)
    if "task" not in _columns_of(con, "predictions"):
        return  # created in the new shape (migration 1 from today's spec)
    spec = TABLES["predictions"]
    con.execute("ALTER TABLE predictions RENAME TO predictions_v4")
    con.execute(create_table_sql(spec))
    con.execute("""
        INSERT INTO predictions (model_id, entity_kind, entity_id, label, score, rank, scored_at)
        SELECT model_id, 'comment', entity_id, label, score, rank, scored_at FROM predictions_v4
        WHERE model_id IS NOT NULL AND entity_id IS NOT NULL AND label IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY model_id, entity_id, label ORDER BY rank) = 1
    """)
    con.execute("DROP TABLE predictions_v4")


def _sentiment(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 10: the labelled image + text pairs of the sentiment model."""
    for spec in SENTIMENT_TABLES:
        con.execute(create_table_sql(spec))


def _captions(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 10: cached image captions, `predictions.text_only`, the `daily_sentiment` view."""
    for spec in CAPTION_TABLES:
        con.execute(create_table_sql(spec))
    _add_columns(con, PREDICTION_INPUT_COLUMNS)
    con.execute(DAILY_SENTIMENT_SQL)


def _emotions(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 11: GoEmotions texts and their label names, the `daily_emotions` view."""
    for spec in EMOTION_TABLES:
        con.execute(create_table_sql(spec))
    con.execute(DAILY_EMOTIONS_SQL)


def _forecasts(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 12: the trend model's forecasts and the `trend_forecast_outcomes` view."""
    for spec in FORECAST_TABLES:
        con.execute(create_table_sql(spec))
    con.execute(TREND_FORECAST_OUTCOMES_SQL)


def _service(con: duckdb.DuckDBPyConnection) -> None:
    """Issue 13: runs, jobs, frozen sets, model decisions, `models.status`. The latest model of
    each task becomes its champion (what scoring used until now), the others retired."""
    for spec in SERVICE_TABLES:
        con.execute(create_table_sql(spec))
    _add_columns(con, SERVICE_COLUMNS)
    con.execute("""
        UPDATE models SET status = CASE WHEN version = (SELECT max(version) FROM models AS m WHERE m.task = models.task)
                                        THEN 'champion' ELSE 'retired' END
        WHERE status IS NULL""")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables of issue 2 and the emoji_comments view", _initial),
    Migration(2, "crawl passes, emote image state, video sources, cool-downs", _crawling),
    Migration(3, "posts, images, metrics, texts, comments, clusters, daily stats, trend windows", _posts),
    Migration(4, "full passes of the crawl (crawl_state.full_pass, full_pass_at)", _hardening),
    Migration(5, "long predictions (model, entity kind, entity, label); models.files", _long_predictions),
    Migration(6, "sentiment_pairs (image + text pairs of the sentiment model)", _sentiment),
    Migration(7, "captions, predictions.text_only, the daily_sentiment view", _captions),
    Migration(8, "emotion_texts, emotion_labels, the daily_emotions view", _emotions),
    Migration(9, "trend_forecasts, the trend_forecast_outcomes view", _forecasts),
    Migration(10, "runs, jobs, frozen_sets, model_decisions, models.status", _service),
)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest applied migration, 0 for an empty database."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]


def migrate(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Apply the migrations not yet recorded, each in its own transaction; return their versions."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMPTZ)"
    )
    # Every migration not recorded runs, not only those above the highest: migrations written in
    # parallel may land out of order (a database at 3 still gets a later-merged 2).
    recorded = {v for (v,) in con.execute("SELECT version FROM schema_version").fetchall()}
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in recorded:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            migration.apply(con)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now())",
                [migration.version, migration.description],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied
