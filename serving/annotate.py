"""EQN annotation: CSV files in, the same files out with an energy level per emotion.

`annotate_files(scorer, input, output, text_col=...)` takes a multi-label model (the `emotions`
task) and a CSV file, or a folder whose every `*.csv` it annotates (sorted by name, the EQN seed's
folder mode) into a folder of files of the same names. Each output keeps the input's columns and
rows in order and adds

* `energy_<label>` for every label of the head, in its order: 10 × the EQN-quantised intensity
  (`heads.energy_level`), 0-10 with at most one decimal (`4.6`, `0`, `10`);
* `labels`: the labels whose quantised intensity reaches the head's threshold, in label order,
  joined with `;` (empty when none). Thresholds are read against the quantised intensity even
  for a head without `quantize`, so a file never lists a label its energy does not reach.

Reading is `predict_csv`'s: UTF-8 (a BOM is fine), or gb18030 for a GBK file that reads as
Chinese; the text goes through the model's own preprocessor. Rows never stop the run: a text
empty after that cleaning is `empty` (empty cells, not scored), a row with the wrong number of
fields or bytes that are not text is `unreadable` (empty cells). A file that cannot be annotated
(not a text file, an unreadable header, no text column, columns it would duplicate) is an error
for a file input; in a folder it is named in `failed` with the reason, and the others go on.
The output is UTF-8, always: bytes of an unreadable row that are not text are written as U+FFFD.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import heads
from .predict import _cleaner, _decode, _has_bad_bytes
from .scorer import Scorer

__all__ = ["AnnotateSummary", "AnnotatedFile", "annotate_csv", "annotate_files", "annotation_columns"]

BLOCK = 2048  # records scored between two updates of the progress bar
_BAD_BYTES = re.compile("[\udc80-\udcff]")  # what decoding kept of bytes that are not text


@dataclass(frozen=True)
class AnnotatedFile:
    """One annotated file: rows read, `scored`, `empty` (no text), `unreadable` (bad row), and
    how it was read (`encoding`: utf-8 or gb18030)."""

    input: str
    output: str
    rows: int
    scored: int
    empty: int
    unreadable: int
    encoding: str


@dataclass(frozen=True)
class AnnotateSummary:
    """A whole run: `files` annotated (folder mode: of `files + len(failed)` CSVs), row counts
    summed over them, `failed` files as `{"path", "reason"}`, and the speed (`rows_per_s`: rows
    read per second, scoring and writing included)."""

    model_id: str
    variant: str
    provider: str
    input: str
    output: str
    mode: str  # "file" or "directory"
    files: int
    rows: int
    scored: int
    empty: int
    unreadable: int
    seconds: float
    rows_per_s: float
    failed: list[dict[str, str]] = field(default_factory=list)
    annotated: list[AnnotatedFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _NoProgress:
    def files(self, total: int) -> None: ...
    def file(self, name: str, rows: int) -> None: ...
    def advance(self, rows: int) -> None: ...
    def file_done(self) -> None: ...


class _RichProgress(_NoProgress):
    """A rows bar for the file being annotated, and (folder mode) a files bar; on stderr."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._files: Any = None
        self._rows = bar.add_task("rows", total=None)

    def files(self, total: int) -> None:
        self._files = self._bar.add_task("files", total=total)

    def file(self, name: str, rows: int) -> None:
        self._bar.reset(self._rows, total=rows, description=f"rows of {name}")

    def advance(self, rows: int) -> None:
        self._bar.advance(self._rows, rows)

    def file_done(self) -> None:
        if self._files is not None:
            self._bar.advance(self._files)


@contextmanager
def _progress(enabled: bool) -> Iterator[_NoProgress]:
    if not enabled:
        yield _NoProgress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True))  # stdout stays for the command's result
    with bar:
        yield _RichProgress(bar)


PREDICTED_LABELS = "labels_predicted"  # the `labels` column's name when the input has one already


def annotation_columns(labels: Sequence[str]) -> list[str]:
    """The columns an annotation adds: `energy_<label>` for every label, then `labels` (or
    `labels_predicted`, when the input has a `labels` column of its own)."""
    return [*(f"energy_{label}" for label in labels), "labels"]


def _energy_cell(value: float) -> str:
    if math.isnan(value):  # a broken output: no number rather than a made-up one
        return ""
    return f"{value:.1f}".removesuffix(".0")


def _require_multilabel(scorer: Scorer) -> None:
    if scorer.head.kind != "multilabel":
        raise ValueError(f"model {scorer.model_id} ({scorer.task}) has a {scorer.head.kind!r} head: annotating "
                         "emotions needs a multilabel head (an intensity per emotion); train an emotions model "
                         "or give --model-id of one")


def _read(path: Path, text_col: str, added: Sequence[str]) -> tuple[list[str], list[list[str]], str]:
    """The header, the rows and the encoding of a CSV to annotate; ValueError says why not."""
    data = path.read_bytes()
    if b"\x00" in data.split(b"\n", 1)[0] or data.count(b"\x00") * 100 > len(data):
        raise ValueError(f"{path}: not a text CSV (it holds NUL bytes)")  # a binary file; a stray NUL costs its row
    text, encoding = _decode(data)
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV: {exc}") from None
    if not records or not records[0]:
        raise ValueError(f"{path}: empty file (no header line)")
    header, body = records[0], records[1:]
    if any(_has_bad_bytes(name) for name in header):
        raise ValueError(f"{path}: the header line is neither UTF-8 nor GBK/gb18030")
    if text_col not in header:
        raise ValueError(f"{path}: no column {text_col!r}; the columns are {header}")
    clash = [name for name in added if name in header and name != "labels"]
    if clash or ("labels" in header and PREDICTED_LABELS in header):
        raise ValueError(f"{path}: already has column(s) {clash} (annotated before?): annotating would repeat them")
    return header, body, encoding


