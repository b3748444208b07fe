"""Datasets read from the warehouse, and the per-comment view every emote model trains on.

Readers take an open DuckDB connection (for example `Warehouse.con`) and return DataFrames, so the
training code itself never touches a database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .metrics import main_label

__all__ = ["emote_comments", "read_comments", "read_emoji_comments", "read_emoji_training_set", "read_emote_images",
           "read_emotion_texts", "read_sentiment_pairs"]


def read_emoji_training_set(source: Any) -> pd.DataFrame:
    """All rows of `emoji_training_set` (one per comment and emote); `source` is a `Warehouse` or a
    DuckDB connection."""
    return _con(source).sql("SELECT * FROM emoji_training_set ORDER BY rpid, emoji_alt").df()


def read_emoji_comments(source: Any) -> pd.DataFrame:
    """Every deduplicated (comment, emote) row with its rpid (`emoji_comments_keyed`): what
    emoji training reads, choosing its labels per fold from the training videos itself."""
    return _con(source).sql("SELECT * FROM emoji_comments_keyed ORDER BY rpid, emoji_alt").df()


def read_sentiment_pairs(source: Any, *, sentiment_source: str | None = None) -> pd.DataFrame:
    """The labelled `sentiment_pairs` (of one source, or all), ordered by source and guid: what
    sentiment training reads."""
    where = "label IS NOT NULL" + (" AND source = $source" if sentiment_source else "")
    params = {"source": sentiment_source} if sentiment_source else {}
    return _con(source).execute(f"SELECT source, guid, text, image_path, image_sha256, label FROM sentiment_pairs "
                                f"WHERE {where} ORDER BY source, guid", params).df()


def read_emotion_texts(wh: Any, source: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The `emotion_texts` rows (of one source, or all: source, split, text_id, text, labels as
    lists of names), ordered by source, split and text_id, and their label names in label id order
    (`emotion_labels`). A ValueError when sources with different label lists are mixed."""
    where, params = ("WHERE source = $source", {"source": source}) if source else ("", {})
    con = _con(wh)
    frame = con.execute(f"SELECT source, split, text_id, text, labels FROM emotion_texts {where} "
                        "ORDER BY source, split, text_id", params).df()
    frame["labels"] = [list(labels) for labels in frame["labels"]]
    held = con.execute(f"SELECT source, list(name ORDER BY label_id) FROM emotion_labels {where} GROUP BY source",
                       params).fetchall()
    present = set(frame["source"])
    lists = {name: list(names) for name, names in held if name in present}
    if len({tuple(names) for names in lists.values()}) > 1:
        raise ValueError(f"emotion_texts mixes sources with different label lists ({', '.join(sorted(lists))}); "
                         "choose one source")
    return frame, next(iter(lists.values()), [])


def read_comments(source: Any, *, columns: tuple[str, ...] = ("rpid", "bvid", "sentence")) -> pd.DataFrame:
    """The given columns of `comments`, ordered by rpid (for scoring)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    return _con(source).sql(f"SELECT {cols} FROM comments ORDER BY rpid").df()


def read_emote_images(source: Any, home: str | Path) -> dict[str, Path]:
    """`[emote]` → its image downloaded by the crawler (`emotes.image_path`, relative to `home`),
    for the files that exist."""
    found = _con(source).sql("SELECT emoji_alt, image_path FROM emotes WHERE image_path IS NOT NULL").fetchall()
    paths = {alt: Path(home) / path for alt, path in found if path}
    return {alt: path for alt, path in paths.items() if path.is_file()}


def emote_comments(rows: pd.DataFrame, *, id_col: str = "rpid", label_col: str = "emoji_alt",
                   text_col: str = "sentence", video_col: str = "bvid") -> pd.DataFrame:
    """Collapse (comment, emote) rows into one row per comment.

    Columns: `id` (str), `text`, `video`, `labels` (distinct emotes, in order of first appearance),
    `counts` (occurrences of each), `main` (most frequent, ties to the first). Occurrences come from
    an `occurrences` column when present, else from counting the token in `message`, else 1; order
    of appearance from the token's position in `message` when present, else row order.
    """
    missing = {id_col, label_col, text_col} - set(rows.columns)
    if missing:
        raise ValueError(f"training rows lack columns {sorted(missing)}; found {list(rows.columns)}")
    frame = pd.DataFrame({
        "id": rows[id_col].astype(str).to_numpy(),
        "label": rows[label_col].astype(str).to_numpy(),
        "text": rows[text_col].fillna("").astype(str).to_numpy(),
        "video": rows[video_col].to_numpy() if video_col in rows else np.full(len(rows), None, object),
        "count": _occurrences(rows, label_col),
        "pos": _positions(rows, label_col),
        "row": np.arange(len(rows)),
    })
    frame = frame.sort_values(["id", "pos", "row"], kind="stable")
    records = []
    for comment_id, group in frame.groupby("id", sort=False):
        totals: dict[str, int] = {}
        for label, count in zip(group["label"], group["count"], strict=True):
            totals[label] = totals.get(label, 0) + int(count)
        labels = list(totals)
        counts = [totals[label] for label in labels]
        records.append({"id": comment_id, "text": group["text"].iloc[0], "video": group["video"].iloc[0],
                        "labels": labels, "counts": counts, "main": main_label(labels, counts)})
    return pd.DataFrame.from_records(records, columns=["id", "text", "video", "labels", "counts", "main"])


def _con(source: Any) -> Any:
    return getattr(source, "con", source)


def _occurrences(rows: pd.DataFrame, label_col: str) -> np.ndarray:
    if "occurrences" in rows:
        return rows["occurrences"].fillna(1).astype(int).clip(lower=1).to_numpy()
    if "message" in rows:
        pairs = zip(rows["message"].fillna("").astype(str), rows[label_col].astype(str), strict=True)
        return np.array([max(1, message.count(label)) for message, label in pairs], dtype=np.int64)
    return np.ones(len(rows), dtype=np.int64)


def _positions(rows: pd.DataFrame, label_col: str) -> np.ndarray:
    if "message" not in rows:
        return np.zeros(len(rows), dtype=np.int64)
    pairs = zip(rows["message"].fillna("").astype(str), rows[label_col].astype(str), strict=True)
    return np.array([(i if (i := message.find(label)) >= 0 else 1 << 30) for message, label in pairs],
                    dtype=np.int64)
