"""Scorers: a registered model ready to score records with ONNX Runtime, one class per head.

`load_scorer(record)` checks every file scoring reads against the registry's sha256, opens the
ONNX session (CUDA only when it really runs there, else the CPU), rebuilds the preprocessor and
the head from the model folder, and returns the head's scorer:

* `RankingScorer`: softmax over the labels; rows of `predictions` are the top-k labels;
* `MultiLabelScorer`: a sigmoid intensity in [0, 1] per label, on where it reaches the label's
  threshold; every label is a row;
* `RegressionScorer`: the values as they are; every output is a row.

`predict(records)` encodes and runs records in batches of similar length (sorted by
`preprocessor.length`, so a batch pads to little more than its own texts), and gives the
records' scores back in their own order. `variant="auto"` uses the int8 graph on the CPU when its
measured change against fp32 is within `int8_max_change`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from emopulse.training.preprocess import Preprocessor, load_preprocessor
from emopulse.training.result import Head, load_head

from . import heads
from .quantize import int8_change
from .registry import ModelRecord
from .runtime import CPU, CUDA, Device, ModelSession, open_session

__all__ = ["MultiLabelScorer", "RankingScorer", "RegressionScorer", "Scorer", "Scores", "Variant", "load_scorer"]

log = logging.getLogger(__name__)
Variant = Literal["auto", "fp32", "int8"]
DEFAULT_INT8_MAX_CHANGE = 0.02


@dataclass(frozen=True)
class Scores:
    """A scorer's output for N records: `values` [N, labels] (probabilities, intensities or values)."""

    head: Head
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.head.labels

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top-k labels (object [N, k]) and their scores ([N, k]), best first."""
        best = heads.top_k(self.values, k) if len(self) else np.zeros((0, min(k, len(self.labels))), np.int64)
        return np.asarray(self.labels, dtype=object)[best], np.take_along_axis(self.values, best, axis=1)

    def ranks(self) -> np.ndarray:
        """Each label's rank by score, 1 = highest ([N, labels])."""
        return heads.ranks(self.values)

    def on(self) -> np.ndarray:
        """Multilabel: bool [N, labels], intensity >= the label's threshold (0.5 without thresholds)."""
        thresholds = np.asarray(self.head.thresholds or [0.5] * len(self.labels), dtype=np.float64)
        return self.values >= thresholds


