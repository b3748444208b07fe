"""What every model's training hands to serving: the module, its preprocessor, its head, figures.

`serving` exports any `TrainResult` the same way (ONNX through the preprocessor, parity, an int8
variant), registers it and scores with the `Scorer` its `Head` names, so nothing model-specific
lives in `serving/`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from .preprocess import Preprocessor

__all__ = ["HEAD_FILE", "TASKS", "ZERO_BELOW", "Head", "HeadKind", "TrainResult", "load_head", "quantize_intensity"]

TASKS = ("emoji", "sentiment", "emotions", "trend")
HEAD_FILE = "head.json"
HeadKind = Literal["ranking", "multilabel", "regression"]


@dataclass(frozen=True)
class Head:
    """How a model's outputs read.

    * `ranking`: `output` holds one logit per label; softmax, labels ranked (emoji, sentiment,
      the trend class);
    * `multilabel`: one logit per label; sigmoid gives an intensity in [0, 1] per label, and a
      label is on when its intensity reaches its threshold (emotions);
    * `regression`: `output` holds one value per label (a share, say), used as it is.

    `quantize` (multilabel only) applies the EQN quantisation to the intensities before anything
    reads them (thresholds included): above 1 → 1, below 0.01 → 0, else rounded to two decimals
    (`emopulse.serving.heads.quantize_intensity`). Old head.json files without it load as False.
    """

    kind: HeadKind
    labels: tuple[str, ...]
    output: str = "logits"
    thresholds: tuple[float, ...] | None = None  # multilabel: one per label
    quantize: bool = False  # multilabel: EQN quantisation of the intensities

    def __post_init__(self) -> None:
        if self.kind not in ("ranking", "multilabel", "regression"):
            raise ValueError(f"unknown head kind {self.kind!r}")
        if not self.labels:
            raise ValueError("a head needs at least one label")
        if self.thresholds is not None and len(self.thresholds) != len(self.labels):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.labels)} labels")
        if self.quantize and self.kind != "multilabel":
            raise ValueError(f"quantize applies to multilabel heads, not {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["thresholds"] = None if self.thresholds is None else list(self.thresholds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Head:
        thresholds = data.get("thresholds")
        quantize = data.get("quantize", False)
        if not isinstance(quantize, bool):
            raise ValueError(f"head quantize must be true or false, not {quantize!r}")
        return cls(kind=data["kind"], labels=tuple(data["labels"]), output=data.get("output", "logits"),
                   thresholds=None if thresholds is None else tuple(float(t) for t in thresholds),
                   quantize=quantize)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / HEAD_FILE
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        return path


def load_head(folder: str | Path) -> Head:
    path = Path(folder) / HEAD_FILE
    try:
        return Head.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read head {path}: {exc}") from exc


@dataclass
class TrainResult:
    """A trained model ready for export: `module` (eval mode) maps the preprocessor's arrays, by
    name, to `head.output` (and any other `output_names`).

    `metrics` are the figures that describe *this* module (`metrics["evaluation"]` says how they
    were measured); `quality_records` are held-out records (as `preprocessor.encode` takes them)
    on which export measures what the int8 variant changes; without them scoring never picks
    int8 by itself; `files` are extra artifacts (checkpoints, splits, eval_summary.md, ...) copied
    into the model folder; `entity_kinds` are what the model scores in the warehouse.
    """

    name: str
    task: str
    module: torch.nn.Module
    preprocessor: Preprocessor
    head: Head
    config: dict[str, Any]
    metrics: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    quality_records: Sequence[Any] = ()
    output_names: tuple[str, ...] = ("logits",)
    entity_kinds: tuple[str, ...] = ("comment",)
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    # pretrained encoders inside `module`, name → fingerprint (e.g. {"text": "<16 hex>"}): the
    # registry records these, never the folder they were loaded from
    encoders: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}: one of {TASKS}")
        if self.head.output not in self.output_names:
            raise ValueError(f"head output {self.head.output!r} is not among {self.output_names}")


ZERO_BELOW = 0.01  # EQN: an intensity under this is no emotion at all


def quantize_intensity(values: np.ndarray | float) -> np.ndarray:
    """The EQN quantisation, float64 of `values`' shape: above 1 → 1, below 0.01 → 0 (negatives
    too), else rounded to two decimals.

    Rounding is numpy's `np.round(x, 2)`: x·100 rounded half to even, over 100 (0.456 → 0.46,
    0.125 → 0.12; a float's last bit can differ from Python's decimal `round`, 0.995 → 1.0 here,
    0.99 there): training and serving both call this function, so they agree. NaN stays NaN (a
    broken output is not made to look like "no emotion"; it is never on, as NaN >= threshold is
    false); +inf → 1, -inf → 0. Idempotent: quantising twice changes nothing. The 0.01 is read
    in the input's own precision: a float32 0.01 (0.0099999998) stays 0.01."""
    a = np.asarray(values)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    below = a < a.dtype.type(ZERO_BELOW)
    v = a.astype(np.float64)
    out = np.where(v > 1.0, 1.0, np.round(v, 2))
    return np.where(below, 0.0, out)  # NaN compares false both times: kept
