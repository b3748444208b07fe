"""Daily category statistics and rolling 60-day trend windows, in DuckDB SQL, kept incrementally.

- `daily_category_stats(day, category, posts, likes, collects, comments)`: per publication day, a
  post counts once in each category its images fall in, with its latest observed engagement.
- `trend_windows`: one row per (`window_end`, `category`) for every day with 60 days of history
  behind it (from the first day with data), for every category known. Windows are calendar-day
  `RANGE` frames over a dense day grid, so days without posts count as zeros; `daily_*` are the 60
  daily values oldest first, `*_60d` their sums. `target_month` is the calendar month two months
  after `window_end`'s (2023-12-10 → 2024-02-01); `label_share` is the share of that month's posts
  with an image in the category, `label_trend` its tercile (1 above the 2/3 `quantile_cont` over
  all known categories, a category without posts counting 0; -1 below the 1/3 one; else 0). Labels
  are NULL until the data holds a post on or after the target month's last day.

`refresh_windows(wh, days)` recomputes what the given publication days touch: their daily rows
(written only where they changed), the windows whose 60 days include a changed day or that are
new, and the labels of the months those days (or newly completed months) fall in. Without `days`,
or when the first day or the set of categories changed, everything is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa

from .writer import Warehouse

__all__ = ["HORIZON_MONTHS", "WINDOW_DAYS", "WindowRefresh", "refresh_windows", "target_month"]

WINDOW_DAYS = 60
HORIZON_MONTHS = 2

# `{scope}` limits images and metrics to the scoped posts (empty for a full rebuild).
_DAILY_SQL = """
WITH scoped AS (
    SELECT post_id, published_date AS day FROM posts
    WHERE published_date IS NOT NULL {day_filter}
),
categories AS (
    SELECT DISTINCT i.post_id, i.category FROM post_images AS i {scope}
    WHERE i.category IS NOT NULL
),
latest AS (
    SELECT post_id, arg_max(likes, observed_at) AS likes,
           arg_max(collects, observed_at) AS collects, arg_max(comments, observed_at) AS comments
    FROM post_metrics {scope}
    GROUP BY post_id
)
SELECT s.day, c.category, count(*)::BIGINT AS posts,
       coalesce(sum(m.likes), 0)::BIGINT AS likes,
       coalesce(sum(m.collects), 0)::BIGINT AS collects,
       coalesce(sum(m.comments), 0)::BIGINT AS comments
