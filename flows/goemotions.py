"""`emopulse import goemotions DIR`: texts labelled with emotions into `emotion_texts`, their label
names into `emotion_labels`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .settings import Settings
from .steps import writer

__all__ = ["import_goemotions"]

log = logging.getLogger(__name__)
SHOWN_ERRORS = 50  # the summary names this many bad rows; the log names every one
TEXT_COLUMNS = ["source", "split", "text_id", "text", "labels", "file", "line", "imported_at"]


def import_goemotions(settings: Settings, folder: Path, *, source: str | None = None) -> dict[str, Any]:
    """Read the split files of `folder` (`ingest.goemotions.read_goemotions`) and upsert the good rows
    by (source, split, text_id) and the label names by (source, label_id). A source whose labels the
    warehouse already holds in another list is refused before anything is written. Returns counts
    per split and the bad rows by file and line."""
    from emopulse.ingest.goemotions import read_goemotions
    from emopulse.warehouse.emotions import emotion_label_list
    from emopulse.warehouse.merge import merge_rows

    read = read_goemotions(folder, source=source)
    for error in read.errors:
        log.warning("goemotions %s: %s", read.source, error)
    now = datetime.now(UTC)
    texts = pd.DataFrame([{"source": read.source, "split": r.split, "text_id": r.text_id, "text": r.text,
                           "labels": list(r.labels), "file": r.file, "line": r.line, "imported_at": now}
                          for r in read.rows], columns=TEXT_COLUMNS)
    labels = pd.DataFrame({"source": read.source, "label_id": range(len(read.labels)), "name": list(read.labels),
                           "imported_at": now})
    if not texts.empty:
        with writer(settings, "import goemotions") as wh:
            held = emotion_label_list(wh, read.source)
            if held and tuple(held) != read.labels:
                raise ValueError(f"emotion_labels holds another label list for source {read.source!r} than "
                                 f"{folder / 'labels.txt'}: {_difference(held, read.labels)}; nothing imported: "
                                 "import it under another --source")
            with wh.transaction():
                merge_rows(wh, "emotion_labels", labels)
                merge_rows(wh, "emotion_texts", texts)
    log.info("goemotions %s: %d rows from %s, %d bad", read.source, len(texts), read.splits, len(read.errors))
    return {"source": read.source, "folder": str(folder), "rows": len(texts), "splits": read.splits,
            "labels": len(read.labels), "encodings": read.encodings, "skipped_files": read.skipped_files,
            "bad_rows": len(read.errors), "errors": read.errors[:SHOWN_ERRORS]}


def _difference(held: list[str], labels: tuple[str, ...]) -> str:
    """Where the warehouse's label list and labels.txt part: `label 3 is 'anger' in the warehouse,
    'annoyance' in labels.txt`."""
    for label_id, (old, new) in enumerate(zip(held, labels, strict=False)):
        if old != new:
            return f"label {label_id} is {old!r} in the warehouse, {new!r} in labels.txt"
    return f"{len(held)} labels in the warehouse, {len(labels)} in labels.txt"
