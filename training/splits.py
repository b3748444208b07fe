"""Seeded splits by group (comment or video), recorded as ids so they can be saved with a model, and
walk-forward folds in time for the forecaster (`walk_forward_folds`).

A split never cuts a group: every row of a comment (or every comment of a video) lands on one side.
Ids are kept as strings, so a split survives a JSON round trip whatever type the key column has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Split", "TimeFold", "admissible", "linked_groups", "month_end", "split_by_comment", "split_by_group",
           "split_by_video", "stratified_folds", "video_folds", "walk_forward_folds"]


@dataclass(frozen=True)
class Split:
    """Which ids belong to which part (`train`, `val`, `test`, ...), and how that was decided."""

    parts: dict[str, tuple[str, ...]]
    seed: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part, ids in self.parts.items():
            for id_ in ids:
                if id_ in seen and seen[id_] != part:
                    raise ValueError(f"id {id_!r} is in both {seen[id_]!r} and {part!r}")
                seen[id_] = part

    def ids(self, part: str) -> frozenset[str]:
        """The ids of one part."""
        return frozenset(self.parts[part])

    def assign(self, ids: Iterable[Any]) -> np.ndarray:
        """The part name of every id (as an object array); ids in no part get `None`."""
        lookup = {id_: part for part, part_ids in self.parts.items() for id_ in part_ids}
        return np.array([lookup.get(str(id_)) for id_ in ids], dtype=object)

    def mask(self, ids: Iterable[Any], part: str) -> np.ndarray:
        """A boolean mask selecting the ids that belong to `part`."""
        return self.assign(ids) == part

    def sizes(self) -> dict[str, int]:
        return {part: len(ids) for part, ids in self.parts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "params": self.params,
                "parts": {part: list(ids) for part, ids in self.parts.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Split:
        parts = {part: tuple(str(i) for i in ids) for part, ids in data["parts"].items()}
        return cls(parts=parts, seed=int(data["seed"]), method=str(data["method"]),
                   params=dict(data.get("params", {})))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def split_by_group(groups: Iterable[Any], *, fractions: Mapping[str, float], seed: int,
                   method: str = "group") -> Split:
    """Shuffle the distinct groups with `seed` and cut them by `fractions` (the last part takes the rest).

    The result depends only on the set of groups and the seed, not on row order or duplicates.
    """
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) > 1 + 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to at most 1, got {dict(fractions)}")
    unique = sorted({str(g) for g in groups if not _is_missing(g)})
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    names = list(fractions)
    parts: dict[str, tuple[str, ...]] = {}
    start = 0
    for i, name in enumerate(names):
        stop = len(shuffled) if i == len(names) - 1 else start + round(fractions[name] * len(shuffled))
        parts[name] = tuple(shuffled[start:stop])
        start = stop
    return Split(parts=parts, seed=seed, method=method, params={"fractions": dict(fractions)})


def split_by_comment(comment_ids: Iterable[Any], *, val_frac: float = 0.15, test_frac: float = 0.15,
                     seed: int = 0) -> Split:
    """Train/val/test by comment: every row of a comment lands in the same part."""
    fractions = {"val": val_frac, "test": test_frac, "train": 1.0 - val_frac - test_frac}
    return split_by_group(comment_ids, fractions=fractions, seed=seed, method="by_comment")


def split_by_video(frame: pd.DataFrame, *, id_col: str = "rpid", video_col: str = "bvid",
                   test_frac: float = 0.2, val_frac: float = 0.15, seed: int = 0) -> Split:
    """Hold out whole videos as `test` ("unseen videos"); split the remaining comments by comment.

    Comments without a video id always stay out of `test`. Parts hold comment ids, like
    `split_by_comment`, so both splits are used the same way.
    """
    pairs = frame[[id_col, video_col]].drop_duplicates(subset=[id_col])
    videos = split_by_group(pairs[video_col], fractions={"test": test_frac, "rest": 1.0 - test_frac},
                            seed=seed)
    held_out = videos.ids("test")
    in_test = pairs[video_col].map(lambda v: not _is_missing(v) and str(v) in held_out).to_numpy(bool)
    test_ids = tuple(sorted(str(i) for i in pairs.loc[in_test, id_col]))
    rest = split_by_group(pairs.loc[~in_test, id_col],
                          fractions={"val": val_frac, "train": 1.0 - val_frac}, seed=seed)
    parts = {"val": rest.parts["val"], "test": test_ids, "train": rest.parts["train"]}
    return Split(parts=parts, seed=seed, method="by_video",
                 params={"test_frac": test_frac, "val_frac": val_frac,
                         "test_videos": list(videos.parts["test"])})


def video_folds(frame: pd.DataFrame, *, id_col: str = "rpid", video_col: str = "bvid", k: int = 5,
                val_frac: float = 0.15, seed: int = 0) -> list[Split]:
    """K folds over whole videos, each a `Split` of comment ids into `train`, `val` and `test`.

    * `test`: fold i's videos. Videos are dealt out largest first (ties in a seeded order) to the
      fold with the fewest comments so far, so folds hold about as many comments each and every
      video is the test of exactly one fold;
    * `val`: whole videos drawn (seeded, per fold) from the other folds' videos, about `val_frac`
      of their comments (at least one video; never a test video);
    * `train`: the remaining videos' comments, and every comment without a video (those are
      never in a test or a validation part).
    """
    if k < 2:
        raise ValueError(f"need k >= 2 folds, not {k}")
    pairs = frame[[id_col, video_col]].drop_duplicates(subset=[id_col])
    has_video = ~pairs[video_col].map(_is_missing).to_numpy(bool)
    video_of = pairs.loc[has_video, video_col].astype(str)
    sizes = video_of.value_counts()
    if len(sizes) < k + 1:
        raise ValueError(f"{k} folds over whole videos need at least {k + 1} videos, found {len(sizes)}")
    rng = np.random.default_rng(seed)
    videos = [sizes.index[i] for i in rng.permutation(len(sizes))]
    videos.sort(key=lambda v: -int(sizes[v]))  # stable: equal sizes keep the seeded order
    fold_videos: list[list[str]] = [[] for _ in range(k)]
    load = [0] * k
    for video in videos:
        target = min(range(k), key=lambda f: (load[f], f))
        fold_videos[target].append(video)
        load[target] += int(sizes[video])
    ids = pairs[id_col].astype(str).to_numpy()
    video_arr = np.where(has_video, pairs[video_col].astype(str).to_numpy(), None)
    folds = []
    for f in range(k):
        test = set(fold_videos[f])
        rest = sorted(set(sizes.index) - test)
        val = _pick_videos(rest, sizes, share=val_frac, rng=np.random.default_rng([seed, f]))
        part = np.array(["test" if v in test else "val" if v in val else "train" for v in video_arr], dtype=object)
        parts = {name: tuple(sorted(ids[part == name])) for name in ("train", "val", "test")}
        folds.append(Split(parts=parts, seed=seed, method="video_folds",
                           params={"fold": f, "k": k, "val_frac": val_frac, "test_videos": sorted(test),
                                   "val_videos": sorted(val)}))
    return folds


def linked_groups(*keys: Iterable[Any]) -> np.ndarray:
    """int64 [N]: one group per connected set of rows, two rows linked when they share a value of
    any key column (missing values link nothing). E.g. pairs sharing an image's bytes or a text."""
    columns = [list(k) for k in keys]
    n = len(columns[0]) if columns else 0
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for column in columns:
        if len(column) != n:
            raise ValueError(f"key columns differ in length ({len(column)} != {n})")
        first: dict[Any, int] = {}
        for i, value in enumerate(column):
            if _is_missing(value):
                continue
            j = first.setdefault(value, i)
            if j != i:
                parent[root(i)] = root(j)
    roots = [root(i) for i in range(n)]
    _, groups = np.unique(np.asarray(roots, dtype=np.int64), return_inverse=True)
    return groups.astype(np.int64)


