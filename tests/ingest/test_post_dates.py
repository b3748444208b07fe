"""ObjectId times and the year of printed MM-DD dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from emopulse.ingest.postdates import (
    FULL, NEXT_YEAR, PREVIOUS_YEAR, SAME_YEAR, objectid_date, objectid_time, resolve_post_date,
)


def oid(moment: datetime) -> str:
    """An ObjectId created at `moment` (the rest of the id does not matter)."""
    return f"{int(moment.timestamp()):08x}" + "0000000001a00ce44"[:16]


def test_objectid_time_is_its_first_eight_hex_digits() -> None:
    # a note of the trend dataset, printed 04-07: 0x6612057b = 1712457083
    assert objectid_time("6612057b000000001a00ce44") == datetime(2024, 4, 7, 2, 31, 23, tzinfo=UTC)
    assert objectid_date("6612057b000000001a00ce44") == date(2024, 4, 7)


def test_objectid_date_is_the_local_day_utc_plus_8() -> None:
    late = oid(datetime(2023, 12, 31, 17, 30, tzinfo=UTC))  # 01:30 on 1 January in China
    assert objectid_date(late) == date(2024, 1, 1)


@pytest.mark.parametrize("bad", ["", "xyz", "zzzzzzzz0000000000000000"])
def test_an_id_without_a_time_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="ObjectId"):
        objectid_time(bad)


@pytest.mark.parametrize(
    ("printed", "created", "expected", "how"),
    [
        ("04-07", datetime(2024, 4, 7, 2, tzinfo=UTC), date(2024, 4, 7), SAME_YEAR),
        ("03-30", datetime(2024, 4, 7, 2, tzinfo=UTC), date(2024, 3, 30), SAME_YEAR),
        # created early January, printed late December: the year before
        ("12-30", datetime(2024, 1, 2, 4, tzinfo=UTC), date(2023, 12, 30), PREVIOUS_YEAR),
        # created 30 December, printed 2 January (the id and the page disagree): the year after
        ("01-02", datetime(2023, 12, 30, 4, tzinfo=UTC), date(2024, 1, 2), NEXT_YEAR),
        # a leap day only fits a leap year
        ("02-29", datetime(2025, 3, 1, 4, tzinfo=UTC), date(2024, 2, 29), PREVIOUS_YEAR),
        # a printed year wins, even against the id
        ("2023-11-05", datetime(2024, 1, 2, 4, tzinfo=UTC), date(2023, 11, 5), FULL),
    ],
)
def test_mm_dd_takes_the_year_closest_to_the_id(printed: str, created: datetime, expected: date, how: str) -> None:
    assert resolve_post_date(printed, oid(created)) == (expected, how)


@pytest.mark.parametrize("printed", ["13-01", "2023-02-30", "yesterday", "1-2-3-4", ""])
def test_impossible_dates_are_refused_naming_the_value(printed: str) -> None:
    with pytest.raises(ValueError) as info:
        resolve_post_date(printed, oid(datetime(2024, 1, 2, tzinfo=UTC)))
    assert repr(printed) in str(info.value)


def test_mm_dd_with_an_id_without_time_is_refused() -> None:
    with pytest.raises(ValueError, match="ObjectId"):
        resolve_post_date("04-07", "not-an-id")
