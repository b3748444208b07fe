"""Which part of a time-ordered comment listing a pass wants (dlt's `incremental`, for replies).

The cursor listing in time order runs newest first, pinned replies ahead of it. A pass reads it
until the first root comment it already has (`stop`, the newest root of the last complete pass)
or, with `since`, until the first root comment older than that; pinned replies are old but come
first, so they never end a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from .records import Comment

__all__ = ["SHANGHAI", "Mark", "Window", "day_start", "shanghai_time"]

SHANGHAI = ZoneInfo("Asia/Shanghai")  # Bilibili's clock: UTC+8, no daylight saving


def day_start(day: date | str) -> int:
    """Unix seconds at 00:00 Asia/Shanghai of `day` (a date or `YYYY-MM-DD`)."""
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day.strip())
        except ValueError:
            raise ValueError(f"not a date (YYYY-MM-DD): {day!r}") from None
    return int(datetime.combine(day, time(), tzinfo=SHANGHAI).timestamp())


def shanghai_time(ctime: int) -> datetime:
    """A Unix time as an aware datetime in Asia/Shanghai."""
    return datetime.fromtimestamp(ctime, SHANGHAI)


@dataclass(frozen=True, slots=True, order=True)
class Mark:
    """A position in the time order: later comments compare greater."""

    ctime: int
    rpid: int

    @classmethod
    def of(cls, comment: Comment) -> Mark:
        return cls(comment.ctime or 0, comment.rpid)


@dataclass(frozen=True, slots=True)
class Window:
    """Roots newer than `stop` (None: all) and not older than `since` (Unix seconds; None: all)."""

    stop: Mark | None = None
    since: int | None = None

    def clip(self, comments: list[Comment]) -> tuple[list[Comment], str | None]:
        """The comments of one page the pass keeps, and why the listing ends here (or None).

        `comments` come as the source yields them: each root followed by its sub-reply preview.
        A root older than `since` ends the listing and is dropped with its preview (a pinned one
        is only dropped); reaching `stop` ends the listing after this page, whose known comments
        are kept (reloading them refreshes their likes and reply counts).
        """
        kept: list[Comment] = []
        end: str | None = None
        dropping = False
        for comment in comments:
            if comment.root == 0:
                pinned = comment.source == "api:top"
                too_old = self.since is not None and (comment.ctime or 0) < self.since
                if too_old and not pinned:
                    return kept, "since"
                dropping = too_old
                if not pinned and self.stop is not None and Mark.of(comment) <= self.stop:
                    end = "known"
            if not dropping:
                kept.append(comment)
        return kept, end
