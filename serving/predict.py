"""Rank emotes for every row of a CSV file: the input columns, then pred_1..pred_k and score_1..score_k.

Rows are never dropped and never stop the run: a row whose text is empty (after `clean`, e.g. emote
tokens removed) gets empty predictions and counts as `empty`; a row with the wrong number of fields
or text that is not valid UTF-8 gets empty predictions and counts as `unreadable`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .score import EmojiScorer

__all__ = ["PredictSummary", "predict_csv"]


@dataclass(frozen=True)
class PredictSummary:
    model_id: str
    provider: str
    output: str
    rows: int
    scored: int
    empty: int
    unreadable: int


def predict_csv(scorer: EmojiScorer, input_path: str | Path, output_path: str | Path, *, text_col: str,
                k: int = 5, clean: Callable[[str], str] | None = None, batch_size: int = 64) -> PredictSummary:
    """Score `text_col` of every row of `input_path` (UTF-8, a BOM is fine) into `output_path`."""
    input_path, output_path = Path(input_path), Path(output_path)
    raw = input_path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    records = list(csv.reader(io.StringIO(raw, newline="")))
    if not records:
        raise ValueError(f"{input_path}: empty file (no header line)")
    header, body = records[0], records[1:]
    if text_col not in header:
        raise ValueError(f"{input_path}: no column {text_col!r}; the columns are {header}")
    col = header.index(text_col)
    texts: list[str | None] = []
    unreadable = empty = 0
    for row in body:
        text = row[col] if len(row) == len(header) else None
        if text is None or _has_bad_bytes(text):
            unreadable += 1
            texts.append(None)
            continue
        text = clean(text) if clean else text
        if not text.strip():
            empty += 1
            texts.append(None)
        else:
            texts.append(text)
    keep = [i for i, t in enumerate(texts) if t is not None]
    labels, scores = scorer.rank([texts[i] for i in keep], k=k, batch_size=batch_size)
    k = labels.shape[1] if len(keep) else min(k, len(scorer.labels))
    extra = [[""] * (2 * k) for _ in body]
    for j, i in enumerate(keep):
        extra[i] = [*labels[j].tolist(), *(f"{s:.6f}" for s in scores[j])]
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*header, *(f"pred_{i}" for i in range(1, k + 1)), *(f"score_{i}" for i in range(1, k + 1))])
        for row, more in zip(body, extra, strict=True):
            fitted = (row + [""] * len(header))[:len(header)]
            writer.writerow([*fitted, *more])
    return PredictSummary(model_id=scorer.model_id, provider=scorer.session.provider, output=str(output_path),
                          rows=len(body), scored=len(keep), empty=empty, unreadable=unreadable)


def _has_bad_bytes(text: str) -> bool:
    """True when decoding left surrogate escapes: bytes that are not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)
