"""MediaCrawler's Xiaohongshu output (JSON array, JSON Lines or CSV) read into post records.

MediaCrawler (NanmiCoder/MediaCrawler) stores notes (`note_id, type, title, desc, time,
last_update_time, liked_count, collected_count, comment_count, share_count, image_list, tag_list,
note_url, source_keyword, user_id, nickname, ip_location, last_modify_ts`, ...) and comments
(`comment_id, create_time, note_id, content, sub_comment_count, pictures, parent_comment_id,
like_count, ip_location, user_id, nickname, last_modify_ts`, ...) in separate files; a record's
keys say which it is. Times are Unix milliseconds; counts are strings like `"1.2万"`.

Each note's engagement is one observation at `last_modify_ts` (else the file's mtime), so a newer
file of the same notes adds observations. Images it downloaded (`images/<note_id>/<i>.jpg` beside
the data folder, or `images_dir`) are linked to the note's image `i`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .counts import parse_count
from .files import RowError
from .postdates import local_date, objectid_time
from .postfiles import csv_rows, file_time, json_records, read_text, unix_time
from .posts import Post, PostBatch, PostComment, PostFileError, PostImage, PostMetrics
from .posttext import clean_text, extract_emotes, post_text

__all__ = ["GIVEN_TIME", "ID_TIME", "SUFFIXES", "read_xhs", "xhs_files"]

SUFFIXES = (".json", ".jsonl", ".csv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# How a note's publication day was found (counted in `PostBatch.dates`).
GIVEN_TIME = "publish time given"
ID_TIME = "note id time (no publish time given)"


def xhs_files(path: str | Path) -> list[Path]:
    """The data files at `path`: the file itself, or a folder's `.json/.jsonl/.csv` files
    (recursively, skipping `images/` and hidden names), oldest first so newer observations load
    last."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    found = [
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") or part == "images" for part in p.relative_to(path).parts)
    ]
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _split(value: Any) -> list[str]:
    """A comma-joined string or a list (of strings or dicts with a url/name) as strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, Mapping):
                item = item.get("url_default") or item.get("url") or item.get("name")
            if item and str(item).strip():
                out.append(str(item).strip())
        return out
    raise ValueError(f"expected a comma-separated string or a list, not {type(value).__name__}")


def _count(record: Mapping[str, Any], key: str) -> int | None:
    try:
        return parse_count(record.get(key))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


class _Context:
    """What every record of one file shares: its name, time and where its images are."""

    def __init__(self, path: Path, images_dir: Path | None) -> None:
        self.path = path
        self.source = f"mediacrawler:{path.name}"
        self.mtime = file_time(path)
        candidates = [images_dir] if images_dir else [path.parent / "images", path.parent.parent / "images"]
        self.images_dir = next((c for c in candidates if c is not None and c.is_dir()), None)

    def observed(self, record: Mapping[str, Any]) -> datetime:
        return unix_time(record.get("last_modify_ts"), "last_modify_ts") or self.mtime

    def local_image(self, note_id: str, index: int, entry: str) -> str | None:
        if not entry.startswith(("http://", "https://")):
            candidate = (self.path.parent / entry).resolve()
            return str(candidate) if candidate.is_file() else None
        if self.images_dir is None:
            return None
        for suffix in IMAGE_SUFFIXES:
            candidate = self.images_dir / note_id / f"{index}{suffix}"
            if candidate.is_file():
                return str(candidate.resolve())
        return None


def _note(record: Mapping[str, Any], ctx: _Context, batch: PostBatch) -> None:
    note_id = _text(record.get("note_id"))
    if not note_id:
        raise ValueError("note_id is empty")
    published = unix_time(record.get("time"), "time")
    how = GIVEN_TIME
    if published is None:
        published, how = objectid_time(note_id), ID_TIME
    tags = _split(record.get("tag_list"))
    likes, collects = _count(record, "liked_count"), _count(record, "collected_count")
    comments, shares = _count(record, "comment_count"), _count(record, "share_count")
    images = _split(record.get("image_list"))
    observed = ctx.observed(record)
    updated = unix_time(record.get("last_update_time"), "last_update_time")
    batch.posts.append(
        Post(
            post_id=note_id,
            source=ctx.source,
            type=_text(record.get("type")),
            title=_text(record.get("title")),
            description=_text(record.get("desc")),
            user_id=_text(record.get("user_id")),
            nickname=_text(record.get("nickname")),
            ip_location=_text(record.get("ip_location")),
            note_url=_text(record.get("note_url")),
            source_keyword=_text(record.get("source_keyword")),
            tags=tuple(tags),
            published_at=published,
            published_date=local_date(published),
            date_resolution=how,
            last_update_time=updated,
        )
    )
    batch.dates[how] += 1
    batch.images.extend(
        PostImage(note_id, i, url=url if url.startswith("http") else None,
                  local_path=ctx.local_image(note_id, i, url))
        for i, url in enumerate(images)
    )
    batch.metrics.append(PostMetrics(note_id, observed, likes, collects, comments, shares))
    batch.texts.append(post_text(note_id, _text(record.get("title")), _text(record.get("desc")), tags=tags))


def _comment(record: Mapping[str, Any], ctx: _Context, batch: PostBatch) -> None:
    comment_id, note_id = _text(record.get("comment_id")), _text(record.get("note_id"))
    if not comment_id or not note_id:
        raise ValueError("comment_id or note_id is empty")
    content = record.get("content")
    content = None if content is None else str(content)
    parent = _text(record.get("parent_comment_id"))
    batch.comments.append(
        PostComment(
            comment_id=comment_id,
            post_id=note_id,
            source=ctx.source,
            content=content,
            text=clean_text(content) if content else None,
            emotes=tuple(extract_emotes(content or "")),
            parent_comment_id=None if parent in (None, "0") else parent,
            user_id=_text(record.get("user_id")),
            nickname=_text(record.get("nickname")),
            ip_location=_text(record.get("ip_location")),
            created_at=unix_time(record.get("create_time"), "create_time"),
            likes=_count(record, "like_count"),
            sub_comments=_count(record, "sub_comment_count"),
            pictures=tuple(_split(record.get("pictures"))),
            observed_at=ctx.observed(record),
        )
    )


def _read_record(record: Any, ctx: _Context, batch: PostBatch) -> None:
    if not isinstance(record, Mapping):
        raise ValueError(f"a record must be a JSON object, not {type(record).__name__}")
    if "comment_id" in record:
        _comment(record, ctx, batch)
    elif "note_id" in record:
        _note(record, ctx, batch)
    else:
        raise ValueError(f"neither a note (note_id) nor a comment (comment_id); keys: {sorted(record)[:12]}")


def read_xhs(path: str | Path, *, images_dir: str | Path | None = None) -> PostBatch:
    """Read one MediaCrawler file of notes and/or comments.

    Raises `PostFileError` when the file as a whole is unreadable (not UTF-8, not JSON, a CSV with
    neither `note_id` nor `comment_id`, no good record at all). A record that cannot be parsed
    (an unparsable count, a bad time, a missing id) is skipped and listed in `skipped` with its
    file and line; the good ones are kept.
    """
    path = Path(path)
    ctx = _Context(path, Path(images_dir) if images_dir else None)
    text = read_text(path)
    batch = PostBatch(path=path, layout="mediacrawler")
    if path.suffix.lower() == ".csv":
        header, records = csv_rows(path, text, batch.skipped)
        if "note_id" not in header and "comment_id" not in header:
            raise PostFileError(
                f"{path}: not a MediaCrawler Xiaohongshu CSV: no note_id or comment_id column "
                f"(found {header})"
            )
    else:
        records = json_records(path, text, batch.skipped)
    for line, record in records:
        batch.rows += 1
        try:
            _read_record(record, ctx, batch)
        except ValueError as exc:
            batch.skipped.append(RowError(str(path), line, str(exc)))
    if not (batch.posts or batch.comments):
        reasons = "; ".join(f"line {e.line}: {e.message}" for e in batch.skipped[:3]) or "no records"
        raise PostFileError(f"{path}: no note or comment could be read ({reasons})")
    return batch
