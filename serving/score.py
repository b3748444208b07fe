"""Batch scoring with ONNX Runtime: texts → top-k emotes, and comments → rows of `predictions`.

Scoring needs no torch: the tokenizer is numpy (or a transformers tokenizer) and the model runs in
ONNX Runtime: input_ids and attention_mask in, one logit per emote out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from emopulse.training.data import read_comments
from emopulse.training.encoders.tokenizers import Tokenizer, load_tokenizer
from emopulse.warehouse import write_predictions

from .registry import ModelRecord, find_model, verify_artifact
from .runtime import Device, ModelSession, open_session

if TYPE_CHECKING:
    from emopulse.warehouse import Warehouse

__all__ = ["EmojiScorer", "ScoreSummary", "prediction_rows", "score_comments"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmojiScorer:
    """A registered emote model ready to rank texts: session, tokenizer and label list."""

    model_id: str
    task: str
    session: ModelSession
    tokenizer: Tokenizer
    labels: list[str]

    @classmethod
    def load(cls, record: ModelRecord, *, device: Device = "auto") -> EmojiScorer:
        """Open the record's ONNX file (sha256 checked against the registry) and its preprocessing."""
        session = open_session(verify_artifact(record, "onnx"), device=device)
        tokenizer = load_tokenizer(verify_artifact(record, "tokenizer"))
        labels_path = verify_artifact(record, "labels")
        labels = json.loads(Path(labels_path).read_text(encoding="utf-8"))
        width = session.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(labels):
            raise ValueError(f"{labels_path} lists {len(labels)} labels but {session.path} outputs {width}")
        return cls(model_id=record.model_id, task=record.task, session=session, tokenizer=tokenizer,
                   labels=list(labels))

    def rank(self, texts: Sequence[str], *, k: int = 5,
             batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels (object array [N, k]) and their softmax probabilities ([N, k]), best first.

        Texts are batched by length, so padding stays short."""
        k = min(k, len(self.labels))
        order = np.argsort([len(t) if isinstance(t, str) else 0 for t in texts], kind="stable")
        top = np.zeros((len(texts), k), dtype=np.int64)
        probs = np.zeros((len(texts), k), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids, mask = self.tokenizer.encode([texts[i] for i in rows])
            feeds = {"input_ids": ids, "attention_mask": mask}
            logits = self.session.run(feeds, ["logits"])["logits"].astype(np.float64)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            best = np.argsort(-p, axis=1, kind="stable")[:, :k]
            top[rows] = best
            probs[rows] = np.take_along_axis(p, best, axis=1)
        return np.asarray(self.labels, dtype=object)[top], probs


def prediction_rows(scorer: EmojiScorer, comments: pd.DataFrame, *, k: int = 5, id_col: str = "rpid",
                    text_col: str = "sentence", batch_size: int = 64) -> pd.DataFrame:
    """Rows for `write_predictions` (model_id, task, entity_id, rank, label, score); comments whose
    text is empty (nothing but emotes) are skipped."""
    text = comments[text_col].fillna("").astype(str)
    keep = (text.str.strip() != "").to_numpy()
    labels, scores = scorer.rank(text[keep].tolist(), k=k, batch_size=batch_size)
    n, k = labels.shape
    return pd.DataFrame({
        "model_id": scorer.model_id, "task": scorer.task,
        "entity_id": np.repeat(comments.loc[keep, id_col].astype(str).to_numpy(), k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
        "label": labels.reshape(-1), "score": scores.reshape(-1)})


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run did: which model, on which ONNX Runtime provider, how many comments/rows."""

    model_id: str
    provider: str
    comments: int
    rows: int


def score_comments(wh: Warehouse, *, model: ModelRecord | str | None = None, task: str = "emoji",
                   k: int = 5, batch_size: int = 64, device: Device = "auto") -> ScoreSummary:
    """Score every comment with a model (a record, a model id, or None for the latest of `task`)
    into `predictions`, k rows per comment with text."""
    if not isinstance(model, ModelRecord):
        model = find_model(wh, model_id=model, task=task)
    scorer = EmojiScorer.load(model, device=device)
    comments = read_comments(wh, columns=("rpid", "sentence"))
    rows = prediction_rows(scorer, comments, k=k, batch_size=batch_size)
    if not rows.empty:
        write_predictions(wh, rows)
    summary = ScoreSummary(model_id=scorer.model_id, provider=scorer.session.provider,
                           comments=rows["entity_id"].nunique(), rows=len(rows))
    log.info("model %s scored %d comments on %s", summary.model_id, summary.comments, summary.provider)
    return summary
