"""One training loop for every model, read top to bottom (after nanoGPT's `train.py`).

A model brings only what is its own:

* `groups`: its parameters in named groups, each with its learning rate and weight decay;
* `batches(epoch)`: the batches of one epoch (the model draws its own order, seeded by the epoch);
* `step(batch)`: the loss of one batch, a tensor, or `(loss, {name: value})` to log more;
* `validate()`: figures on held-out data, `{name: float}` (optional: without it the loop runs its
  epochs and the last is the best);
* `hooks`: `on_step_end(step)` after every optimiser step (emoji: the τ clamp), `on_epoch_end(epoch)`
  before validation, returning figures to log (emoji: the prototype bank rebuilt, τ).

The loop does the rest, the same way for all: AdamW over the groups, linear warm-up then cosine
decay over `epochs` (every group keeps its own peak lr), gradient clipping, bf16 autocast on CUDA
when asked, a history row per epoch, early stopping on `monitor` (mode max or min, patience), and
two self-describing checkpoints (`training.checkpoint`: model_args, config, state, metrics, epoch):
`ckpt_best.pt` (the best epoch by `monitor`) and `ckpt_last.pt` (with the optimiser and schedule).
`stop_after` runs the first epochs of the same schedule only: a retrain at an epoch chosen by
validation follows the trajectory the validation run followed.

Nothing resumes silently: old checkpoints in `out_dir` are replaced unless `resume=` names one,
and resuming checks the checkpoint was written with the same config.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["FitResult", "Hooks", "LoopConfig", "ParamGroup", "config_dict", "fit", "lr_factor", "pick_device",
           "torch_threads"]

log = logging.getLogger(__name__)
BEST, LAST = "ckpt_best.pt", "ckpt_last.pt"


@dataclass
class LoopConfig:
    epochs: int = 10  # the schedule's length
    stop_after: int | None = None  # run only the first epochs of that schedule
    warmup_frac: float = 0.05  # of all steps
    min_lr_frac: float = 0.0  # cosine decays to this share of each group's lr
    grad_clip: float | None = 1.0
    amp: bool = False  # bf16 autocast, on CUDA only (no loss scaling needed)
    monitor: str = "loss"  # a key of validate()'s figures
    mode: str = "min"  # "min" or "max"
    patience: int | None = None  # epochs without improvement before stopping (None: never early)
    min_delta: float = 0.0  # an improvement must beat the best by more than this
    restore_best: bool = True  # leave the model at its best epoch
    save_optimizer: bool = True  # in ckpt_last.pt, so a run can be resumed

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {self.mode!r}")
        if self.epochs < 1 or (self.stop_after is not None and not 1 <= self.stop_after <= self.epochs):
            raise ValueError(f"need 1 <= stop_after <= epochs, got {self.stop_after} and {self.epochs}")


@dataclass
class ParamGroup:
    name: str
    params: Sequence[nn.Parameter]
    lr: float
    weight_decay: float = 0.0


@dataclass
class Hooks:
    on_step_end: Callable[[int], None] | None = None
    on_epoch_end: Callable[[int], Mapping[str, float] | None] | None = None


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best: dict[str, Any]  # the best epoch's history row
    stopped_early: bool
    files: dict[str, Path] = field(default_factory=dict)  # "best", "last" (when out_dir was given)

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def lr_factor(step: int, *, total: int, warmup: int, min_frac: float = 0.0) -> float:
    """The share of the peak lr at optimiser step `step` (0-based): linear warm-up over `warmup`
    steps, then cosine down to `min_frac` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def fit(model: nn.Module, *, groups: Sequence[ParamGroup], batches: Callable[[int], Iterable[Any]],
        steps_per_epoch: int, step: Callable[[Any], Any], validate: Callable[[], Mapping[str, float]] | None = None,
        config: LoopConfig, out_dir: str | Path | None = None, model_args: Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None, extra: Callable[[], Mapping[str, Any]] | None = None,
        hooks: Hooks | None = None, state_dict: Callable[[], Mapping[str, torch.Tensor]] | None = None,
        device: torch.device | str = "cpu", resume: str | Path | None = None, progress: bool = False,
        label: str = "train") -> FitResult:
    """Train `model` in place (see the module's docstring); returns the history and the best epoch.

    `model_args` and `run_config` go into the checkpoints (`run_config` also guards `resume`),
    `extra()` adds what else the model needs to be rebuilt (labels, a prototype bank, ...),
    `state_dict()` picks the weights to store (default: all of `model.state_dict()`)."""
    hooks = hooks or Hooks()
    device = torch.device(device)
    state_of = state_dict or model.state_dict
    out = Path(out_dir) if out_dir is not None else None
    files = {"best": out / BEST, "last": out / LAST} if out is not None else {}
    run_config = {**_plain(dict(run_config or {})), "loop": config_dict(config)}  # what checkpoints record
    sign = 1.0 if config.mode == "max" else -1.0

    # -- optimiser: one group per part, each with its own lr; warm-up then cosine -------------------
    groups = [g for g in groups if len(g.params)]
    params = [p for g in groups for p in g.params]
    # the fused kernel (one pass over all parameters) where every parameter allows it: on the CPU
    # it is several times faster for large embeddings, with the same update
    fused = all(p.dtype in (torch.float32, torch.float64) and p.device.type in ("cpu", "cuda") for p in params)
    optimizer = torch.optim.AdamW([{"params": list(g.params), "lr": g.lr, "weight_decay": g.weight_decay,
                                    "name": g.name} for g in groups], fused=fused or None)
    total = config.epochs * max(1, steps_per_epoch)
    warmup = max(1, round(config.warmup_frac * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total=total, warmup=warmup, min_frac=config.min_lr_frac))
    use_amp = config.amp and device.type == "cuda"

    # -- state: fresh, unless told to resume -----------------------------------------------------------
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "score": -math.inf, "row": {}, "state": None}
    bad_epochs, first_epoch, global_step = 0, 1, 0
    if resume is not None:
        first_epoch, global_step, bad_epochs = _resume(resume, model, optimizer, scheduler, run_config, history, best)
        best_file = Path(resume).with_name(BEST)
        if best["epoch"] and best_file.is_file():
            best["state"] = load_checkpoint(best_file)["state_dict"]
    elif out is not None and any(p.exists() for p in files.values()):
        log.info("%s: starting afresh; the checkpoints in %s are replaced", label, out)
    last_epoch = config.stop_after or config.epochs
    stopped_early = False

    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(label, total=(last_epoch - first_epoch + 1) * steps_per_epoch)
        for epoch in range(first_epoch, last_epoch + 1):
            started = time.perf_counter()
            # -- one epoch of optimiser steps ------------------------------------------------------
            model.train()
            sums: dict[str, float] = {}
            count = 0
            for batch in batches(epoch):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out_step = step(batch)
                loss, logs = out_step if isinstance(out_step, tuple) else (out_step, {})
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{label}: loss is {loss.item()} at epoch {epoch}, step {global_step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                global_step += 1
                if hooks.on_step_end is not None:
                    hooks.on_step_end(global_step)
                for key, value in {"loss": loss, **logs}.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value)
                count += 1
                bar.advance(task)

            # -- the epoch's row: training means, the hook's figures, validation, learning rates -----
            row: dict[str, Any] = {"epoch": epoch, **{k: v / max(1, count) for k, v in sums.items()}}
            if hooks.on_epoch_end is not None:
                row.update(hooks.on_epoch_end(epoch) or {})
            figures = dict(validate()) if validate is not None else {}
            row.update({f"val_{k}": float(v) for k, v in figures.items()})
            row.update({f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups})
            row["seconds"] = round(time.perf_counter() - started, 3)
            history.append(row)

            # -- best so far? then checkpoints, and early stopping -----------------------------------
            if validate is None:
                score = float(epoch)  # no validation: the last epoch is the best
            elif config.monitor not in figures:
                raise KeyError(f"{label}: validate() gave {sorted(figures)}, not the monitored {config.monitor!r}")
            else:
                score = sign * float(figures[config.monitor])
            improved = math.isfinite(score) and score > best["score"] + config.min_delta
            if improved:
                best.update(epoch=epoch, score=score, row=dict(row))
                bad_epochs = 0
            else:
                bad_epochs += 1
            ckpt = {"model_args": dict(model_args or {}), "config": run_config, "metrics": row, "epoch": epoch,
                    "extra": dict(extra() if extra is not None else {})}
            if improved:
                state = {k: v.detach().cpu().clone() for k, v in state_of().items()}
                best["state"] = state
                if out is not None:
                    save_checkpoint(files["best"], state_dict=state, **ckpt)
            if out is not None:
                training_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                  "history": copy.deepcopy(history), "global_step": global_step,
                                  "bad_epochs": bad_epochs, "best_epoch": best["epoch"],
                                  "best_score": best["score"]} if config.save_optimizer else None
                save_checkpoint(files["last"], state_dict=state_of(), training_state=training_state, **ckpt)
            desc = " ".join(f"{k} {v:.4g}" for k, v in row.items()
                            if k in ("loss",) or (k.startswith("val_") and isinstance(v, float)))
            bar.update(task, description=f"{label} epoch {epoch}/{last_epoch} {desc}")
            log.info("%s epoch %d/%d: %s", label, epoch, last_epoch,
                     {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
            if validate is not None and config.patience is not None and bad_epochs >= config.patience:
                stopped_early = epoch < last_epoch
                break

    if config.restore_best and best["state"] is not None and best["epoch"] != history[-1]["epoch"]:
        missing, unexpected = model.load_state_dict(best["state"], strict=False)
        if unexpected:
            raise ValueError(f"{label}: the best state does not fit the model: {unexpected[:5]}")
    model.eval()
    return FitResult(history=history, best_epoch=best["epoch"], best=best["row"], stopped_early=stopped_early,
                     files=files)


def _resume(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            run_config: Mapping[str, Any], history: list[dict[str, Any]], best: dict[str, Any]) -> tuple[int, int, int]:
    """Load a last checkpoint written by `fit` with the same config; the next epoch, step, bad epochs."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("training_state")
    if not state:
        raise ValueError(f"cannot resume from {path}: it holds no optimiser state (a best checkpoint, or "
                         "written with save_optimizer=False)")

    def comparable(config: Mapping[str, Any]) -> dict[str, Any]:  # stop_after may grow on resume
        return {**config, "loop": {k: v for k, v in dict(config.get("loop", {})).items() if k != "stop_after"}}

    theirs, ours = comparable(ckpt["config"]), comparable(run_config)
    if theirs != ours:
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(f"cannot resume from {path}: it was trained with another config (differs in {changed})")
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if unexpected:
        raise ValueError(f"cannot resume from {path}: its weights do not fit the model ({unexpected[:5]})")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    history.extend(state["history"])
    best.update(epoch=int(state["best_epoch"]), score=float(state["best_score"]),
                row=next((r for r in history if r["epoch"] == state["best_epoch"]), {}))
    best["state"] = None
    log.info("resuming from %s after epoch %d", path, ckpt["epoch"])
    return int(ckpt["epoch"]) + 1, int(state["global_step"]), int(state["bad_epochs"])


def _plain(value: Any) -> Any:
    """Tuples to lists (as checkpoints store them), so configs compare alike."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain values (tuples as lists), for checkpoints and JSON."""
    return _plain(asdict(config))


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to `threads` (None: left alone) for the block, then put back."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pick_device(name: str) -> torch.device:
    """`auto`: CUDA when torch sees one, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
