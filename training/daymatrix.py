"""A (day, category) feature matrix that trend windows are read out of by indexing.

A window is 60 consecutive days of one category, and consecutive windows share 59 of them, so
materialising every window's 60 x features copy (105,100 windows of the trend dataset, each with
60 text vectors) would not fit in memory. `DayMatrix` holds each (day, category) once:

* `counts` float32 [days, categories, 4]: posts, likes, collects, comments (`daily_category_stats`:
  a post counts once in each category its images fall in, with its latest engagement);
* `totals` float64 [days]: all posts of the day (the denominator of every share, as in labels);
* `text_index` int32 [days, categories] into `text_vectors` [cells, text_dim] (-1: no text that
  day), the mean e5 vector of the day's posts in the category with a text (`post_texts`); the
  same for images (`image_index`, `image_vectors`: EfficientNet-Lite0, local image files only).
  Only cells with a vector take memory.

`window(end, category)` gathers the raw arrays of a batch of windows (what
`WindowPreprocessor.arrays` takes); `records(...)` gives them one mapping per window (what
`WindowPreprocessor.encode` takes: scoring and the int8 check use those). Days are the calendar
grid from `start`, so a day without posts is zeros, as in `trend_windows`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .preprocess import WINDOW_COUNTS, image_problem

__all__ = ["DayMatrix", "read_day_matrix", "read_windows"]

log = logging.getLogger(__name__)
Embed = Callable[[list[Any]], np.ndarray]


@dataclass
class DayMatrix:
    start: date
    categories: np.ndarray  # int64 [C], sorted
    counts: np.ndarray  # float32 [D, C, 4]
    totals: np.ndarray  # float64 [D]
    text_index: np.ndarray  # int32 [D, C], -1 where none
    text_vectors: np.ndarray  # float32 [K, text_dim]
    image_index: np.ndarray  # int32 [D, C]
    image_vectors: np.ndarray  # float32 [K', image_dim]

    @property
    def num_days(self) -> int:
        return len(self.totals)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.num_days - 1)

    @property
    def has_text(self) -> bool:
        return len(self.text_vectors) > 0

    @property
    def has_images(self) -> bool:
        return len(self.image_vectors) > 0

    def day_index(self, days: Sequence[Any]) -> np.ndarray:
        """Positions of `days` (dates or datetimes) in the grid; an error naming a day outside it."""
        idx = (pd.to_datetime(pd.Series(list(days))).dt.normalize() - pd.Timestamp(self.start)).dt.days.to_numpy()
        bad = (idx < 0) | (idx >= self.num_days)
        if bad.any():
            raise ValueError(f"day {list(days)[int(np.flatnonzero(bad)[0])]} is outside the matrix "
                             f"({self.start} .. {self.end})")
        return idx.astype(np.int64)

    def category_index(self, categories: Sequence[Any]) -> np.ndarray:
        cats = np.asarray(categories, np.int64)
        idx = np.searchsorted(self.categories, cats)
        idx = np.clip(idx, 0, max(len(self.categories) - 1, 0))
        bad = self.categories[idx] != cats if len(self.categories) else np.ones(len(cats), bool)
        if bad.any():
            raise ValueError(f"category {int(cats[np.flatnonzero(bad)[0]])} is not in the matrix")
        return idx

    def window(self, end: np.ndarray, category: np.ndarray, days: int = 60) -> dict[str, np.ndarray | None]:
        """Raw arrays of the windows ending at grid positions `end` for category positions
        `category`: counts [B, days, 4], totals [B, days], text/image [B, days, dim] with their
        masks (None when the matrix has no vector of that kind)."""
        end, category = np.asarray(end, np.int64), np.asarray(category, np.int64)
        rows = end[:, None] - (days - 1) + np.arange(days)[None, :]
        if len(rows) and rows.min() < 0:
            raise ValueError(f"a window needs {days} days: the matrix starts {self.start}, too late for "
                             f"a window ending {self.start + timedelta(days=int(end.min()))}")
        cols = category[:, None]
        out: dict[str, np.ndarray | None] = {"counts": self.counts[rows, cols], "totals": self.totals[rows]}
        for name, index, vectors in (("text", self.text_index, self.text_vectors),
                                     ("image", self.image_index, self.image_vectors)):
            if not len(vectors):
                out[name], out[f"{name}_mask"] = None, None
                continue
            at = index[rows, cols]
            out[name] = np.where((at >= 0)[..., None], vectors[np.maximum(at, 0)], 0.0).astype(np.float32)
            out[f"{name}_mask"] = (at >= 0).astype(np.float32)
        return out

    def records(self, end: np.ndarray, category: np.ndarray, days: int = 60) -> list[dict[str, np.ndarray]]:
        """One mapping per window (`WindowPreprocessor.encode`'s records)."""
        arrays = self.window(end, category, days)
        return [{k: v[i] for k, v in arrays.items() if v is not None} for i in range(len(np.asarray(end)))]


def read_windows(con: Any, *, labelled: bool | None = None) -> pd.DataFrame:
    """`trend_windows`' keys and labels: window_end, category, target_month, label_share,
    label_trend, posts_60d (labelled: only those with a label; False: only those without)."""
    where = {None: "", True: "WHERE label_share IS NOT NULL", False: "WHERE label_share IS NULL"}[labelled]
    return con.execute(
        "SELECT window_end, category, target_month, label_share, label_trend, posts_60d FROM trend_windows "
        f"{where} ORDER BY window_end, category").df()


def _mean_vectors(frame: pd.DataFrame, vectors: np.ndarray, start: date, shape: tuple[int, int],
                  categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `vectors` (row i belongs to frame row i's day and category) per cell."""
    index = np.full(shape, -1, np.int32)
    if frame.empty:
        return index, np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    day = (pd.to_datetime(frame["day"]) - pd.Timestamp(start)).dt.days.to_numpy()
    cat = np.searchsorted(categories, frame["category"].to_numpy(np.int64))
    cell = day * shape[1] + cat
    cells, inverse = np.unique(cell, return_inverse=True)
    sums = np.zeros((len(cells), vectors.shape[1]), np.float64)
    np.add.at(sums, inverse, vectors)
    means = (sums / np.bincount(inverse)[:, None]).astype(np.float32)
    index.reshape(-1)[cells] = np.arange(len(cells), dtype=np.int32)
    return index, means


def read_day_matrix(con: Any, *, since: date | None = None, text_embed: Embed | None = None, text_dim: int = 384,
                    image_embed: Embed | None = None, image_dim: int = 1280, home: str | Path = ".") -> DayMatrix:
    """The matrix from `since` (default: the first day with data) to the last day, from a
    warehouse connection. `text_embed(texts)` / `image_embed(paths)` give vectors (e.g. through
    the feature cache); without one that kind is left empty. Image files that cannot be read are
    logged and left out (a relative `local_path` is taken from `home`)."""
    first, last = con.execute("SELECT min(day), max(day) FROM daily_category_stats").fetchall()[0]
    if first is None:
        raise ValueError("no daily category statistics: import posts with categories first "
                         "(`emopulse import mkt|xhs`, `emopulse cluster-images`)")
    start = max(first, since) if since is not None else first
    days = (last - start).days + 1
    categories = np.array([c for (c,) in con.execute(
        "SELECT DISTINCT category FROM daily_category_stats ORDER BY 1").fetchall()], np.int64)
    counts = np.zeros((days, len(categories), len(WINDOW_COUNTS)), np.float32)
    stats = con.execute("SELECT day, category, posts, likes, collects, comments FROM daily_category_stats "
                        "WHERE day >= ?", [start]).df()
    if len(stats):
        d = (pd.to_datetime(stats["day"]) - pd.Timestamp(start)).dt.days.to_numpy()
        c = np.searchsorted(categories, stats["category"].to_numpy(np.int64))
        counts[d, c] = stats[list(WINDOW_COUNTS)].to_numpy(np.float32)
    totals = np.zeros(days)
    per_day = con.execute("SELECT published_date AS day, count(*) AS n FROM posts WHERE published_date "
                          "BETWEEN ? AND ? GROUP BY 1", [start, last]).df()
    if len(per_day):
        totals[(pd.to_datetime(per_day["day"]) - pd.Timestamp(start)).dt.days.to_numpy()] = per_day["n"].to_numpy()
    shape = (days, len(categories))
    text_index, text_vectors = np.full(shape, -1, np.int32), np.zeros((0, text_dim), np.float32)
    if text_embed is not None:
        texts = con.execute(
            """SELECT DISTINCT p.published_date AS day, i.category, t.post_id, t.text
               FROM post_texts AS t JOIN posts AS p USING (post_id)
               JOIN (SELECT DISTINCT post_id, category FROM post_images WHERE category IS NOT NULL) AS i USING (post_id)
               WHERE p.published_date BETWEEN ? AND ? AND t.text IS NOT NULL AND trim(t.text) <> ''
               ORDER BY 1, 2, 3""", [start, last]).df()
        if len(texts):
            unique = sorted(set(texts["text"]))
            vectors = np.asarray(text_embed(unique), np.float32)
            where = {t: i for i, t in enumerate(unique)}
            text_index, text_vectors = _mean_vectors(texts, vectors[[where[t] for t in texts["text"]]], start, shape,
                                                     categories)
    image_index, image_vectors = np.full(shape, -1, np.int32), np.zeros((0, image_dim), np.float32)
    if image_embed is not None:
        images = con.execute(
            """SELECT p.published_date AS day, i.category, i.local_path
               FROM post_images AS i JOIN posts AS p USING (post_id)
               WHERE p.published_date BETWEEN ? AND ? AND i.category IS NOT NULL AND i.local_path IS NOT NULL
               ORDER BY 1, 2, 3""", [start, last]).df()
        if len(images):
            paths = [Path(p) if Path(p).is_absolute() else Path(home) / p for p in images["local_path"]]
            ok = np.array([image_problem(p) is None for p in paths], bool)
            if (~ok).any():
                log.warning("%d post image(s) cannot be read (e.g. %s): left out of the trend windows",
                            int((~ok).sum()), paths[int(np.flatnonzero(~ok)[0])])
            if ok.any():
                vectors = np.asarray(image_embed([p for p, good in zip(paths, ok) if good]), np.float32)
                image_index, image_vectors = _mean_vectors(images[ok].reset_index(drop=True), vectors, start, shape,
                                                           categories)
    log.info("day matrix %s..%s: %d days x %d categories, %d cells with text, %d with images", start, last, days,
             len(categories), len(text_vectors), len(image_vectors))
    return DayMatrix(start=start, categories=categories, counts=counts, totals=totals, text_index=text_index,
                     text_vectors=text_vectors, image_index=image_index, image_vectors=image_vectors)