def stratified_folds(ids: Iterable[Any], labels: Iterable[Any], *, groups: Iterable[Any] | None = None, k: int = 5,
                     val_frac: float = 0.15, seed: int = 0) -> list[Split]:
    """K stratified folds, each a `Split` of `ids` into `train`, `val` and `test`.

    Every id is the test of exactly one fold; the folds keep the label shares (scikit-learn's
    `StratifiedGroupKFold`, shuffled with `seed`); rows of one group (e.g. the same image) never sit
    on two sides. `val` is about `val_frac` of each fold's other rows, drawn the same way."""
    from sklearn.model_selection import StratifiedGroupKFold

    ids = np.asarray([str(i) for i in ids], dtype=object)
    labels = np.asarray(list(labels), dtype=object).astype(str)
    groups = np.arange(len(ids)) if groups is None else np.asarray(list(groups))
    if not len(ids) == len(labels) == len(groups):
        raise ValueError(f"ids, labels and groups differ in length ({len(ids)}, {len(labels)}, {len(groups)})")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("ids must be unique")
    if k < 2 or len(np.unique(groups)) < k:
        raise ValueError(f"{k} folds need k >= 2 and at least k groups ({len(np.unique(groups))})")
    if not 0 < val_frac < 1:
        raise ValueError(f"val_frac must be in (0, 1), not {val_frac}")
    outer = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for f, (rest, test) in enumerate(outer.split(ids, labels, groups)):
        n_groups = len(np.unique(groups[rest]))
        if n_groups < 2:  # nothing to hold out for validation
            train_i, val_i = np.arange(len(rest)), np.zeros(0, np.int64)
        else:
            smallest = int(np.unique(labels[rest], return_counts=True)[1].min())
            splits = max(2, min(round(1 / val_frac), n_groups, smallest))
            inner = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed + 1 + f)
            train_i, val_i = next(inner.split(ids[rest], labels[rest], groups[rest]))
        parts = {"train": tuple(sorted(ids[rest][train_i])), "val": tuple(sorted(ids[rest][val_i])),
                 "test": tuple(sorted(ids[test]))}
        folds.append(Split(parts=parts, seed=seed, method="stratified_folds",
                           params={"fold": f, "k": k, "val_frac": val_frac}))
    return folds


