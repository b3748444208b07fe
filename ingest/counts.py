"""Engagement counts as Xiaohongshu prints them: `"1.2万"`, `"10万+"`, `"3千"`, `"1.5w"`, `""`.

`parse_count` turns them into integers (`""` and `None` mean "not shown": None), and raises
`CountError` for anything else, so a reader can name the file and line it came from.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["UNITS", "CountError", "parse_count"]

# Multipliers of the unit suffixes Xiaohongshu and MediaCrawler use.
UNITS: dict[str, int] = {
    "": 1,
    "千": 1_000,
    "k": 1_000,
    "万": 10_000,
    "w": 10_000,
    "亿": 100_000_000,
}

_COUNT = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>千|万|亿|[kKwW])?\s*(?P<plus>\+)?")


class CountError(ValueError):
    """A count that is neither a number nor a number with a known unit."""


def parse_count(value: object) -> int | None:
    """An engagement count as an integer, or None when it is empty or missing.

    `"1.2万"` → 12000, `"10万+"` → 100000 (a lower bound: the `+` is dropped), `"3千"` → 3000,
    `"1,234"` → 1234, `7` → 7. Raises `CountError` naming the value for anything else (negative
    numbers, unknown units, words).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise CountError(f"not a count: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise CountError(f"negative count: {value!r}")
        return value
    if isinstance(value, float):
        if value != value or value < 0 or value != int(value):
            raise CountError(f"not a whole non-negative count: {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise CountError(f"not a count: {value!r}")
    text = value.strip().replace(",", "").replace("，", "")
    if not text:
        return None
    match = _COUNT.fullmatch(text)
    if match is None:
        raise CountError(f"not a count: {value!r}")
    try:
        number = Decimal(match["number"]) * UNITS[(match["unit"] or "").lower()]
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        raise CountError(f"not a count: {value!r}") from None
    if number != number.to_integral_value():
        raise CountError(f"count is not a whole number: {value!r}")
    return int(number)
