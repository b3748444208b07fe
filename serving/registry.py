"""Model artifacts on disk (`<artifacts_root>/models/<task>/<model_id>/`) and their row in `models`.

A model folder holds model.onnx, the checkpoints, tokenizer.json (with the transformers tokenizer's
own files under tokenizer_files/ when there is one, so the folder scores on its own), labels.json,
the splits, metrics.json, eval_summary.md and SHA256SUMS; the registry records model.onnx's sha256,
which scoring verifies before it loads the file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emopulse.training.encoders.tokenizers import bundle_tokenizer, save_tokenizer
from emopulse.warehouse import latest_model, register_model

from .export import export_text_model

if TYPE_CHECKING:
    from emopulse.training.emoji_align.train import TrainResult
    from emopulse.warehouse import Warehouse

__all__ = ["ModelRecord", "export_and_register", "find_model", "model_dir", "sha256_file", "verify_artifact"]

ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class ModelRecord:
    """A registered model: the `models` row, with artifact paths by name (`onnx`, `tokenizer`, ...)."""

    model_id: str
    task: str
    version: int
    sha256: str
    artifacts: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelRecord:
        """From `emopulse.warehouse.latest_model`'s dict (JSON columns already decoded)."""
        return cls(model_id=row["model_id"], task=row["task"], version=int(row["version"]),
                   sha256=row["sha256"], artifacts=dict(row["artifacts"]),
                   metrics=dict(row.get("metrics") or {}),
                   params=dict(row.get("params") or {}))


def find_model(wh: Warehouse, *, model_id: str | None = None, task: str = "emoji") -> ModelRecord:
    """The registered model `model_id`, or the latest of `task` when no id is given."""
    if model_id is None:
        row = latest_model(wh, task)
        if row is None:
            raise LookupError(f"no model registered for task {task!r}: train and register one first")
        return ModelRecord.from_row(row)
    found = wh.con.execute(
        "SELECT model_id, task, version, sha256, metrics::VARCHAR, artifacts::VARCHAR, params::VARCHAR "
        "FROM models WHERE model_id = ?", [model_id]).fetchall()
    if not found:
        raise LookupError(f"no model {model_id!r} in the registry")
    model_id, task, version, sha256, metrics, artifacts, params = found[0]
    return ModelRecord(model_id=model_id, task=task, version=int(version), sha256=sha256,
                       artifacts=json.loads(artifacts or "{}"), metrics=json.loads(metrics or "{}"),
                       params=json.loads(params or "{}"))


def model_dir(artifacts_root: str | Path, *, task: str, model_id: str) -> Path:
    return Path(artifacts_root) / "models" / task / model_id


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifact(record: ModelRecord, name: str = "onnx") -> Path:
    """The artifact's path, after checking it exists and (for the ONNX file) matches the registry."""
    path = Path(record.artifacts[name])
    if not path.is_file():
        raise FileNotFoundError(f"model {record.model_id}: artifact {name!r} missing at {path}")
    if name == "onnx" and (actual := sha256_file(path)) != record.sha256:
        raise ValueError(f"model {record.model_id}: {path} has sha256 {actual}, "
                         f"the registry says {record.sha256}")
    return path


def export_and_register(wh: Warehouse, result: TrainResult, *, artifacts_root: str | Path,
                        model_id: str | None = None, atol: float = 1e-3) -> ModelRecord:
    """Export the trained model to ONNX (parity-checked), write its folder and register it in `models`.

    The id defaults to `<name>-<UTC time>-<first 8 hex of model.onnx's sha256>`.
    """
    task_dir = Path(artifacts_root) / "models" / result.task
    staging = task_dir / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        parity = export_text_model(result.model, result.tokenizer, staging / ONNX_FILE, atol=atol)
        sha256 = sha256_file(staging / ONNX_FILE)
        model_id = model_id or f"{result.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{sha256[:8]}"
        files = {"onnx": ONNX_FILE}
        for name, src in result.files.items():
            shutil.copy2(src, staging / Path(src).name)
            files[name] = Path(src).name
        save_tokenizer(bundle_tokenizer(result.tokenizer, staging), staging / files["tokenizer"])
        with open(staging / files["eval_summary"], "a", encoding="utf-8") as f:
            f.write(f"\n## Export\n\n- model id: {model_id}\n- ONNX opset 17, dynamic batch and sequence; inputs "
                    f"input_ids, attention_mask; output logits (cosine similarity to each emote's prototype / tau)\n"
                    f"- parity with torch on a new batch/sequence size: max abs diff {parity:.2e}\n"
                    f"- model.onnx sha256: {sha256}\n")
        (staging / "SHA256SUMS").write_text(
            "".join(f"{sha256_file(p)}  {p.relative_to(staging).as_posix()}\n"
                    for p in sorted(staging.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"), encoding="utf-8")
        files["sha256sums"] = "SHA256SUMS"
        final = model_dir(artifacts_root, task=result.task, model_id=model_id)
        if final.exists():
            raise FileExistsError(f"model folder already exists: {final}")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    artifacts = {name: str(final / filename) for name, filename in files.items()}
    metrics = {**result.metrics, "onnx_max_abs_diff": parity}
    # through JSON, as the registry stores it (tuples become lists), so the record equals a read-back
    params = json.loads(json.dumps({"name": result.name, "config": asdict(result.config), "labels": result.labels}))
    version = register_model(wh, model_id=model_id, task=result.task, metrics=metrics, artifacts=artifacts,
                             sha256=sha256, params=params)
    return ModelRecord(model_id=model_id, task=result.task, version=version, sha256=sha256,
                       artifacts=artifacts, metrics=metrics, params=params)
