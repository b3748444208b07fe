"""Xiaohongshu count strings, parsed or refused."""

from __future__ import annotations

import pytest
from emopulse.ingest.counts import CountError, parse_count


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2万", 12_000),
        ("10万+", 100_000),
        ("3千", 3_000),
        ("1万", 10_000),
        ("2.5w", 25_000),
        ("1.5W", 15_000),
        ("4k", 4_000),
        ("1.5亿", 150_000_000),
        ("999+", 999),
        ("1,234", 1_234),
        (" 15 ", 15),
        ("0", 0),
        ("", None),
        ("   ", None),
        (None, None),
        (7, 7),
        (12.0, 12),
    ],
)
def test_counts_parse(text: object, expected: int | None) -> None:
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["abc", "很多", "1.2.3万", "-5", "万", "12万个", "1.23456千", "0x10", -1, 1.5, True])
def test_unparsable_counts_are_refused_naming_the_value(text: object) -> None:
    with pytest.raises(CountError, match="count"):
        parse_count(text)
    with pytest.raises(CountError) as info:
        parse_count(text)
    assert repr(text) in str(info.value)
