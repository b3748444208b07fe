"""When a Xiaohongshu post was published: ObjectId times and printed `MM-DD` dates.

A note id is a MongoDB ObjectId: its first 8 hex digits are the creation time in Unix seconds.
Xiaohongshu prints `YYYY-MM-DD` for earlier years and only `MM-DD` for the current one, so an
`MM-DD` date gets the year that puts it closest to the id's time (in China's time zone): the
printed month and day always win.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

__all__ = [
    "CHINA",
    "FULL",
    "NEXT_YEAR",
    "PREVIOUS_YEAR",
    "SAME_YEAR",
    "local_date",
    "objectid_date",
    "objectid_time",
    "resolve_post_date",
]

CHINA = ZoneInfo("Asia/Shanghai")

# How a printed date was turned into a calendar date (counted in import summaries).
FULL = "printed YYYY-MM-DD"
SAME_YEAR = "MM-DD, year of the note id"
PREVIOUS_YEAR = "MM-DD, year before the note id"
NEXT_YEAR = "MM-DD, year after the note id"
_BY_OFFSET = {-1: PREVIOUS_YEAR, 0: SAME_YEAR, 1: NEXT_YEAR}


def objectid_time(object_id: str) -> datetime:
    """The creation time (UTC) in an ObjectId's first 8 hex digits; ValueError when it has none."""
    text = (object_id or "").strip()
    if len(text) < 8:
        raise ValueError(f"not an ObjectId (too short): {object_id!r}")
    try:
        seconds = int(text[:8], 16)
    except ValueError:
        raise ValueError(f"not an ObjectId (no hex time prefix): {object_id!r}") from None
    return datetime.fromtimestamp(seconds, UTC)


def local_date(moment: datetime) -> date:
    """The calendar date in China of an aware time."""
    return moment.astimezone(CHINA).date()


def objectid_date(object_id: str) -> date:
    """The local (UTC+8) date an ObjectId was created."""
    return local_date(objectid_time(object_id))


def resolve_post_date(printed: str, object_id: str) -> tuple[date, str]:
    """The calendar date of a printed `YYYY-MM-DD` or `MM-DD`, and how it was resolved.

    `MM-DD` takes the year (the id's, the one before or after) whose date lies closest to the
    id's local date; a leap day only matches leap years. Raises ValueError naming the value when
    the text is no such date, or when an `MM-DD` comes with an id that carries no time.
    """
    text = (printed or "").strip()
    parts = text.split("-")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"post_date is not YYYY-MM-DD or MM-DD: {printed!r}") from None
    if len(parts) == 3 and len(parts[0]) == 4:
        try:
            return date(*numbers), FULL
        except ValueError:
            raise ValueError(f"post_date is not a calendar date: {printed!r}") from None
    if len(parts) != 2:
        raise ValueError(f"post_date is not YYYY-MM-DD or MM-DD: {printed!r}")
    month, day = numbers
    anchor = objectid_date(object_id)
    candidates = []
    for offset in (-1, 0, 1):
        try:
            candidates.append((date(anchor.year + offset, month, day), offset))
        except ValueError:
            continue
    if not candidates:
        raise ValueError(f"post_date is not a calendar date: {printed!r}")
    best, offset = min(candidates, key=lambda c: (abs((c[0] - anchor).days), c[1]))
    return best, _BY_OFFSET[offset]