def _pick_videos(videos: list[str], sizes: pd.Series, *, share: float, rng: np.random.Generator) -> set[str]:
    """Videos in a random order, taken while they do not overshoot `share` of their comments by
    more than half; at least one (the smallest when all overshoot), never all of them."""
    if len(videos) < 2 or share <= 0:
        return set()
    goal = share * sum(int(sizes[v]) for v in videos)
    picked: list[str] = []
    total = 0
    for video in (videos[i] for i in rng.permutation(len(videos))):
        if total >= goal or len(picked) == len(videos) - 1:
            break
        if total + int(sizes[video]) <= 1.5 * goal:
            picked.append(video)
            total += int(sizes[video])
    if not picked:
        picked = [min(videos, key=lambda v: (int(sizes[v]), v))]
    return set(picked)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value == ""


# -- walk-forward folds in time (trend) ------------------------------------------------------------------
@dataclass(frozen=True)
class TimeFold:
    """One walk-forward fold: `test_month` (the first day of the month whose windows it tests), the
    row positions of its training, validation and test windows."""

    test_month: pd.Timestamp
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self, window_end: pd.Series) -> dict[str, Any]:
        def span(rows: np.ndarray) -> list[str] | None:
            return None if not len(rows) else [str(window_end.iloc[rows].min().date()), str(window_end.iloc[rows].max().date())]

        return {"test_month": str(self.test_month.date()), "train": int(len(self.train)), "val": int(len(self.val)),
                "test": int(len(self.test)), "train_window_ends": span(self.train),
                "val_window_ends": span(self.val), "test_window_ends": span(self.test)}


def month_end(month: Any) -> pd.Series | pd.Timestamp:
    """The last day of the month(s) starting at `month`."""
    return pd.to_datetime(month) + pd.offsets.MonthEnd(0)


def admissible(target_month: Any, before: Any) -> np.ndarray:
    """Windows whose target month ends before the day `before`: their labels were known then."""
    return np.asarray(month_end(pd.Series(pd.to_datetime(target_month))) < pd.Timestamp(before))


def walk_forward_folds(window_end: Iterable[Any], target_month: Iterable[Any], *, val_months: int = 1,
                       min_train: int = 1, test_months: Iterable[Any] | None = None,
                       eligible: np.ndarray | None = None) -> list[TimeFold]:
    """Expanding walk-forward folds, one per test month (a calendar month of `window_end`), never
    shuffled: a fold trains only on windows whose target month ends before its first test
    window_end (what was known at forecast time). Its validation windows (early stopping) are those
    of the last `val_months` window_end months among them, and its training windows in turn only
    those whose target month ends before the first validation window_end. `eligible` (bool per row)
    limits every part to some windows (e.g. enough posts); a month whose fold would have fewer
    than `min_train` training or no validation windows (with `val_months` > 0) is not a fold."""
    ends = pd.to_datetime(pd.Series(list(window_end))).reset_index(drop=True)
    targets = pd.to_datetime(pd.Series(list(target_month))).reset_index(drop=True)
    if len(ends) != len(targets):
        raise ValueError(f"{len(ends)} window ends but {len(targets)} target months")
    ok = np.ones(len(ends), bool) if eligible is None else np.asarray(eligible, bool)
    months = ends.dt.to_period("M").dt.to_timestamp()
    wanted = sorted(set(months[ok])) if test_months is None else [pd.Timestamp(m).to_period("M").to_timestamp()
                                                                   for m in test_months]
    folds = []
    for month in wanted:
        test = np.flatnonzero(ok & (months == month).to_numpy())
        if not len(test):
            continue
        known = ok & admissible(targets, ends.iloc[test].min())
        val = np.zeros(0, np.int64)
        train_mask = known
        if val_months:
            val_month_set = sorted(set(months[known]))[-val_months:]
            if not val_month_set:
                continue
            val = np.flatnonzero(known & months.isin(val_month_set).to_numpy())
            train_mask = known & admissible(targets, ends.iloc[val].min())
        train = np.flatnonzero(train_mask)
        if len(train) < max(1, min_train) or (val_months and not len(val)):
            continue
        folds.append(TimeFold(test_month=month, train=train, val=val, test=test))
    return folds
