"""The trend seed's Xiaohongshu CSVs (`../shared/data/xhs_mkt/`) read into post records.

Two layouts, told apart by their header:

- posts (`alldata_20%.csv`, `train_/test_after2monthdata.csv`): `poster_id, post_id,
  nums_category_img, post_date, post_like, post_collect` (extra label columns are ignored), one
  row per post image, so a post has several rows and several image categories. Categories are
  the dataset's own ids, used as given. `post_date` is `YYYY-MM-DD` or `MM-DD`: a printed full
  date wins for the whole post, else the `MM-DD` gets the year closest to the note id's time.
  Rows of one post may carry different counts (crawled at different times): the largest is
  kept, as one observation at the file's mtime.
- texts (`clustered_summaries.csv`, `combined_clustered_matched_image_text.csv`): `poster_id,
  post_id, summary, ...`, read into post texts only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from .counts import parse_count
from .files import RowError
from .postdates import FULL, objectid_date, resolve_post_date
from .postfiles import csv_rows, file_time, read_text
from .posts import Post, PostBatch, PostFileError, PostImage, PostMetrics
from .posttext import post_text

__all__ = ["LAYOUTS", "read_mkt"]

LAYOUTS: dict[str, tuple[str, ...]] = {
    "mkt_posts": ("poster_id", "post_id", "nums_category_img", "post_date", "post_like", "post_collect"),
    "mkt_texts": ("poster_id", "post_id", "summary"),
}


@dataclass(slots=True)
class _PostRows:
    """The good rows of one post, in file order."""

    poster_id: str
    categories: list[int] = field(default_factory=list)
    full: list[date] = field(default_factory=list)  # printed full dates
    resolved: list[tuple[date, str]] = field(default_factory=list)  # MM-DD dates, resolved
    likes: list[int | None] = field(default_factory=list)
    collects: list[int | None] = field(default_factory=list)


def _layout(path: Path, header: list[str]) -> str:
    for name, columns in LAYOUTS.items():
        if set(columns) <= set(header):
            return name
    known = "; ".join(f"{name}: {','.join(cols)}" for name, cols in LAYOUTS.items())
    raise PostFileError(f"{path}: unknown trend-dataset layout with columns {header}; known: {known}")


def _count(row: dict[str, str], key: str) -> int | None:
    try:
        return parse_count(row[key])
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _post_rows(
    rows: Iterator[tuple[int, dict[str, str]]], path: Path, batch: PostBatch
) -> dict[str, _PostRows]:
    posts: dict[str, _PostRows] = {}
    for line, row in rows:
        batch.rows += 1
        try:
            post_id = row["post_id"].strip()
            if not post_id:
                raise ValueError("post_id is empty")
            try:
                category = int(row["nums_category_img"])
            except ValueError:
                raise ValueError(f"nums_category_img is not an integer: {row['nums_category_img']!r}") from None
            day, how = resolve_post_date(row["post_date"], post_id)
            likes, collects = _count(row, "post_like"), _count(row, "post_collect")
        except ValueError as exc:
            batch.skipped.append(RowError(str(path), line, str(exc)))
            continue
        entry = posts.setdefault(post_id, _PostRows(row["poster_id"].strip()))
        entry.categories.append(category)
        (entry.full.append(day) if how == FULL else entry.resolved.append((day, how)))
        entry.likes.append(likes)
        entry.collects.append(collects)
    return posts


def _largest(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _read_posts(path: Path, rows: Iterator[tuple[int, dict[str, str]]], batch: PostBatch) -> None:
    observed = file_time(path)
    source = f"mkt:{path.name}"
    agree = conflicting = 0
    for post_id, entry in _post_rows(rows, path, batch).items():
        if entry.full:
            day, how = entry.full[0], FULL
            agree += day == objectid_date(post_id)
        else:
            day, how = entry.resolved[0]
        batch.dates[how] += 1
        batch.posts.append(
            Post(post_id, source, user_id=entry.poster_id or None, published_date=day, date_resolution=how)
        )
        batch.images.extend(
            PostImage(post_id, i, category=c, category_source="dataset")
            for i, c in enumerate(entry.categories)
        )
        conflicting += len(set(entry.likes)) > 1 or len(set(entry.collects)) > 1
        batch.metrics.append(
            PostMetrics(post_id, observed, likes=_largest(entry.likes), collects=_largest(entry.collects))
        )
    full = batch.dates[FULL]
    if full:
        batch.notes.append(f"{agree} of {full} printed full dates equal the note id's date (UTC+8)")
    if conflicting:
        batch.notes.append(f"{conflicting} posts have rows with different counts: the largest was kept")


def _read_texts(path: Path, rows: Iterator[tuple[int, dict[str, str]]], batch: PostBatch) -> None:
    seen: set[str] = set()
    for line, row in rows:
        batch.rows += 1
        post_id = row["post_id"].strip()
        if not post_id:
            batch.skipped.append(RowError(str(path), line, "post_id is empty"))
            continue
        if post_id not in seen:
            seen.add(post_id)
            batch.texts.append(post_text(post_id, row["summary"]))


def read_mkt(path: str | Path) -> PostBatch:
    """Read one trend-dataset CSV (layout from its header); bad rows are skipped with their line.

    Raises `PostFileError` for an unknown layout (naming the columns found), a file that is not
    UTF-8, or one in which no row could be read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    text = read_text(path)
    skipped: list[RowError] = []
    header, rows = csv_rows(path, text, skipped)
    layout = _layout(path, header)
    batch = PostBatch(path=path, layout=layout, skipped=skipped)
    (_read_posts if layout == "mkt_posts" else _read_texts)(path, rows, batch)
    if not (batch.posts or batch.texts):
        reasons = "; ".join(f"line {e.line}: {e.message}" for e in batch.skipped[:3]) or "no rows"
        raise PostFileError(f"{path}: no row could be read ({reasons})")
    return batch
