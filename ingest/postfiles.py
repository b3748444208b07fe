"""Reading post files record by record, each with the line it starts on.

Shared by the MediaCrawler and trend-dataset readers: UTF-8 decoding with a clear error, CSV rows
as dicts, JSON arrays and JSON Lines as dicts, and times in the shapes those files use.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .files import RowError, csv_records
from .posts import PostFileError

__all__ = ["csv_rows", "file_time", "json_records", "read_text", "unix_time"]


def read_text(path: Path) -> str:
    """The file as text (UTF-8, a BOM tolerated); `PostFileError` when it is not UTF-8 or empty."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PostFileError(
            f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); convert it "
            "first, e.g. iconv -f GB18030 -t UTF-8"
        ) from None
    if not text.strip():
        raise PostFileError(f"{path}: empty file")
    return text


def file_time(path: Path) -> datetime:
    """The file's modification time (UTC), to the second."""
    return datetime.fromtimestamp(int(path.stat().st_mtime), UTC)


def unix_time(value: Any, what: str) -> datetime | None:
    """A Unix time in milliseconds or seconds (number or digits), None when empty or 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a Unix time: {value!r}") from None
    if number != number or number < 0:
        raise ValueError(f"{what} is not a Unix time: {value!r}")
    if number == 0:
        return None
    seconds = number / 1000 if number > 1e11 else number  # 1e11 s is the year 5138
    return datetime.fromtimestamp(seconds, UTC)


def csv_rows(
    path: Path, text: str, skipped: list[RowError]
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and (first line, row dict) of each data row; short or broken rows go to
    `skipped` with their line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise PostFileError(f"{path}: empty file, no header") from None
    except csv.Error as exc:
        raise PostFileError(f"{path}: unreadable CSV header: {exc}") from None

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for start, fields in csv_records(reader, path, skipped):
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                skipped.append(
                    RowError(str(path), start, f"{len(fields)} fields where the header has {len(header)}")
                )
                continue
            yield start, dict(zip(header, fields, strict=True))

    return header, rows()


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _array_records(
    path: Path, text: str, skipped: list[RowError]
) -> Iterator[tuple[int, Any]]:
    """The records of a JSON array; `PostFileError` when the array is cut short or broken (a
    half-read file is never loaded as if it were whole)."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, text.index("[") + 1)
    if pos < len(text) and text[pos] == "]":
        return
    records: list[tuple[int, Any]] = []

    def broken(at: int, why: str) -> PostFileError:
        return PostFileError(
            f"{path}:{_line_of(text, at)}: {why} after {len(records)} complete "
            f"record{'' if len(records) == 1 else 's'}; nothing "
            "imported (a file still being written or cut short in copying? drop the whole file "
            "again)"
        )

    while pos < len(text):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
            raise broken(exc.pos, "JSON array cut short" if cut else f"invalid JSON ({exc.msg})") from None
        records.append((_line_of(text, pos), value))
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
        elif pos < len(text) and text[pos] == "]":
            if _skip_space(text, pos + 1) < len(text):
                raise broken(pos + 1, "text after the end of the JSON array")
            yield from records
            return
        elif pos < len(text):
            raise broken(pos, "invalid JSON: expected ',' or ']' after a record")
    raise broken(len(text), "JSON array not closed (cut short)")


def _lines_records(path: Path, text: str, skipped: list[RowError]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            skipped.append(RowError(str(path), number, f"invalid JSON ({exc.msg})"))


def json_records(path: Path, text: str, skipped: list[RowError]) -> Iterator[tuple[int, Any]]:
    """(line, value) of each record of a JSON array, a JSON Lines file or a single object.

    A file that is not JSON at all, or a JSON array cut short or broken, raises `PostFileError`
    (nothing of it is kept); in JSON Lines a line that is not JSON is reported in `skipped` and
    the other lines are kept.
    """
    start = _skip_space(text, 0)
    first = text[start : start + 1]
    if first == "[":
        return _array_records(path, text, skipped)
    if first == "{":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            return _lines_records(path, text, skipped)
        return iter([(_line_of(text, start), whole)])
    raise PostFileError(
        f"{path}:{_line_of(text, start)}: not JSON (a JSON array or JSON Lines of objects was "
        f"expected, found {text[start:start + 20]!r})"
    )