FROM categories AS c JOIN scoped AS s USING (post_id) LEFT JOIN latest AS m USING (post_id)
GROUP BY s.day, c.category
"""

# Share of each (complete) month's posts per category, and its tercile over all categories.
_LABELS_SQL = """
WITH categories AS (SELECT DISTINCT category FROM daily_category_stats),
totals AS (
    SELECT month, total FROM (
        SELECT date_trunc('month', published_date)::DATE AS month, count(*) AS total
        FROM posts WHERE published_date IS NOT NULL {month_filter}
        GROUP BY 1
    )
    WHERE (month + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE <= (SELECT max(published_date) FROM posts)
),
counts AS (
    SELECT date_trunc('month', day)::DATE AS month, category, sum(posts) AS n
    FROM daily_category_stats WHERE date_trunc('month', day)::DATE IN (SELECT month FROM totals)
    GROUP BY ALL
),
shares AS (
    SELECT t.month, c.category, coalesce(n.n, 0) / t.total AS share
    FROM totals AS t CROSS JOIN categories AS c LEFT JOIN counts AS n USING (month, category)
),
cuts AS (
    SELECT month, quantile_cont(share, 1.0 / 3) AS low, quantile_cont(share, 2.0 / 3) AS high
    FROM shares GROUP BY month
)
SELECT month, category, share,
       CASE WHEN share > high THEN 1 WHEN share < low THEN -1 ELSE 0 END AS trend
FROM shares JOIN cuts USING (month)
"""

_WINDOWS_SQL = """
WITH categories AS (SELECT DISTINCT category FROM daily_category_stats),
grid AS (
    SELECT r.day::DATE AS day, c.category
    FROM range(DATE '{grid_start}', DATE '{grid_end}' + 1, INTERVAL 1 DAY) AS r(day)
    CROSS JOIN categories AS c
),
dense AS (
    SELECT g.day, g.category, coalesce(s.posts, 0) AS posts, coalesce(s.likes, 0) AS likes,
           coalesce(s.collects, 0) AS collects, coalesce(s.comments, 0) AS comments
    FROM grid AS g LEFT JOIN daily_category_stats AS s USING (day, category)
),
framed AS (
    -- the frame lists its rows in the window's ORDER BY (day) order: oldest first
    SELECT day AS window_end, category,
           sum(posts) OVER w AS posts_60d, sum(likes) OVER w AS likes_60d,
           sum(collects) OVER w AS collects_60d, sum(comments) OVER w AS comments_60d,
           list(posts) OVER w AS daily_posts, list(likes) OVER w AS daily_likes,
           list(collects) OVER w AS daily_collects, list(comments) OVER w AS daily_comments
    FROM dense
    WINDOW w AS (PARTITION BY category ORDER BY day
                 RANGE BETWEEN INTERVAL {preceding} DAYS PRECEDING AND CURRENT ROW)
)
SELECT f.window_end, f.category, f.posts_60d::BIGINT, f.likes_60d::BIGINT,
       f.collects_60d::BIGINT, f.comments_60d::BIGINT,
       f.daily_posts, f.daily_likes, f.daily_collects, f.daily_comments,
       (date_trunc('month', f.window_end) + INTERVAL {horizon} MONTH)::DATE AS target_month,
       l.share AS label_share, l.trend AS label_trend
FROM framed AS f
LEFT JOIN _labels AS l
    ON l.month = (date_trunc('month', f.window_end) + INTERVAL {horizon} MONTH)::DATE
   AND l.category = f.category
WHERE f.window_end >= DATE '{first_end}' {end_filter}
"""


@dataclass(frozen=True, slots=True)
class WindowRefresh:
    """What one refresh did."""

    full: bool  # everything was rebuilt
    days_changed: int  # days whose daily_category_stats rows changed (all days when rebuilt)
    windows_written: int  # trend_windows rows (re)computed
    labels_updated: int  # trend_windows rows whose labels changed without recomputing features
    first_day: date | None = None
    last_day: date | None = None


def target_month(window_end: date, months: int = HORIZON_MONTHS) -> date:
    """The first day of the calendar month `months` after `window_end`'s (year-aware)."""
    index = window_end.year * 12 + window_end.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _register_dates(wh: Warehouse, name: str, column: str, values: Iterable[date]) -> None:
    wh.con.register(name, pa.table({column: pa.array(sorted(set(values)), pa.date32())}))


def _bounds(wh: Warehouse) -> tuple[date | None, date | None]:
    return wh.con.execute("SELECT min(day), max(day) FROM daily_category_stats").fetchall()[0]


def _refresh_daily(wh: Warehouse, days: set[date] | None) -> set[date] | None:
    """Recompute daily rows of `days` (all when None); return the days whose rows changed."""
    con = wh.con
    if days is None:
        con.execute("DELETE FROM daily_category_stats")
        con.execute("INSERT INTO daily_category_stats " + _DAILY_SQL.format(day_filter="", scope=""))
        return None
    _register_dates(wh, "_days", "day", days)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _new_daily AS "
            + _DAILY_SQL.format(day_filter="AND published_date IN (SELECT day FROM _days)",
                                scope="SEMI JOIN scoped USING (post_id)")
        )
        changed = {
            d
            for (d,) in con.execute(
                """
                SELECT DISTINCT day FROM (
                    (SELECT * FROM _new_daily
                     EXCEPT SELECT * FROM daily_category_stats WHERE day IN (SELECT day FROM _days))
                    UNION ALL
                    (SELECT * FROM daily_category_stats WHERE day IN (SELECT day FROM _days)
                     EXCEPT SELECT * FROM _new_daily))
                """
            ).fetchall()
        }
        _register_dates(wh, "_changed", "day", changed)
        try:
            con.execute("DELETE FROM daily_category_stats WHERE day IN (SELECT day FROM _changed)")
            con.execute(
                "INSERT INTO daily_category_stats SELECT * FROM _new_daily "
                "WHERE day IN (SELECT day FROM _changed)"
            )
        finally:
            con.unregister("_changed")
        con.execute("DROP TABLE _new_daily")
    finally:
        con.unregister("_days")
    return changed


def _labels(wh: Warehouse, months: set[date] | None) -> None:
    """Fill the temp table `_labels` for `months` (all complete months when None)."""
    if months is None:
        wh.con.execute("CREATE OR REPLACE TEMP TABLE _labels AS " + _LABELS_SQL.format(month_filter=""))
        return
    _register_dates(wh, "_months", "month", months)
    try:
        wh.con.execute(
            "CREATE OR REPLACE TEMP TABLE _labels AS "
            + _LABELS_SQL.format(
                month_filter="AND date_trunc('month', published_date)::DATE IN (SELECT month FROM _months)"
            )
        )
    finally:
        wh.con.unregister("_months")


