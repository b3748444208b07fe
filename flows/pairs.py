"""`emopulse import pairs DIR`: image + text pairs (the sentiment model's data) into `sentiment_pairs`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .settings import Settings
from .steps import writer

__all__ = ["import_pairs"]

log = logging.getLogger(__name__)
SHOWN_ERRORS = 50  # the summary names this many bad rows; the log names every one


def import_pairs(settings: Settings, folder: Path, *, source: str | None = None) -> dict[str, Any]:
    """Read every `guid,tag` list of `folder` (`ingest.pairs.read_pairs`) and upsert its good rows
    by (source, guid). Returns counts per list and label, and the bad rows by file and line."""
    from emopulse.ingest.pairs import read_pairs
    from emopulse.warehouse.merge import merge_rows

    read = read_pairs(folder, source=source)
    for error in read.errors:
        log.warning("pairs %s: %s", read.source, error)
    frame = pd.DataFrame([{"source": read.source, "guid": p.guid, "text": p.text, "image_path": p.image_path,
                           "image_sha256": p.image_sha256, "label": p.label, "list_file": p.list_file,
                           "imported_at": datetime.now(UTC)} for p in read.pairs],
                         columns=["source", "guid", "text", "image_path", "image_sha256", "label", "list_file",
                                  "imported_at"])
    if not frame.empty:
        with writer(settings, "import pairs") as wh:
            merge_rows(wh, "sentiment_pairs", frame)
    labels = frame["label"].fillna("unlabelled").value_counts().to_dict() if not frame.empty else {}
    log.info("pairs %s: %d rows from %s, %d bad", read.source, len(frame), read.lists, len(read.errors))
    return {"source": read.source, "folder": str(folder), "rows": len(frame), "lists": read.lists,
            "labels": {k: int(v) for k, v in labels.items()}, "skipped_files": read.skipped_files,
            "bad_rows": len(read.errors), "errors": read.errors[:SHOWN_ERRORS]}
