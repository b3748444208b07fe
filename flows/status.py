"""`emopulse crawl status`: per video, how far the crawl got, when, and why it stopped.

A read command: it asks the published snapshot (`emopulse.warehouse.query`), never the writer's
database, so it answers while a crawl runs (showing the state the last writer published).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from emopulse.ingest.window import SHANGHAI
from emopulse.warehouse import WarehouseError, query

__all__ = ["STATUS_SQL", "crawl_status"]

STATUS_SQL = """
WITH stored AS (SELECT bvid, count(*) AS n FROM comments GROUP BY bvid),
threads AS (
    SELECT bvid, count(*) FILTER (WHERE NOT is_end) AS open FROM crawl_state
    WHERE listing LIKE 'reply:%' GROUP BY bvid
)
SELECT v.bvid, v.title, v.source, coalesce(s.n, 0) AS comments, v.reply_count,
       coalesce(m.pages, 0) AS pages, coalesce(t.open, 0) AS open_threads,
       CASE WHEN v.status <> 'ok' THEN v.status ELSE coalesce(m.status, 'new') END AS status,
       m.updated_at AS last_activity, m.finished_at AS last_complete_pass,
       m.floor_ctime, m.is_end, m.message
FROM videos AS v
LEFT JOIN crawl_state AS m ON m.bvid = v.bvid AND m.listing = 'main'
LEFT JOIN stored AS s ON s.bvid = v.bvid
LEFT JOIN threads AS t ON t.bvid = v.bvid
WHERE (v.aid IS NOT NULL OR m.bvid IS NOT NULL) {only}
ORDER BY m.updated_at DESC NULLS LAST, v.bvid
"""

_WHY = {
    "new": "discovered, not crawled yet",
    "running": "was in progress when the snapshot was published: resumes from its checkpoint",
    "done": "complete",
    "limit": "stopped at --max-comments-per-video",
}


def _shanghai(value: object) -> str:
    if value is None or pd.isna(value):
        return ""
    moment = pd.Timestamp(value).to_pydatetime()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _why(row: pd.Series) -> str:
    if isinstance(row["message"], str) and row["message"]:
        return row["message"]
    why = _WHY.get(row["status"], row["status"])
    if row["status"] == "done" and pd.notna(row["floor_ctime"]):
        since = datetime.fromtimestamp(int(row["floor_ctime"]), SHANGHAI).date()
        why += f" from {since} on (--since)"
    return why


def crawl_status(home: Path, bvids: Iterable[str] = ()) -> tuple[pd.DataFrame, str]:
    """One row per video (times in Asia/Shanghai), and a line about an active cool-down ("")."""
    wanted = list(bvids)
    only = ""
    if wanted:
        only = "AND v.bvid IN (" + ", ".join("'" + b.replace("'", "''") + "'" for b in wanted) + ")"
    try:
        videos = query(home, STATUS_SQL.format(only=only))
        cooling = query(home, "SELECT source, until, code, message FROM crawl_cooldowns "
                              f"WHERE until > '{datetime.now(UTC).isoformat()}'::TIMESTAMPTZ")
    except (duckdb.CatalogException, duckdb.BinderException) as exc:
        raise WarehouseError(
            f"the snapshot under {Path(home).absolute()} was published by an older emopulse: run "
            f"`emopulse publish` once ({str(exc).splitlines()[0]})"
        ) from exc
    videos["why"] = [_why(row) for _, row in videos.iterrows()] if len(videos) else []
    for column in ("last_activity", "last_complete_pass"):
        videos[column] = [_shanghai(v) for v in videos[column]]
    videos = videos.drop(columns=["floor_ctime", "is_end", "message"])
    note = "".join(
        f"{row.source} is cooling down until {_shanghai(row.until)} Asia/Shanghai after code "
        f"{row.code} ({row.message}); crawls refuse to start before then.\n"
        for row in cooling.itertuples()
    )
    return videos, note.rstrip("\n")
