"""What the dashboard shows, read from the published snapshots through the warehouse's read API.

Every function takes the `EMOPULSE_HOME` folder and returns plain values or DataFrames; none opens
the writer's database, and none knows about Streamlit (the app caches them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from emopulse.warehouse import SnapshotMissing, query

__all__ = [
    "Headline",
    "ModelSummary",
    "Snapshot",
    "daily_comments",
    "daily_emote_comments",
    "emoji_shares",
    "headline",
    "latest_model",
    "metric_table",
    "snapshot",
    "top_emotes",
]

# Calendar days are counted where the comments are written.
TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Snapshot:
    """The published snapshot set readers currently see."""

    version: str
    published_at: datetime


@dataclass(frozen=True)
class Headline:
    comments: int
    videos: int
    emotes: int  # distinct emotes in the cleaned `emoji_comments`


@dataclass(frozen=True)
class ModelSummary:
    model_id: str
    task: str
    version: str
    created_at: datetime | None
    metrics: dict[str, Any] = field(default_factory=dict)


def snapshot(home: Path) -> Snapshot | None:
    """The current snapshot's version and publish time, or None before the first publish."""
    try:
        row = query(home, "SELECT version, published_at FROM snapshot_info").iloc[0]
    except SnapshotMissing:
        return None
    return Snapshot(str(row.version), datetime.fromisoformat(str(row.published_at)))


def headline(home: Path) -> Headline:
    row = query(
        home,
        """
        SELECT (SELECT count(*) FROM comments) AS comments,
               (SELECT count(*) FROM videos) AS videos,
               (SELECT count(DISTINCT emoji_alt) FROM emoji_comments) AS emotes
        """,
    ).iloc[0]
    return Headline(int(row.comments), int(row.videos), int(row.emotes))


def emoji_shares(home: Path) -> pd.DataFrame:
    """`emoji_counts` as published (small emotes folded into `others`), largest first, `others` last."""
    return query(
        home,
        """
        SELECT emoji_alt, emoji_name, count, share FROM emoji_counts
        ORDER BY emoji_alt = 'others', count DESC, emoji_alt
        """,
    )


def top_emotes(home: Path, n: int) -> pd.DataFrame:
    """The `n` emotes in the most cleaned comments (no `others` folding), largest first."""
    return query(
        home,
        f"""
        SELECT emoji_alt, any_value(emoji_name) AS emoji_name, count(*) AS count
        FROM emoji_comments GROUP BY emoji_alt
        ORDER BY count DESC, emoji_alt LIMIT {int(n)}
        """,
    )


def daily_comments(home: Path) -> pd.DataFrame:
    """Comments per calendar day in Asia/Shanghai, quiet days as 0: columns `day`, `comments`."""
    return query(
        home,
        f"""
        WITH per_day AS (
            SELECT {_shanghai_day("to_timestamp(ctime)")} AS day, count(*) AS comments
            FROM comments WHERE ctime IS NOT NULL GROUP BY day
        ), {_DAYS_SQL}
        SELECT day, coalesce(comments, 0) AS comments
        FROM days LEFT JOIN per_day USING (day) ORDER BY day
        """,
    )


def daily_emote_comments(home: Path, emotes: list[str]) -> pd.DataFrame:
    """Cleaned comments per Asia/Shanghai day for each of `emotes`, quiet days as 0:
    columns `day`, `emoji_alt`, `emoji_name`, `comments`."""
    if not emotes:
        return pd.DataFrame(columns=["day", "emoji_alt", "emoji_name", "comments"])
    wanted = ", ".join(_sql_string(e) for e in emotes)
    return query(
        home,
        f"""
        WITH rows AS (
            SELECT {_shanghai_day("CAST(ctime_iso AS TIMESTAMPTZ)")} AS day, emoji_alt, emoji_name
            FROM emoji_comments WHERE ctime_iso IS NOT NULL AND emoji_alt IN ({wanted})
        ), per_day AS (
            SELECT day, emoji_alt, count(*) AS comments FROM rows GROUP BY day, emoji_alt
        ), names AS (
            SELECT emoji_alt, mode(emoji_name) AS emoji_name FROM rows GROUP BY emoji_alt
        ), {_DAYS_SQL}
        SELECT day, emoji_alt, emoji_name, coalesce(comments, 0) AS comments
        FROM days CROSS JOIN names LEFT JOIN per_day USING (day, emoji_alt)
        ORDER BY day, emoji_alt
        """,
    )


def latest_model(home: Path) -> ModelSummary | None:
    """The most recently registered model, or None before the first training run."""
    frame = query(
        home,
        "SELECT model_id, task, version, created_at, metrics FROM models ORDER BY created_at DESC LIMIT 1",
    )
    if frame.empty:
        return None
    row = frame.iloc[0]
    metrics = row.metrics
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    return ModelSummary(
        model_id=str(row.model_id),
        task=str(row.task),
        version=str(row.version),
        created_at=None if pd.isna(row.created_at) else _utc(pd.Timestamp(row.created_at)),
        metrics=dict(metrics or {}),
    )


# Tokens that say a flattened metrics key belongs to the majority baseline, or only say where it came from.
_BASELINE_TOKENS = {"baseline", "majority"}
_NOISE_TOKENS = {"model", "test", "eval", "metrics"}  # as whole nested keys only
# Per-run details (per-emote tables, histories, image coverage): the model's eval_summary.md shows them.
_DETAIL_KEYS = {"runs", "image_coverage"}


def metric_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """A model's numeric metrics as rows `metric, model, baseline`, Top-k first (strict before any).

    Nested dicts are flattened; a key mentioning `baseline`/`majority` (`baseline.top1_strict`,
    `majority_top1_strict`, ...) fills the baseline column of the metric it names.
    """
    rows: dict[str, dict[str, float]] = {}
    for key, value in _flatten(metrics).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or key.split(".")[0] in _DETAIL_KEYS:
            continue
        segments = [seg for seg in key.lower().split(".") if seg not in _NOISE_TOKENS]
        tokens = [t for seg in segments for t in re.split(r"[_\-]+", seg) if t]
        role = "baseline" if _BASELINE_TOKENS & set(tokens) else "model"
        name = "_".join(t for t in tokens if t not in _BASELINE_TOKENS) or key
        rows.setdefault(name, {})[role] = float(value)
    table = pd.DataFrame(
        [(name, v.get("model"), v.get("baseline")) for name, v in rows.items()],
        columns=["metric", "model", "baseline"],
    )
    # Top-k by k, the strict (main-emote) variant first; everything else after, as recorded.
    k = table.metric.str.extract(r"^top(\d+)", expand=False).astype(float).fillna(float("inf"))
    loose = ~table.metric.str.contains("strict")
    order = table.assign(_k=k, _loose=loose).sort_values(["_k", "_loose"], kind="stable").index
    return table.loc[order].reset_index(drop=True)


def _utc(ts: pd.Timestamp) -> datetime:
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


# Every calendar day from the first to the last in `per_day(day, ...)`, so quiet days count 0.
_DAYS_SQL = """days AS (
    SELECT CAST(unnest(generate_series(min(day), max(day), INTERVAL 1 DAY)) AS DATE) AS day FROM per_day
)"""


def _shanghai_day(timestamptz_sql: str) -> str:
    return f"CAST(timezone('{TIMEZONE}', {timestamptz_sql}) AS DATE)"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
