"""Comment datasets that already exist as CSV files, read into the same records the crawler yields.

`read_comment_file(path)` detects the layout by its header (see `LAYOUTS`), keeps every good row,
and reports each bad one with its file and line in `CommentFile.skipped`. The files carry no emote
map, so every `[xxx]` token of the text counts as an emote (optionally only `known_emotes`), and
`sentence` is recomputed as the message without them. Rows without an rpid get a stable negative
synthetic one from the file's base name and the row's content.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .bvid import av2bv, bv2av
from .parse import extract_tokens, strip_tokens
from .records import Comment, CommentEmote, Emote, Video

__all__ = [
    "LAYOUTS",
    "CommentFile",
    "CommentFileError",
    "csv_records",
    "RowError",
    "read_comment_file",
    "synthetic_rpid",
]

# Dates without a zone (sysu_sample) are Bilibili's local time.
_CHINA = ZoneInfo("Asia/Shanghai")


class CommentFileError(ValueError):
    """The file as a whole cannot be read: unknown layout, wrong encoding, no header."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was skipped, and why."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class CommentFile:
    """What one file held: its layout, comments (grouped, deduplicated), videos and emotes."""

    path: Path
    layout: str
    rows: int  # data rows read, good and bad
    comments: list[Comment] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    emotes: list[Emote] = field(default_factory=list)
    skipped: list[RowError] = field(default_factory=list)


@dataclass(slots=True)
class _Row:
    """One CSV row, normalised; rows with the same `key` are one comment."""

    key: tuple
    message: str
    rpid: int | None = None
    bvid: str | None = None
    aid: int | None = None
    mid: str | None = None
    uname: str | None = None
    ctime: int | None = None
    likes: int | None = None
    listed: list[tuple[str, str, str | None]] = field(default_factory=list)  # alt, name, url


def synthetic_rpid(file_name: str, *content: object) -> int:
    """A stable negative 63-bit id from a file's base name and a row's content."""
    key = "\x1f".join([file_name, *("" if c is None else str(c) for c in content)])
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest()) >> 1
    return -(value or 1)


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what} is not an integer: {text!r}") from None


def _opt_int(text: str | None, what: str) -> int | None:
    return None if text is None or not text.strip() else _int(text, what)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _message(value: str, what: str) -> str:
    if not value or not value.strip():
        raise ValueError(f"empty {what}")
    return value