def _write_windows(wh: Warehouse, first: date, last: date, ends: set[date] | None) -> int:
    """(Re)compute the windows ending on `ends` (all when None) with labels from `_labels`."""
    first_end = first + timedelta(days=WINDOW_DAYS - 1)
    if ends is not None:
        ends = {e for e in ends if first_end <= e <= last}
        if not ends:
            return 0
    lo = first_end if ends is None else min(ends)
    hi = last if ends is None else max(ends)
    sql = _WINDOWS_SQL.format(
        grid_start=max(first, lo - timedelta(days=WINDOW_DAYS - 1)), grid_end=hi,
        preceding=WINDOW_DAYS - 1, horizon=HORIZON_MONTHS, first_end=first_end,
        end_filter="" if ends is None else "AND f.window_end IN (SELECT window_end FROM _ends)",
    )
    con = wh.con
    if ends is None:
        con.execute("DELETE FROM trend_windows")
        return con.execute("INSERT INTO trend_windows " + sql).fetchall()[0][0]
    _register_dates(wh, "_ends", "window_end", ends)
    try:
        con.execute("DELETE FROM trend_windows WHERE window_end IN (SELECT window_end FROM _ends)")
        return con.execute("INSERT INTO trend_windows " + sql).fetchall()[0][0]
    finally:
        con.unregister("_ends")


def _update_labels(wh: Warehouse, months: set[date]) -> int:
    """Set the labels of windows targeting `months` from `_labels`; return rows changed."""
    _register_dates(wh, "_months", "month", months)
    try:
        return wh.con.execute(
            """
            UPDATE trend_windows AS w SET label_share = n.share, label_trend = n.trend
            FROM (
                SELECT t.window_end, t.category, l.share, l.trend
                FROM trend_windows AS t
                LEFT JOIN _labels AS l ON l.month = t.target_month AND l.category = t.category
                WHERE t.target_month IN (SELECT month FROM _months)
            ) AS n
            WHERE w.window_end = n.window_end AND w.category = n.category
              AND (w.label_share IS DISTINCT FROM n.share OR w.label_trend IS DISTINCT FROM n.trend)
            """
        ).fetchall()[0][0]
    finally:
        wh.con.unregister("_months")


def _needs_full_rebuild(wh: Warehouse, first: date) -> bool:
    """True when there are no windows yet, the first day moved, or the categories changed."""
    (oldest_end,) = wh.con.execute("SELECT min(window_end) FROM trend_windows").fetchall()[0]
    if oldest_end is None or oldest_end - timedelta(days=WINDOW_DAYS - 1) != first:
        return True
    (differ,) = wh.con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT category FROM daily_category_stats) AS a "
        "FULL JOIN (SELECT DISTINCT category FROM trend_windows) AS b USING (category) "
        "WHERE a.category IS NULL OR b.category IS NULL"
    ).fetchall()[0]
    return differ > 0


def _month(d: date) -> date:
    return d.replace(day=1)


def refresh_windows(wh: Warehouse, days: Iterable[date] | None = None) -> WindowRefresh:
    """Bring `daily_category_stats` and `trend_windows` up to date after posts of `days` changed.

    `days` are publication days whose posts were loaded or re-categorised (old and new days of a
    post that moved); None rebuilds everything. One transaction.
    """
    with wh.transaction() as con:
        wh.mark_changed("daily_category_stats", "trend_windows")
        if days is not None:
            days = set(days)
            (newest_end,) = con.execute("SELECT max(window_end) FROM trend_windows").fetchall()[0]
        changed = _refresh_daily(wh, days)
        first, last = _bounds(wh)
        if first is None:
            con.execute("DELETE FROM trend_windows")
            return WindowRefresh(True, 0, 0, 0)
        if days is None or _needs_full_rebuild(wh, first):
            _labels(wh, None)
            written = _write_windows(wh, first, last, None)
            if changed is None:
                (changed_days,) = con.execute("SELECT count(DISTINCT day) FROM daily_category_stats").fetchall()[0]
            else:
                changed_days = len(changed)
            return WindowRefresh(True, changed_days, written, 0, first, last)
        ends = {d + timedelta(days=k) for d in changed for k in range(WINDOW_DAYS)}
        start = (newest_end or first) + timedelta(days=1)
        ends |= {start + timedelta(days=k) for k in range((last - start).days + 1)}
        (last_post,) = con.execute("SELECT max(published_date) FROM posts").fetchall()[0]
        newly_complete = {
            m for (m,) in con.execute(
                "SELECT DISTINCT target_month FROM trend_windows WHERE label_share IS NULL "
                "AND (target_month + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE <= ?",
                [last_post],
            ).fetchall()
        }
        months = {_month(d) for d in days} | newly_complete | {target_month(e) for e in ends}
        _labels(wh, months)
        written = _write_windows(wh, first, last, ends)
        relabelled = _update_labels(wh, months)
        return WindowRefresh(False, len(changed), written, relabelled, first, last)
