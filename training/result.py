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

if TYPE_CHECKING:
    import torch

    from .preprocess import Preprocessor

__all__ = ["HEAD_FILE", "TASKS", "Head", "HeadKind", "TrainResult", "load_head"]

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
    """

    kind: HeadKind
    labels: tuple[str, ...]
    output: str = "logits"
    thresholds: tuple[float, ...] | None = None  # multilabel: one per label

    def __post_init__(self) -> None:
        if self.kind not in ("ranking", "multilabel", "regression"):
            raise ValueError(f"unknown head kind {self.kind!r}")
        if not self.labels:
            raise ValueError("a head needs at least one label")
        if self.thresholds is not None and len(self.thresholds) != len(self.labels):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.labels)} labels")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["thresholds"] = None if self.thresholds is None else list(self.thresholds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Head:
        thresholds = data.get("thresholds")
        return cls(kind=data["kind"], labels=tuple(data["labels"]), output=data.get("output", "logits"),
                   thresholds=None if thresholds is None else tuple(float(t) for t in thresholds))

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
