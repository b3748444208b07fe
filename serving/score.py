"""Scoring into the warehouse: entities a model has not scored yet → long rows of `predictions`.

`score_entities` is the one writer: any scorer, any entity kind, records built from a frame's
rows (an image + text model gets a text alone as a record without an image, and its rows say
`text_only`); it scores in chunks (each chunk written at once, so a killed run keeps what it finished)
with batches sorted by length. The readers (`emopulse.warehouse.unscored_comments` /
`unscored_posts`) anti-join `predictions` on the model and the entity kind, so scoring again reads
only entities that came since. `score_model` scores every entity kind a registered model names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from emopulse.training.preprocess import TEXT_KINDS, image_problem
from emopulse.warehouse import ENTITY_KINDS, unscored_comments, unscored_posts, write_predictions

from .registry import ModelRecord, find_model
from .runtime import Device
from .scorer import DEFAULT_INT8_MAX_CHANGE, Scorer, Variant, load_scorer

if TYPE_CHECKING:
    from emopulse.warehouse import Warehouse

__all__ = ["ScoreSummary", "score_comments", "score_entities", "score_model", "score_posts"]

log = logging.getLogger(__name__)
CHUNK = 20_000


@dataclass(frozen=True)
class ScoreSummary:
    """What one scoring run did for one entity kind: `entities` read (not yet scored) and scored,
    `rows` written, on which graph (`variant`) and provider."""

    model_id: str
    task: str
    variant: str
    provider: str
    entity_kind: str
    entities: int
    rows: int
    seconds: float


def score_entities(wh: Warehouse, scorer: Scorer, *, entity_kind: str, frame: pd.DataFrame, id_col: str,
                   record_fn: Callable[[Mapping[str, Any]], Any] | None = None, text_col: str | None = None,
                   k: int = 5, batch_size: int = 64, chunk_size: int = CHUNK) -> ScoreSummary:
    """Score every row of `frame` (the record: `record_fn(row)`, or the `text_col` value) and
    write its rows into `predictions` as `entity_kind`, `id_col` the entity id."""
    if entity_kind not in ENTITY_KINDS:
        raise ValueError(f"unknown entity_kind {entity_kind!r}: one of {list(ENTITY_KINDS)}")
    if (record_fn is None) == (text_col is None):
        raise ValueError("give exactly one of record_fn and text_col")
    started = time.perf_counter()
    written = 0
    with_images = scorer.preprocessor.kind == "image_text"
    for start in range(0, len(frame), chunk_size):
        chunk = frame.iloc[start:start + chunk_size]
        if text_col is not None:
            records = chunk[text_col].fillna("").astype(str).tolist()
            if with_images:  # a text alone: the model's text-only path
                records = [{"text": t, "image": None} for t in records]
        else:
            records = [record_fn(row) for row in chunk.to_dict("records")]  # type: ignore[misc]
        scores = scorer.predict(records, batch_size=batch_size)
        rows = scorer.rows(chunk[id_col].tolist(), scores, k=k)
        rows.insert(0, "entity_kind", entity_kind)
        rows.insert(0, "model_id", scorer.model_id)
        if with_images and len(records):  # rows are entity by entity, each the same number
            text_only = np.array([r.get("image") is None for r in records])
            rows["text_only"] = np.repeat(text_only, len(rows) // len(records))
        if not rows.empty:
            write_predictions(wh, rows)
        written += len(rows)
    summary = ScoreSummary(model_id=scorer.model_id, task=scorer.task, variant=scorer.variant,
                           provider=scorer.provider, entity_kind=entity_kind, entities=len(frame), rows=written,
                           seconds=round(time.perf_counter() - started, 3))
    log.info("model %s (%s on %s) scored %d %ss into %d rows", summary.model_id, summary.variant, summary.provider,
             summary.entities, entity_kind, summary.rows)
    return summary


def score_comments(wh: Warehouse, scorer: Scorer, *, k: int = 5, batch_size: int = 64,
                   chunk_size: int = CHUNK) -> ScoreSummary:
    """The comments with text that the model has not scored: their `sentence` (the message without
    emote tokens, the text emote models train on; the preprocessor cleans it again, a no-op)."""
    frame = unscored_comments(wh, scorer.model_id)
    return score_entities(wh, scorer, entity_kind="comment", frame=frame, id_col="rpid", text_col="sentence",
                          k=k, batch_size=batch_size, chunk_size=chunk_size)


def _image_or_none(home: Path, local_path: Any) -> Path | None:
    """The image file when it exists and decodes (a broken image scores as a post without one)."""
    if not isinstance(local_path, str) or not local_path:
        return None
    path = home / local_path
    problem = image_problem(path)
    if problem is not None:  # missing, truncated or not an image
        log.warning("post image %s is not readable (%s): scored without an image", path, problem)
        return None
    return path


def score_posts(wh: Warehouse, scorer: Scorer, *, k: int = 5, batch_size: int = 64,
                chunk_size: int = CHUNK) -> ScoreSummary:
    """The posts the model has not scored: `post_texts.text` (title and description, cleaned; the
    whole record of a model that reads texts, such as the emotions model), and for an image+text
    model the first of the post's local images (`post_images`, by image_index)."""
    kind = scorer.preprocessor.kind
    if kind not in (*TEXT_KINDS, "image_text"):
        raise ValueError(f"model {scorer.model_id} takes {kind!r} inputs: posts give text and images")
    with_images = kind == "image_text"
    frame = unscored_posts(wh, scorer.model_id, images=with_images)
    if not with_images:
        return score_entities(wh, scorer, entity_kind="post", frame=frame, id_col="post_id", text_col="text",
                              k=k, batch_size=batch_size, chunk_size=chunk_size)
    home = wh.home

    def record(row: Mapping[str, Any]) -> dict[str, Any]:
        text = row["text"] if isinstance(row["text"], str) else ""
        return {"text": text, "image": _image_or_none(home, row["image_path"])}

    return score_entities(wh, scorer, entity_kind="post", frame=frame, id_col="post_id", record_fn=record,
                          k=k, batch_size=batch_size, chunk_size=chunk_size)


READERS: dict[str, Callable[..., ScoreSummary]] = {"comment": score_comments, "post": score_posts}


def score_model(wh: Warehouse, *, model: ModelRecord | str | None = None, task: str | None = None,
                device: Device = "auto", variant: Variant = "auto",
                int8_max_change: float = DEFAULT_INT8_MAX_CHANGE, k: int = 5, batch_size: int = 64,
                chunk_size: int = CHUNK) -> list[ScoreSummary]:
    """Score what a model (a record, an id (of `task`, when given), or the latest of `task`) has
    not scored yet, for each entity kind it names (`params.entity_kinds`, default comments)."""
    record = model if isinstance(model, ModelRecord) else find_model(wh, model_id=model, task=task)
    scorer = load_scorer(record, device=device, variant=variant, int8_max_change=int8_max_change)
    kinds = record.params.get("entity_kinds") or ["comment"]
    out = []
    for kind in kinds:
        if kind not in READERS:
            log.info("model %s names entity kind %r, which no warehouse table feeds: skipped", record.model_id, kind)
            continue
        out.append(READERS[kind](wh, scorer, k=k, batch_size=batch_size, chunk_size=chunk_size))
    return out
