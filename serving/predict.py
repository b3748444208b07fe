"""Score every row of a CSV file with a registered model: the input columns, then the head's.

A ranking model adds `pred_1..pred_k` and `score_1..score_k` (softmax probabilities, best first);
a multi-label model `score_<label>` (intensity in [0, 1]) for every label and `labels_on` (the
labels reaching their threshold, `;`-separated); a regression model `value_<label>`.

The text goes through the model's own preprocessor, so an emote model's text loses its `[emote]`
tokens first (`clean="strip_emotes"`) exactly as in training. Rows are never dropped and never
stop the run: a row whose text is empty after that cleaning gets empty predictions and counts as
`empty`; a row with the wrong number of fields or text that is not valid UTF-8 gets empty
predictions and counts as `unreadable` (a file that is not UTF-8 at all but reads as Chinese in
gb18030, GBK's superset, is read as that: the summary's `encoding` says which). A classifier (a ranking head of a task in `CLASSIFIERS`:
sentiment) adds `label` and `p_<label>` for every label instead. An image+text model takes
`image_col` (paths, absolute or relative to the CSV's folder) when given and adds `text_only`: a
row whose image is missing or unreadable is scored on its text alone, `text_only` true.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emopulse.training.preprocess import image_problem

from .scorer import Scorer, Scores

__all__ = ["CLASSIFIERS", "PredictSummary", "predict_csv"]

CLASSIFIERS = ("sentiment", "trend")  # ranking heads read as one class of a few


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
    missing_images: int = 0  # image+text models: rows scored text-only, their image missing or unreadable
    encoding: str = "utf-8"  # how the input was read: utf-8, or gb18030 for a GBK file
    tags_out: str | None = None


def _cleaner(scorer: Scorer) -> Callable[[str], str]:
    pre: Any = scorer.preprocessor
    text = pre if pre.kind == "text" else getattr(pre, "text", None)  # image_text and text_ngrams hold one
    if text is None:
        raise ValueError(f"model {scorer.model_id} takes {pre.kind!r} inputs, not a text column")
    return lambda t: text.texts([t])[0]


def _columns(scorer: Scorer, k: int) -> tuple[list[str], Callable[[Scores], list[list[str]]]]:
    """The head's column names, and a function giving every scored row's cells."""
    labels = np.asarray(scorer.labels, dtype=object)
    if scorer.head.kind == "ranking" and scorer.task in CLASSIFIERS:  # the label and every probability
        def classifier(scores: Scores) -> list[list[str]]:
            best = scores.values.argmax(axis=1) if len(scores) else np.zeros(0, np.int64)
            return [[str(labels[b]), *(f"{v:.6f}" for v in row)] for b, row in zip(best, scores.values, strict=True)]

        return ["label", *(f"p_{label}" for label in labels)], classifier
    if scorer.head.kind == "ranking":
        k = min(k, len(labels))

        def ranking(scores: Scores) -> list[list[str]]:
            top, values = scores.top(k)
            return [[*t.tolist(), *(f"{v:.6f}" for v in row)] for t, row in zip(top, values, strict=True)]

        return [*(f"pred_{i}" for i in range(1, k + 1)), *(f"score_{i}" for i in range(1, k + 1))], ranking
    if scorer.head.kind == "multilabel":
        digits = 2 if scorer.head.quantize else 6  # a quantised intensity has two decimals (EQN)

        def multilabel(scores: Scores) -> list[list[str]]:
            return [[*(f"{v:.{digits}f}" for v in row), ";".join(labels[on].tolist())]
                    for row, on in zip(scores.values, scores.on(), strict=True)]

        return [*(f"score_{label}" for label in labels), "labels_on"], multilabel

    def regression(scores: Scores) -> list[list[str]]:
        return [[f"{v:.6g}" for v in row] for row in scores.values]

    return [f"value_{label}" for label in labels], regression


def predict_csv(scorer: Scorer, input_path: str | Path, output_path: str | Path, *, text_col: str,
                image_col: str | None = None, k: int = 5, batch_size: int = 64, tags_out: str | Path | None = None,
                id_col: str = "guid") -> PredictSummary:
    """Score `text_col` (and `image_col`) of every row of `input_path` (UTF-8, else gb18030) into
    `output_path`; `tags_out` also writes `id_col,tag` lines (the multimodal seed's `guid,tag`)."""
    input_path, output_path = Path(input_path), Path(output_path)
    clean = _cleaner(scorer)
    raw, encoding = _decode(input_path.read_bytes())
    records = list(csv.reader(io.StringIO(raw, newline="")))
    if not records:
        raise ValueError(f"{input_path}: empty file (no header line)")
    header, body = records[0], records[1:]
    for col in (text_col, image_col, id_col if tags_out is not None else None):
        if col is not None and col not in header:
            raise ValueError(f"{input_path}: no column {col!r}; the columns are {header}")
    col = header.index(text_col)
    with_images = image_col is not None and scorer.preprocessor.kind == "image_text"
    takes_images = scorer.preprocessor.kind == "image_text"
    inputs: list[Any] = []
    keep: list[int] = []
    text_only: list[bool] = []
    unreadable = empty = missing_images = 0
    for i, row in enumerate(body):
        text = row[col] if len(row) == len(header) else None
        if text is None or _has_bad_bytes(text):
            unreadable += 1
            continue
        image = None
        if with_images and row[header.index(image_col)]:  # type: ignore[arg-type]
            image = input_path.parent / row[header.index(image_col)]  # type: ignore[arg-type]
            if image_problem(image) is not None:  # a text-only prediction, not a crash
                missing_images += 1
                image = None
        if not clean(text).strip() and image is None:
            empty += 1
            continue
        keep.append(i)
        text_only.append(image is None)
        inputs.append({"text": text, "image": image} if takes_images else text)
    scores = scorer.predict(inputs, batch_size=batch_size)
    names, cells = _columns(scorer, k)
    if takes_images:
        names = [*names, "text_only"]
    extra = [[""] * len(names) for _ in body]
    for i, more, alone in zip(keep, cells(scores), text_only, strict=True):
        extra[i] = [*more, str(alone).lower()] if takes_images else more
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*header, *names])
        for row, more in zip(body, extra, strict=True):
            fitted = (row + [""] * len(header))[:len(header)]
            writer.writerow([*fitted, *more])
    if tags_out is not None:
        _write_tags(Path(tags_out), header.index(id_col), body, keep, scores)
    return PredictSummary(model_id=scorer.model_id, variant=scorer.variant, provider=scorer.provider,
                          output=str(output_path), rows=len(body), scored=len(keep), empty=empty,
                          unreadable=unreadable, missing_images=missing_images, encoding=encoding,
                          tags_out=None if tags_out is None else str(tags_out))


