"""The emotion datasets' label lists (`emotion_labels`): read here, so no flow writes SQL."""

from __future__ import annotations

from .writer import Warehouse

__all__ = ["emotion_label_list"]


def emotion_label_list(wh: Warehouse, source: str) -> list[str]:
    """The label names of `source` in label-id order (empty when the source has none yet)."""
    return [name for (name,) in wh.con.execute(
        "SELECT name FROM emotion_labels WHERE source = ? ORDER BY label_id", [source]).fetchall()]
