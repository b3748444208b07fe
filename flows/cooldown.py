"""The -412 cool-down: recorded in the warehouse, so it outlives the process that was banned.

A crawl that meets -412 (JSON, or an HTTP 412 HTML page), or whose circuit breaker trips (a
streak of -352/-799 answers), records when its source may be asked
again and stops with `CoolingDown` (exit code 75, "try again later"); every crawl refuses to
send a single request to that source before then.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from emopulse.ingest.errors import Blocked, CircuitOpen
from emopulse.ingest.window import SHANGHAI
from emopulse.warehouse import Warehouse, active_cooldown, start_cooldown

__all__ = ["EXIT_TEMPFAIL", "CoolingDown", "check_cooldown", "cool_down"]

EXIT_TEMPFAIL = 75  # sysexits EX_TEMPFAIL: the command may work if tried again later


class CoolingDown(Exception):
    """The source is banned for now; `until` says when it may be asked again."""

    exit_code = EXIT_TEMPFAIL

    def __init__(self, message: str, *, source: str, until: datetime) -> None:
        super().__init__(message)
        self.source = source
        self.until = until


def _when(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S Asia/Shanghai")


def _left(until: datetime, now: datetime) -> str:
    minutes = max((until - now).total_seconds(), 0) / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{minutes * 60:.1f} s"


def check_cooldown(wh: Warehouse, source: str, *, now: datetime | None = None) -> None:
    """Raise `CoolingDown` when `source` is still resting from a -412 of an earlier run."""
    now = now or datetime.now(UTC)
    row = active_cooldown(wh, source, now=now)
    if row is None:
        return
    until: datetime = row["until"]
    where = " ".join(part for part in (row["endpoint"], row["bvid"]) if part)
    raise CoolingDown(
        f"{source} blocked requests (code {row['code']} on {where or 'a request'} at "
        f"{_when(row['started_at'])}); crawling rests until {_when(until)} "
        f"({_left(until, now)} left). Nothing was requested; run the same command after that.",
        source=source,
        until=until,
    )


def cool_down(
    wh: Warehouse, source: str, exc: Blocked, *, seconds: float, bvid: str | None = None
) -> CoolingDown:
    """Record a cool-down of `seconds` for `source` after `exc`; the error to raise."""
    now = datetime.now(UTC)
    until = now + timedelta(seconds=seconds)
    start_cooldown(wh, source, until=until, code=exc.code, endpoint=exc.endpoint, bvid=bvid,
                   message=str(exc))
    video = f" while crawling {bvid}" if bvid else ""
    what = f"code {exc.code} on {exc.endpoint}{video}"
    if isinstance(exc, CircuitOpen):
        what = (f"circuit breaker: {exc.streak} risk-control answers in a row, the last code "
                f"{exc.code} on {exc.endpoint}{video}; EMOPULSE_CRAWL_BREAKER_STREAK")
    return CoolingDown(
        f"{source} blocked requests ({what}): the address is "
        f"probably flagged. Crawling rests until {_when(until)} ({_left(until, now)}; "
        "EMOPULSE_CRAWL_COOLDOWN_S). Everything fetched so far is saved: run the same command "
        "after that to resume.",
        source=source,
        until=until,
    )