def _iso_ctime(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"ctime_iso is not an ISO-8601 time: {text!r}") from None
    return int((stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp())


def _local_ctime(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"date is not a time: {text!r}") from None
    return int((stamp if stamp.tzinfo else stamp.replace(tzinfo=_CHINA)).timestamp())


def _aid_of(bvid: str | None) -> int | None:
    try:
        return bv2av(bvid) if bvid else None
    except ValueError:
        return None


def _xycode(r: dict[str, str], name: str) -> _Row:
    rpid = _int(r[""], "rpid")
    aid = _opt_int(r["oid"], "oid")
    return _Row(
        key=(rpid,),
        rpid=rpid,
        message=_message(r["message"], "message"),
        aid=aid,
        bvid=av2bv(aid) if aid else None,
        uname=_text(r["uname"]),
        likes=_opt_int(r["like"], "like"),
    )


def _riderich_cleaned(r: dict[str, str], name: str) -> _Row:
    message = _message(r["message"], "message")
    key = (r["bvid"], r["mid"], r["uname"], message, r["ctime_iso"])
    return _Row(
        key=key,
        rpid=synthetic_rpid(name, *key),
        message=message,
        bvid=_text(r["bvid"]),
        mid=_text(r["mid"]),
        uname=_text(r["uname"]),
        ctime=_iso_ctime(r["ctime_iso"]),
        listed=[(r["emoji_alt"].strip(), r["emoji_name"].strip(), None)]
        if r["emoji_alt"].strip()
        else [],
    )


def _riderich_mapped(r: dict[str, str], name: str) -> _Row:
    rpid = _int(r["rpid"], "rpid")
    return _Row(
        key=(rpid,),
        rpid=rpid,
        message=_message(r["message"], "message"),
        bvid=_text(r["bvid"]),
        mid=_text(r["mid"]),
        uname=_text(r["uname"]),
        ctime=_iso_ctime(r["ctime_iso"]),
        listed=[(r["emoji_alt"].strip(), r["emoji_name"].strip(), _text(r["emote_url"]))]
        if r["emoji_alt"].strip()
        else [],
    )


def _sysu_labeled(r: dict[str, str], name: str) -> _Row:
    message = _message(r["content"], "content")
    key = (message, r["label"])
    return _Row(key=key, rpid=synthetic_rpid(name, *key), message=message)


def _sysu_sample(r: dict[str, str], name: str) -> _Row:
    rpid = _int(r["rpid"], "rpid")
    return _Row(
        key=(rpid,),
        rpid=rpid,
        message=_message(r["content"], "content"),
        uname=_text(r["username"]),
        likes=_opt_int(r["likes"], "likes"),
        ctime=_local_ctime(r["date"]),
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    name: str
    columns: tuple[str, ...]
    parse_row: Callable[[dict[str, str], str], _Row]


LAYOUTS: dict[str, _Layout] = {
    layout.name: layout
    for layout in (
        _Layout("xycode", ("", "uname", "message", "like", "oid", "label"), _xycode),
        _Layout(
            "riderich_cleaned",
            ("bvid", "emoji_alt", "emoji_name", "message", "sentence", "mid", "uname", "ctime_iso"),
            _riderich_cleaned,
        ),
        _Layout(
            "riderich_mapped",
            (
                "bvid",
                "rpid",
                "emoji_alt",
                "emoji_name",
                "message",
                "sentence",
                "emote_url",
                "mid",
                "uname",
                "ctime_iso",
            ),
            _riderich_mapped,
        ),
        _Layout("sysu_labeled", ("content", "label"), _sysu_labeled),
        _Layout("sysu_sample", ("rpid", "username", "content", "likes", "date"), _sysu_sample),
    )
}


def _decode(path: Path, data: bytes, encoding: str | None) -> str:
    try:
        return data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as exc:
        hint = (
            "it may be GBK/GB18030: convert it (iconv -f GB18030 -t UTF-8) or pass "
            "encoding='gb18030'"
            if encoding is None
            else "check the encoding given"
        )
        raise CommentFileError(
            f"{path}: not valid {encoding or 'UTF-8'} (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); {hint}"
        ) from None


def _detect(path: Path, header: list[str]) -> _Layout:
    found = tuple(h.strip().lstrip("\ufeff") for h in header)
    for layout in LAYOUTS.values():
        if found == layout.columns:
            return layout
    known = "; ".join(f"{name}: {','.join(spec.columns)}" for name, spec in LAYOUTS.items())
    raise CommentFileError(
        f"{path}: unknown comment file layout with columns {list(found)}; known layouts: {known}"
    )


def csv_records(
    reader: Any,
    path: Path,
    skipped: list[RowError],  # a csv.reader: iterates, has line_num
) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each CSV record; unreadable records go to `skipped`."""
    last = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            skipped.append(RowError(str(path), last + 1, f"unreadable CSV: {exc}"))
            if reader.line_num == last:
                return
            last = reader.line_num
            continue
        start, last = last + 1, reader.line_num
        yield start, fields


def _comment(
    rows: list[_Row], source: str, known: Collection[str] | None
) -> tuple[Comment, list[Emote]]:
    first = rows[0]
    message = first.message
    listed = {alt: (name, url) for row in rows for alt, name, url in row.listed}
    tokens = [t for t in extract_tokens(message) if known is None or t in known]
    alts = list(dict.fromkeys([*tokens, *listed]))
    emotes = tuple(
        CommentEmote(
            rpid=first.rpid,
            emoji_alt=alt,
            emoji_name=listed.get(alt, (alt[1:-1], None))[0] or alt[1:-1],
            occurrences=max(1, message.count(alt)),
        )
        for alt in alts
    )
    comment = Comment(
        rpid=first.rpid,
        message=message,
        sentence=strip_tokens(message, alts),
        source=source,
        bvid=first.bvid,
        aid=first.aid if first.aid is not None else _aid_of(first.bvid),
        mid=first.mid,
        uname=first.uname,
        ctime=first.ctime,
        likes=first.likes,
        emotes=emotes,
    )
    catalog = [
        Emote(e.emoji_alt, e.emoji_name, url=listed.get(e.emoji_alt, (None, None))[1])
        for e in emotes
    ]
    return comment, catalog


def read_comment_file(
    path: str | Path, *, encoding: str | None = None, known_emotes: Collection[str] | None = None
) -> CommentFile:
    """Read a comment CSV of one of `LAYOUTS` into comments, videos and emotes.

    Raises `CommentFileError` for an unknown layout (naming the columns found) or a file that is
    not UTF-8 (or not `encoding`). Bad rows are skipped and listed in `skipped` with their line.
    `known_emotes`, when given, limits which `[xxx]` tokens count as emotes.
    """
    path = Path(path)
    text = _decode(path, path.read_bytes(), encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    skipped: list[RowError] = []
    records = csv_records(reader, path, skipped)
    try:
        _, header = next(records)
    except StopIteration:
        raise CommentFileError(f"{path}: empty file, no header") from None
    layout = _detect(path, header)
    source = f"file:{path.name}"
    groups: dict[tuple, list[_Row]] = {}
    n_rows = 0
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue
        n_rows += 1
        if len(fields) != len(header):
            skipped.append(
                RowError(
                    str(path), line, f"{len(fields)} fields where the header has {len(header)}"
                )
            )
            continue
        try:
            row = layout.parse_row(dict(zip(layout.columns, fields, strict=True)), path.name)
        except ValueError as exc:
            skipped.append(RowError(str(path), line, str(exc)))
            continue
        groups.setdefault(row.key, []).append(row)
    comments, emotes, videos = [], {}, {}
    for rows in groups.values():
        comment, catalog = _comment(rows, source, known_emotes)
        comments.append(comment)
        emotes.update({e.emoji_alt: e for e in catalog if e.url or e.emoji_alt not in emotes})
        if comment.bvid and comment.bvid not in videos:
            videos[comment.bvid] = Video(comment.bvid, aid=comment.aid, source=source)
    return CommentFile(
        path=path,
        layout=layout.name,
        rows=n_rows,
        comments=comments,
        videos=list(videos.values()),
        emotes=list(emotes.values()),
        skipped=skipped,
    )