@dataclass(frozen=True)
class Scorer:
    """A session, the preprocessor and head it was trained with, and where it came from."""

    model_id: str
    task: str
    variant: str
    session: ModelSession
    preprocessor: Preprocessor
    head: Head
    kind: ClassVar[str] = ""

    @property
    def provider(self) -> str:
        return self.session.provider

    @property
    def labels(self) -> tuple[str, ...]:
        return self.head.labels

    def predict(self, records: Sequence[Any], *, batch_size: int = 64, sort: bool = True) -> Scores:
        """Scores of `records`, in their order; batches of records of similar length (`sort=False`:
        in the given order, as they come)."""
        lengths = [self.preprocessor.length(r) for r in records]
        order = np.argsort(lengths, kind="stable") if sort else np.arange(len(records))
        out = np.zeros((len(records), len(self.labels)), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            feeds = self.preprocessor.encode([records[i] for i in rows])
            raw = self.session.run(feeds, [self.head.output])[self.head.output]
            out[rows] = heads.values(self.head, raw)
        return Scores(self.head, out)

    def rows(self, entity_ids: Sequence[Any], scores: Scores, *, k: int = 5) -> pd.DataFrame:
        """Long rows (entity_id, label, score, rank) for `predictions`: every label."""
        n, width = scores.values.shape
        return pd.DataFrame({
            "entity_id": np.repeat(np.asarray(entity_ids, dtype=object).astype(str), width),
            "label": np.tile(np.asarray(self.labels, dtype=object), n),
            "score": scores.values.reshape(-1),
            "rank": scores.ranks().reshape(-1)})


@dataclass(frozen=True)
class RankingScorer(Scorer):
    kind: ClassVar[str] = "ranking"

    def rank(self, records: Sequence[Any], *, k: int = 5, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels (object [N, k]) and their softmax probabilities, best first."""
        return self.predict(records, batch_size=batch_size).top(k)

    def rows(self, entity_ids: Sequence[Any], scores: Scores, *, k: int = 5) -> pd.DataFrame:
        """The top-k labels of each entity."""
        labels, values = scores.top(k)
        n, k = labels.shape
        return pd.DataFrame({
            "entity_id": np.repeat(np.asarray(entity_ids, dtype=object).astype(str), k),
            "label": labels.reshape(-1), "score": values.reshape(-1),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n)})


@dataclass(frozen=True)
class MultiLabelScorer(Scorer):
    kind: ClassVar[str] = "multilabel"

    def on(self, records: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        """bool [N, labels]: which labels are on (intensity >= threshold)."""
        return self.predict(records, batch_size=batch_size).on()


@dataclass(frozen=True)
class RegressionScorer(Scorer):
    kind: ClassVar[str] = "regression"


def _cuda_listed() -> bool:
    import onnxruntime as ort

    return CUDA in ort.get_available_providers()


_SCORERS: dict[str, type[Scorer]] = {c.kind: c for c in (RankingScorer, MultiLabelScorer, RegressionScorer)}


def _choose_int8(record: ModelRecord, variant: Variant, int8_max_change: float) -> tuple[bool, str]:
    if variant == "fp32":
        return False, "asked for fp32"
    has = "onnx_int8" in record.artifacts
    if variant == "int8":
        if not has:
            why = (record.metrics.get("int8") or {}).get("error", "it was not exported")
            raise LookupError(f"model {record.model_id} has no int8 variant: {why}")
        return True, "asked for int8"
    if not has:
        return False, "no int8 variant"
    change = int8_change(record.metrics)
    if change is None:
        return False, "int8's change against fp32 was not measured"
    if change > int8_max_change:
        return False, f"int8 changes {change:.4f} > {int8_max_change:g}"
    return True, f"int8 changes {change:.4f} <= {int8_max_change:g}"


def load_scorer(record: ModelRecord, *, device: Device = "auto", variant: Variant = "auto",
                int8_max_change: float = DEFAULT_INT8_MAX_CHANGE) -> Scorer:
    """The scorer of `record`'s head, over the fp32 or int8 graph (see the module docstring).

    int8 runs on the CPU: on CUDA (`device="cuda"`, or `"auto"` where the CUDA session loads) the
    fp32 graph is used unless `variant="int8"` is asked for."""
    if variant not in ("auto", "fp32", "int8"):
        raise ValueError(f"variant must be 'auto', 'fp32' or 'int8', not {variant!r}")
    if "head" not in record.artifacts or "preprocessor" not in record.artifacts:
        raise LookupError(f"model {record.model_id} has no head.json/preprocessor.json: it was registered before "
                          "issue 9's model folders; train and register it again")
    use_int8, why = _choose_int8(record, variant, int8_max_change)
    verified: set[str] = set()

    def verified_path(name: str) -> Path:
        for rel in record.serving_files(name):
            if rel not in verified:
                record.verify(rel)
                verified.add(rel)
        return record.path(name)

    session = None
    if use_int8 and variant == "auto" and device != "cpu" and _cuda_listed():
        session = open_session(verified_path("onnx"), device=device)  # fp32 if CUDA really runs it
        if session.provider == CPU:
            session = None
        else:
            use_int8, why = False, f"fp32 on {session.provider}"
    name = "onnx_int8" if use_int8 else "onnx"
    path = verified_path(name)
    if session is None:
        session = open_session(path, device="cpu" if use_int8 and variant == "auto" else device)
    head = load_head(record.path("head").parent)
    preprocessor = load_preprocessor(record.path("preprocessor").parent)
    missing = [n for n in preprocessor.input_names if n not in session.input_names]
    if missing:
        raise ValueError(f"{session.path} lacks the preprocessor's input(s) {missing} (it has {session.input_names})")
    outputs = {o.name: o.shape for o in session.session.get_outputs()}
    if head.output not in outputs:
        raise ValueError(f"{session.path} has no output {head.output!r} named by {record.path('head')}")
    width = outputs[head.output][-1] if outputs[head.output] else None
    if isinstance(width, int) and width != len(head.labels):
        raise ValueError(f"{record.path('head')} lists {len(head.labels)} labels but {session.path} outputs {width}")
    log.info("model %s: %s (%s) on %s", record.model_id, "int8" if use_int8 else "fp32", why, session.provider)
    return _SCORERS[head.kind](model_id=record.model_id, task=record.task, variant="int8" if use_int8 else "fp32",
                               session=session, preprocessor=preprocessor, head=head)