def annotate_csv(scorer: Scorer, input_path: str | Path, output_path: str | Path, *, text_col: str,
                 batch_size: int = 64, progress: Any = None) -> AnnotatedFile:
    """Annotate one CSV (module docstring) into `output_path`; ValueError for a file it cannot read."""
    _require_multilabel(scorer)
    input_path, output_path = Path(input_path), Path(output_path)
    if input_path.resolve() == output_path.resolve():
        raise ValueError(f"{output_path}: the output would overwrite its input")
    names = annotation_columns(scorer.labels)
    header, body, encoding = _read(input_path, text_col, names)
    if "labels" in header:  # labelled data keeps its own `labels`; the model's go beside them
        names[-1] = PREDICTED_LABELS
    bar = progress or _NoProgress()
    bar.file(input_path.name, len(body))
    clean = _cleaner(scorer)
    col = header.index(text_col)
    keep: list[int] = []
    texts: list[str] = []
    empty = unreadable = 0
    for i, row in enumerate(body):
        if not row or (len(row) == 1 and len(header) > 1 and not row[0].strip()):  # a blank line
            empty += 1
            continue
        text = row[col] if len(row) == len(header) else None
        if text is None or _has_bad_bytes(text) or "\x00" in text:
            unreadable += 1
            continue
        if not clean(text).strip():
            empty += 1
            continue
        keep.append(i)
        texts.append(text)
    records: list[Any] = texts
    if scorer.preprocessor.kind == "image_text":  # a text alone: the model's text-only path
        records = [{"text": t, "image": None} for t in texts]
    bar.advance(len(body) - len(keep))
    thresholds = np.asarray(scorer.head.thresholds or [0.5] * len(scorer.labels), dtype=np.float64)
    labels = np.asarray(scorer.labels, dtype=object)
    extra: list[list[str]] = [[""] * len(names) for _ in body]
    for start in range(0, len(records), BLOCK):
        values = scorer.predict(records[start:start + BLOCK], batch_size=batch_size).values
        intensity = heads.quantize_intensity(values)  # a no-op where the head quantised already
        energy, on = heads.energy_level(intensity), intensity >= thresholds
        for i, row_energy, row_on in zip(keep[start:start + BLOCK], energy, on, strict=True):
            extra[i] = [*(_energy_cell(e) for e in row_energy), ";".join(labels[row_on].tolist())]
        bar.advance(len(values))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*header, *names])
        for row, more in zip(body, extra, strict=True):
            cells = [_BAD_BYTES.sub("\ufffd", c) for c in (row + [""] * len(header))[:len(header)]]
            writer.writerow([*cells, *more])
    return AnnotatedFile(input=str(input_path), output=str(output_path), rows=len(body), scored=len(keep),
                         empty=empty, unreadable=unreadable, encoding=encoding)


def _csv_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv"),
                  key=lambda p: p.name)


def annotate_files(scorer: Scorer, input_path: str | Path, output_path: str | Path, *, text_col: str,
                   batch_size: int = 64, progress: bool = False) -> AnnotateSummary:
    """Annotate a CSV file into the CSV `output_path`, or every `*.csv` of a folder into the folder
    `output_path` (same names); `progress` shows bars on stderr. See the module docstring."""
    _require_multilabel(scorer)
    _cleaner(scorer)  # a model that takes no text fails here, not once per file
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: no such file or folder")
    started = time.perf_counter()
    done: list[AnnotatedFile] = []
    failed: list[dict[str, str]] = []
    with _progress(progress) as bar:
        if input_path.is_dir():
            mode = "directory"
            if output_path.exists() and not output_path.is_dir():
                raise ValueError(f"{output_path}: a folder input needs an output folder, and this is a file")
            if output_path.resolve() == input_path.resolve():
                raise ValueError(f"{output_path}: the output folder is the input folder (it would overwrite them)")
            files = _csv_files(input_path)
            if not files:
                raise ValueError(f"{input_path}: no *.csv files in it")
            output_path.mkdir(parents=True, exist_ok=True)
            bar.files(len(files))
            for path in files:
                try:
                    done.append(annotate_csv(scorer, path, output_path / path.name, text_col=text_col,
                                             batch_size=batch_size, progress=bar))
                except (OSError, ValueError, UnicodeError) as exc:  # this file only: the others go on
                    failed.append({"path": str(path), "reason": str(exc)})
                bar.file_done()
        else:
            mode = "file"
            if output_path.is_dir():
                raise ValueError(f"{output_path}: a file input writes a CSV file, and this is a folder")
            done.append(annotate_csv(scorer, input_path, output_path, text_col=text_col, batch_size=batch_size,
                                     progress=bar))
    seconds = time.perf_counter() - started
    rows = sum(f.rows for f in done)
    return AnnotateSummary(
        model_id=scorer.model_id, variant=scorer.variant, provider=scorer.provider, input=str(input_path),
        output=str(output_path), mode=mode, files=len(done), rows=rows, scored=sum(f.scored for f in done),
        empty=sum(f.empty for f in done), unreadable=sum(f.unreadable for f in done), seconds=round(seconds, 3),
        rows_per_s=round(rows / seconds, 1) if seconds > 0 else 0.0, failed=failed, annotated=done)
