"""Model folders (`<home>/models/<task>/<model_id>/`) and their row in `models`.

`export_and_register(wh, result)` takes any `TrainResult`: it exports `model.onnx` through the
result's preprocessor (parity with torch on new shapes, on the CPU and on CUDA when a session
really runs there), writes the int8 variant `model.int8.onnx` with what it changes on the
result's held-out records, saves `preprocessor.json` (with a tokenizer's own files under
`tokenizer_files/`), `head.json` and the result's files, and registers the folder: artifact paths
relative to the home (the home can move), the sha256 of every file (checked when scoring loads
it: a swapped head.json would otherwise rename every prediction), and the pretrained encoders by
fingerprint, never by folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from emopulse.training.preprocess import PREPROCESSOR_FILE
from emopulse.training.result import HEAD_FILE
from emopulse.warehouse import champion_model, find_model_row, latest_model, register_model

from .export import OPSET, export_onnx, parity_everywhere
from .quantize import quantization_quality, quantize_int8
from .runtime import open_session

if TYPE_CHECKING:
    from emopulse.training.result import TrainResult
    from emopulse.warehouse import Warehouse

__all__ = [
    "ArtifactMismatch", "INT8_FILE", "ONNX_FILE", "ModelRecord", "export_and_register", "find_model", "model_dir",
    "sha256_file",
]

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
SUMS_FILE = "SHA256SUMS"
EXPORT_FILE = "export.json"


class ArtifactMismatch(ValueError):
    """A model file differs from what the registry recorded (changed or swapped since)."""


@dataclass(frozen=True)
class ModelRecord:
    """A registered model: its `models` row, with `home` (the folder its paths are relative to).

    `artifacts` name files by role (`onnx`, `onnx_int8`, `head`, `preprocessor`, and the training
    result's own: `checkpoint`, `eval_summary`, ...); `files` map every file of the model folder
    to its sha256; both use paths relative to the home."""

    model_id: str
    task: str
    version: int
    sha256: str
    artifacts: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    home: Path = field(default=Path("."), compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, home: str | Path = ".") -> ModelRecord:
        """From `emopulse.warehouse.latest_model`'s dict (JSON columns already decoded)."""
        return cls(model_id=row["model_id"], task=row["task"], version=int(row["version"]), sha256=row["sha256"],
                   artifacts=dict(row["artifacts"]), metrics=dict(row.get("metrics") or {}),
                   params=dict(row.get("params") or {}), files=dict(row.get("files") or {}), home=Path(home))

    @property
    def folder(self) -> Path:
        """The model folder (where model.onnx lies)."""
        return self.path("onnx").parent

    def path(self, name: str) -> Path:
        """Where artifact `name` is now: under the home (an old record's absolute path as it is)."""
        if name not in self.artifacts:
            raise KeyError(f"model {self.model_id} has no artifact {name!r} (it has {sorted(self.artifacts)})")
        return self.home / self.artifacts[name]

    def verify(self, relative: str) -> Path:
        """The file at `relative` (to the home), after checking it exists and matches its sha256."""
        path = self.home / relative
        if not path.is_file():
            raise FileNotFoundError(f"model {self.model_id}: {relative} is missing (looked at {path})")
        want = self.files.get(relative)
        if want is None and relative == self.artifacts.get("onnx"):
            want = self.sha256  # a record from before `files`: only model.onnx was hashed
        if want is None:
            raise ArtifactMismatch(f"model {self.model_id}: the registry has no sha256 for {relative}")
        if (actual := sha256_file(path)) != want:
            raise ArtifactMismatch(f"model {self.model_id}: {relative} has sha256 {actual[:12]}..., the registry "
                                   f"says {want[:12]}... (the file was changed or swapped since it was registered)")
        return path

    def serving_files(self, onnx: str = "onnx") -> list[str]:
        """What scoring reads (relative to the home), each checked on load: the ONNX variant,
        head.json (the labels), preprocessor.json, and labels.json and the tokenizer's files if any."""
        folder = PurePosixPath(self.artifacts[onnx]).parent
        names = [self.artifacts[onnx], *(self.artifacts[n] for n in ("head", "preprocessor") if n in self.artifacts)]
        for rel in sorted(self.files):
            path = PurePosixPath(rel)
            if path.is_relative_to(folder) and rel not in names:
                inside = path.relative_to(folder)
                if str(inside) == "labels.json" or inside.parts[0] == TOKENIZER_DIR:
                    names.append(rel)
        return names

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["home"] = str(self.home)
        return data


TOKENIZER_DIR = "tokenizer_files"


def find_model(wh: Warehouse, *, model_id: str | None = None, task: str | None = None,
               home: str | Path | None = None) -> ModelRecord:
    """The registered model `model_id`, or the champion of `task` when no id is given (the latest
    model of `task` when it has no champion). Paths are taken relative to `home` (default: the
    warehouse's folder, the emopulse home)."""
    home = wh.home if home is None else Path(home)
    if model_id is None:
        if task is None:
            raise ValueError("give a model id or a task")
        row = champion_model(wh, task) or latest_model(wh, task)
        if row is None:
            raise LookupError(f"no model registered for task {task!r}: train and register one first")
        return ModelRecord.from_row(row, home=home)
    row = find_model_row(wh, model_id)
    if row is None:
        raise LookupError(f"no model {model_id!r} in the registry")
    if task is not None and row["task"] != task:
        raise LookupError(f"model {model_id!r} is a {row['task']!r} model, not {task!r}")
    return ModelRecord.from_row(row, home=home)


def model_dir(home: str | Path, *, task: str, model_id: str) -> Path:
    return Path(home) / "models" / task / model_id


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _portable(value: Any) -> Any:
    """Config as JSON, with no absolute folder of this machine left in it (its last part instead)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
    if isinstance(value, Path) or (isinstance(value, str) and value.startswith("/") and len(value) > 1):
        return Path(value).name
    return _json(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)  # numpy scalars; paths, times as text


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_plain))


def _sums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != SUMS_FILE}


def export_and_register(wh: Warehouse, result: TrainResult, *, model_id: str | None = None,
                        atol: float = 1e-4, int8: bool = True, k: int = 5) -> ModelRecord:
    """Export `result` (ONNX fp32 and int8), write its folder under the warehouse's home and
    register it. The id defaults to `<name>-<UTC time>-<first 8 hex of model.onnx's sha256>`."""
    home = wh.home
    task_dir = home / "models" / result.task
    staging = task_dir / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        onnx_path = export_onnx(result.module, result.preprocessor, staging / ONNX_FILE,
                                output_names=result.output_names)
        parity = parity_everywhere(result.module, onnx_path, result.preprocessor, result.head, atol=atol, k=k)
        int8_info = _int8(result, onnx_path, staging / INT8_FILE, k=k) if int8 else {"skipped": "not asked for"}
        result.preprocessor.save(staging)
        result.head.save(staging)
        files = {"onnx": ONNX_FILE, "head": HEAD_FILE, "preprocessor": PREPROCESSOR_FILE}
        if (staging / INT8_FILE).is_file():
            files["onnx_int8"] = INT8_FILE
        for name, src in result.files.items():
            target = staging / Path(src).name
            if target.exists():
                raise FileExistsError(f"training file {name!r} ({src}) would overwrite {target.name} in the model folder")
            shutil.copy2(src, target)
            files[name] = Path(src).name
        sha256 = sha256_file(onnx_path)
        model_id = model_id or f"{result.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{sha256[:8]}"
        export = {"opset": OPSET, "inputs": list(result.preprocessor.input_names),
                  "outputs": list(result.output_names), "dynamic_axes": result.preprocessor.dynamic_axes,
                  "parity": {name: check.to_dict() for name, check in parity.items()}, "int8": int8_info}
        (staging / EXPORT_FILE).write_text(json.dumps(export, ensure_ascii=False, indent=2), encoding="utf-8")
        files["export"] = EXPORT_FILE
        if "eval_summary" in files:
            with open(staging / files["eval_summary"], "a", encoding="utf-8") as f:
                f.write(_export_section(model_id, sha256, export))
        sums = _sums(staging)
        (staging / SUMS_FILE).write_text("".join(f"{h}  {p}\n" for p, h in sums.items()), encoding="utf-8")
        final = model_dir(home, task=result.task, model_id=model_id)
        if final.exists():
            raise FileExistsError(f"model folder already exists: {final}")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    rel = final.relative_to(home).as_posix()
    artifacts = {name: f"{rel}/{filename}" for name, filename in files.items()}
    hashes = {f"{rel}/{p}": h for p, h in sums.items()}
    cpu = parity["cpu"]
    metrics = {**result.metrics, "onnx_max_abs_diff": cpu.max_diff, "parity": {n: c.status for n, c in parity.items()},
               "int8": int8_info}
    params = {"name": result.name, "config": _portable(result.config), "head": result.head.to_dict(),
              "preprocessor": result.preprocessor.kind, "entity_kinds": list(result.entity_kinds),
              "output_names": list(result.output_names), "encoders": _portable(dict(result.encoders))}
    metrics, params = _json(metrics), _json(params)  # as the registry stores them: the record equals a read-back
    version = register_model(wh, model_id=model_id, task=result.task, metrics=metrics, artifacts=artifacts,
                             sha256=sha256, params=params, files=hashes)
    return ModelRecord(model_id=model_id, task=result.task, version=version, sha256=sha256, artifacts=artifacts,
                       metrics=metrics, params=params, files=hashes, home=home)


def _int8(result: TrainResult, fp32: Path, dst: Path, *, k: int) -> dict[str, Any]:
    """Quantise, then measure the change on the held-out records (the parity inputs' texts when
    the result has none); a graph that does not quantise is recorded, not fatal."""
    try:
        how = quantize_int8(fp32, dst)
        quality = quantization_quality(open_session(fp32, device="cpu"), open_session(dst, device="cpu"),
                                       result.preprocessor, result.head, list(result.quality_records), k=k)
    except Exception as exc:  # noqa: BLE001 - scoring falls back to fp32
        dst.unlink(missing_ok=True)
        return {"error": f"{type(exc).__name__}: {exc}"}
    measured = "quality_records" if quality["records"] else "nothing (the result has no quality_records)"
    return {**how, "file": dst.name, "bytes": dst.stat().st_size, "fp32_bytes": fp32.stat().st_size,
            "measured_on": measured, "quality": quality}


def _export_section(model_id: str, sha256: str, export: dict[str, Any]) -> str:
    lines = [f"\n## Export\n\n- model id: {model_id}",
             f"- ONNX opset {export['opset']}; inputs {', '.join(export['inputs'])}; outputs "
             f"{', '.join(export['outputs'])}; dynamic axes {export['dynamic_axes']}"]
    for name, check in export["parity"].items():
        if check["status"] == "ok":
            agree = "" if check["top_k_agreement"] is None else f", top-k agreement {check['top_k_agreement']:.3f}"
            lines.append(f"- parity with torch on {check['provider']} over {len(check['shapes'])} new input shapes: "
                         f"max difference {check['max_diff']:.2e}{agree}")
        else:
            lines.append(f"- parity on {name}: skipped ({check['reason']})")
    int8 = export["int8"]
    if "quality" in int8:
        q = {k: round(v, 4) if isinstance(v, float) else v for k, v in int8["quality"].items()}
        lines.append(f"- int8 variant ({int8['bytes']:,} bytes, fp32 {int8['fp32_bytes']:,}): {q}")
    else:
        lines.append(f"- int8 variant: none ({int8.get('error') or int8.get('skipped')})")
    lines.append(f"- model.onnx sha256: {sha256}\n")
    return "\n".join(lines)