def _write_tags(path: Path, id_index: int, body: list[list[str]], keep: list[int], scores: Scores) -> None:
    """`guid,tag` lines: every row's id and its top label (`null` for a row that was not scored)."""
    labels = np.asarray(scores.labels, dtype=object)
    tag = {i: str(labels[b]) for i, b in zip(keep, scores.values.argmax(axis=1) if len(scores) else [], strict=True)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["guid", "tag"])
        for i, row in enumerate(body):
            if id_index < len(row):
                writer.writerow([row[id_index], tag.get(i, "null")])


def _decode(data: bytes) -> tuple[str, str]:
    """The text and its encoding: UTF-8 (a BOM is fine); a file in which no line with non-ASCII
    bytes is UTF-8 but the whole is gb18030 reading as Chinese (GBK's superset) is read as that;
    otherwise UTF-8 with the bad bytes kept as escapes (those rows count as `unreadable`)."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    lines = [line for line in data.splitlines() if any(byte > 127 for byte in line)]
    if not any(_is_utf8(line) for line in lines):
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            text = None
        if text is not None and _reads_as_chinese(text):
            return text, "gb18030"
    return data.decode("utf-8-sig", errors="surrogateescape"), "utf-8"


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"


def _reads_as_chinese(text: str) -> bool:
    """Most non-ASCII characters are Chinese, and they are not lone characters inside Latin words
    (how a cp1252 `naïve` reads as gb18030: `na飗e`)."""
    wide = [i for i, ch in enumerate(text) if ord(ch) > 127]
    if not wide:
        return True
    cjk = [i for i in wide if _cjk(text[i])]
    inside = sum(0 < i < len(text) - 1 and text[i - 1].isascii() and text[i - 1].isalpha()
                 and text[i + 1].isascii() and text[i + 1].isalpha() for i in cjk)
    return len(cjk) >= 0.9 * len(wide) and inside <= 0.2 * len(cjk)


def _has_bad_bytes(text: str) -> bool:
    """True when decoding left surrogate escapes: bytes that are not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)
