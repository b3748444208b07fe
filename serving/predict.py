"""Score every row of a CSV file with a registered model: the input columns, then the head's.

A ranking model adds `pred_1..pred_k` and `score_1..score_k` (softmax probabilities, best first);
a multi-label model `score_<label>` (intensity in [0, 1]) for every label and `labels_on` (the
labels reaching their threshold, `;`-separated); a regression model `value_<label>`.

The text goes through the model's own preprocessor, so an emote model's text loses its `[emote]`
tokens first (`clean="strip_emotes"`) exactly as in training. Rows are never dropped and never
stop the run: a row whose text is empty after that cleaning gets empty predictions and counts as
`empty`; a row with the wrong number of fields or text that is not valid UTF-8 gets empty
predictions and counts as `unreadable`. An image+text model takes `image_col` (paths, relative to
the CSV's folder) when given.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .scorer import Scorer, Scores

__all__ = ["PredictSummary", "predict_csv"]


@dataclass(frozen=True)
class PredictSummary:
    model_id: str
    variant: str
    provider: str
    output: str
    rows: int
    scored: int
    empty: int
    unreadable: int


def _cleaner(scorer: Scorer) -> Callable[[str], str]:
    pre: Any = scorer.preprocessor
    text = pre if pre.kind == "text" else getattr(pre, "text", None)
    if text is None:
        raise ValueError(f"model {scorer.model_id} takes {pre.kind!r} inputs, not a text column")
    return lambda t: text.texts([t])[0]


def _columns(scorer: Scorer, k: int) -> tuple[list[str], Callable[[Scores], list[list[str]]]]:
    """The head's column names, and a function giving every scored row's cells."""
    labels = np.asarray(scorer.labels, dtype=object)
    if scorer.head.kind == "ranking":
        k = min(k, len(labels))

        def ranking(scores: Scores) -> list[list[str]]:
            top, values = scores.top(k)
            return [[*t.tolist(), *(f"{v:.6f}" for v in row)] for t, row in zip(top, values, strict=True)]

        return [*(f"pred_{i}" for i in range(1, k + 1)), *(f"score_{i}" for i in range(1, k + 1))], ranking
    if scorer.head.kind == "multilabel":
        def multilabel(scores: Scores) -> list[list[str]]:
            return [[*(f"{v:.6f}" for v in row), ";".join(labels[on].tolist())]
                    for row, on in zip(scores.values, scores.on(), strict=True)]

        return [*(f"score_{label}" for label in labels), "labels_on"], multilabel

    def regression(scores: Scores) -> list[list[str]]:
        return [[f"{v:.6g}" for v in row] for row in scores.values]

    return [f"value_{label}" for label in labels], regression


def predict_csv(scorer: Scorer, input_path: str | Path, output_path: str | Path, *, text_col: str,
                image_col: str | None = None, k: int = 5, batch_size: int = 64) -> PredictSummary:
    """Score `text_col` of every row of `input_path` (UTF-8, a BOM is fine) into `output_path`."""
    input_path, output_path = Path(input_path), Path(output_path)
    clean = _cleaner(scorer)
    raw = input_path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    records = list(csv.reader(io.StringIO(raw, newline="")))
    if not records:
        raise ValueError(f"{input_path}: empty file (no header line)")
    header, body = records[0], records[1:]
    for col in (text_col, image_col):
        if col is not None and col not in header:
            raise ValueError(f"{input_path}: no column {col!r}; the columns are {header}")
    col = header.index(text_col)
    with_images = image_col is not None and scorer.preprocessor.kind == "image_text"
    inputs: list[Any] = []
    keep: list[int] = []
    unreadable = empty = 0
    for i, row in enumerate(body):
        text = row[col] if len(row) == len(header) else None
        if text is None or _has_bad_bytes(text):
            unreadable += 1
            continue
        image = None
        if with_images and row[header.index(image_col)]:  # type: ignore[arg-type]
            image = input_path.parent / row[header.index(image_col)]  # type: ignore[arg-type]
        if not clean(text).strip() and image is None:
            empty += 1
            continue
        keep.append(i)
        inputs.append({"text": text, "image": image} if scorer.preprocessor.kind == "image_text" else text)
    scores = scorer.predict(inputs, batch_size=batch_size)
    names, cells = _columns(scorer, k)
    extra = [[""] * len(names) for _ in body]
    for i, more in zip(keep, cells(scores), strict=True):
        extra[i] = more
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*header, *names])
        for row, more in zip(body, extra, strict=True):
            fitted = (row + [""] * len(header))[:len(header)]
            writer.writerow([*fitted, *more])
    return PredictSummary(model_id=scorer.model_id, variant=scorer.variant, provider=scorer.provider,
                          output=str(output_path), rows=len(body), scored=len(keep), empty=empty,
                          unreadable=unreadable)


def _has_bad_bytes(text: str) -> bool:
    """True when decoding left surrogate escapes: bytes that are not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)
