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

__all__ = ["STATUS_SQL", "crawl_status", "service_status"]

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


def service_status(home: Path, jobs_table: dict | None = None) -> dict[str, pd.DataFrame]:
    """`emopulse status`: the jobs (schedule, next run, last outcome), the latest runs and each
    table's freshness. Jobs and runs are the published tables with the run log's newer lines
    laid over them (a run still going, or waiting for the writer, shows at once); jobs of the
    schedule table (`jobs_table`: name -> (flow, schedule)) that never ran are listed too."""
    from emopulse.warehouse import SnapshotMissing
    from emopulse.warehouse.snapshots import table_freshness

    from .runlog import read_run_log

    log_runs, log_jobs = read_run_log(home)
    try:
        runs = query(home, "SELECT * EXCLUDE (detail) FROM runs")
        jobs = query(home, "SELECT * FROM jobs")
    except (SnapshotMissing, duckdb.CatalogException, duckdb.BinderException):
        runs, jobs = log_runs.iloc[:0].drop(columns=["detail"]), log_jobs.iloc[:0]
    runs = pd.concat([runs, log_runs.drop(columns=["detail"])], ignore_index=True)
    runs["started_at"] = pd.to_datetime(runs["started_at"], utc=True, format="ISO8601")
    runs = runs.sort_values("started_at").drop_duplicates("run_id", keep="last")
    known = pd.DataFrame([{"job": j, "flow": f, "schedule": sch} for j, (f, sch) in (jobs_table or {}).items()],
                         columns=["job", "flow", "schedule"])
    jobs = pd.concat([known, jobs, log_jobs], ignore_index=True).drop_duplicates("job", keep="last")
    for column in ("next_run_at", "last_status"):
        if column not in jobs:
            jobs[column] = None
    last = runs.drop_duplicates("job", keep="last").set_index("job")
    jobs = jobs.assign(last_status=[last["status"].get(j, s) for j, s in zip(jobs["job"], jobs["last_status"])],
                       last_error=[last["error"].get(j) for j in jobs["job"]],
                       next_run_at=[_shanghai(v) for v in jobs["next_run_at"]])
    recent = runs.sort_values("started_at", ascending=False).head(20).copy()
    for column in ("started_at", "finished_at"):
        recent[column] = [_shanghai(v) for v in recent[column]]
    tables = pd.DataFrame(table_freshness(Path(home)), columns=["table", "rows", "changed_at"])
    tables["changed_at"] = [_shanghai(v) for v in tables["changed_at"]]
    return {"jobs": jobs[["job", "flow", "schedule", "next_run_at", "last_status", "last_error"]],
            "runs": recent[["job", "trigger", "status", "started_at", "finished_at", "rows_changed", "error"]],
            "tables": tables}
