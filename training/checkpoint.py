"""One checkpoint convention for every model (as nanoGPT): model_args + config + state_dict + metrics.

`model_args` rebuilds the module (`Model(ModelConfig(**ckpt["model_args"]))`), `config` records how it
was trained, `metrics` what it scored, `epoch` when; `extra` holds anything else plain (labels,
tokenizer, ...); `training_state` (optional: optimiser, schedule, history) lets `training.loop`
resume a run when asked to.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(path: str | Path, *, model_args: Mapping[str, Any], config: Mapping[str, Any],
                    state_dict: Mapping[str, Any], metrics: Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None, epoch: int | None = None,
                    training_state: Mapping[str, Any] | None = None) -> Path:
    """Write a self-describing checkpoint with `torch.save` (plain Python values and tensors only),
    to a temporary name first, so a kill never leaves half a checkpoint under the real name."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model_args": dict(model_args), "config": dict(config),
               "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
               "metrics": dict(metrics), "extra": dict(extra or {}), "epoch": epoch}
    if training_state is not None:
        payload["training_state"] = dict(training_state)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (weights-only unpickling, on the CPU)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged file
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    missing = {"model_args", "config", "state_dict", "metrics"} - set(ckpt)
    if missing:
        raise ValueError(f"checkpoint {path} lacks {sorted(missing)}")
    return ckpt
