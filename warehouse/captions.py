"""The caption cache: what a captioner said of an image, keyed by (image_sha256, captioner,
prompt_sha256), so an image is captioned once per captioner and prompt."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import duckdb

from .merge import merge_rows
from .writer import Warehouse, connection_of

__all__ = ["prompt_sha256", "read_captions", "write_captions"]


def prompt_sha256(prompt: str) -> str:
    """The sha256 (hex) of the prompt's UTF-8 bytes: the cache key's prompt part."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def read_captions(wh_or_con: Warehouse | duckdb.DuckDBPyConnection, keys: Sequence[str], *,
                  captioner: str, prompt: str) -> dict[str, str]:
    """image_sha256 → caption of the `keys` that `captioner` captioned with `prompt` (the others
    are absent). Works on the writer and on a read-only catalog connection alike."""
    if not keys:
        return {}
    rows = connection_of(wh_or_con).execute(
        "SELECT image_sha256, caption FROM captions "
        "WHERE captioner = ? AND prompt_sha256 = ? AND list_contains(?, image_sha256)",
        [captioner, prompt_sha256(prompt), list(dict.fromkeys(keys))],
    ).fetchall()
    return dict(rows)


def write_captions(wh: Warehouse, captions: Mapping[str, str], *, captioner: str, prompt: str) -> int:
    """Upsert image_sha256 → caption for `captioner` and `prompt`; returns the rows written. A
    caption written again replaces the old one and keeps its `created_at`."""
    empty = [sha for sha, caption in captions.items() if not caption or not caption.strip()]
    if empty:
        raise ValueError(f"empty caption(s) for image(s) {[sha[:12] for sha in empty]}")
    n = len(captions)
    return merge_rows(wh, "captions", {
        "image_sha256": list(captions), "captioner": [captioner] * n, "prompt_sha256": [prompt_sha256(prompt)] * n,
        "caption": list(captions.values()), "prompt": [prompt] * n, "created_at": [datetime.now(UTC)] * n,
    })
