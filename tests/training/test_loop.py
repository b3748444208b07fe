"""The shared training loop on a tiny regression problem: it learns, stops early, keeps the best
epoch, calls its hooks as often as it should, follows its schedule and resumes nothing silently."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from emopulse.training.checkpoint import load_checkpoint
from emopulse.training.loop import Hooks, LoopConfig, ParamGroup, fit, lr_factor


@dataclass
class Problem:
    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def problem(seed: int = 0) -> Problem:
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[2.0], [-3.0], [0.5]])
    x = torch.randn(96, 3, generator=g)
    x_val = torch.randn(32, 3, generator=g)
    noise = 0.05 * torch.randn(96, 1, generator=g)
    return Problem(x, x @ w + 1.0 + noise, x_val, x_val @ w + 1.0)


def build(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(3, 1)


def run(model: nn.Module, data: Problem, config: LoopConfig, *, validate=None, hooks=None, out_dir=None,
        resume=None, run_config=None, batch: int = 16):
    def batches(epoch: int):
        order = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(order), batch):
            yield order[start:start + batch]

    def step(rows):
        loss = nn.functional.mse_loss(model(data.x[rows]), data.y[rows])
        return loss, {"half": loss.detach() / 2}

    def mse() -> dict[str, float]:
        with torch.no_grad():
            return {"mse": nn.functional.mse_loss(model(data.x_val), data.y_val).item()}

    groups = [ParamGroup("weight", [model.weight], 0.1), ParamGroup("bias", [model.bias], 0.05)]
    return fit(model, groups=groups, batches=batches, steps_per_epoch=math.ceil(len(data.x) / batch), step=step,
               validate=mse if validate is None else validate, config=config, out_dir=out_dir,
               model_args={"in_features": 3, "out_features": 1}, run_config=run_config or {"lr": 0.1}, hooks=hooks,
               resume=resume)


def test_it_learns_and_logs_a_row_per_epoch() -> None:
    data, model = problem(), build()
    before = nn.functional.mse_loss(model(data.x_val), data.y_val).item()
    result = run(model, data, LoopConfig(epochs=30, monitor="mse", warmup_frac=0.0))
    assert result.history[-1]["val_mse"] < 0.01 < before
    assert [r["epoch"] for r in result.history] == list(range(1, 31))
    assert {"loss", "half", "val_mse", "lr_weight", "lr_bias", "seconds"} <= set(result.history[0])
    assert result.history[0]["half"] == pytest.approx(result.history[0]["loss"] / 2)
    assert not model.training


def test_each_group_follows_warmup_then_cosine_with_its_own_lr() -> None:
    result = run(build(), problem(), LoopConfig(epochs=6, monitor="mse", warmup_frac=0.25))
    steps = 6  # per epoch
    total, warmup = 36, 9
    for row in result.history:
        factor = lr_factor(row["epoch"] * steps, total=total, warmup=warmup)
        assert row["lr_weight"] == pytest.approx(0.1 * factor) and row["lr_bias"] == pytest.approx(0.05 * factor)
    assert result.history[0]["lr_weight"] < result.history[1]["lr_weight"]  # still warming up
    assert result.history[-1]["lr_weight"] == pytest.approx(0.0, abs=1e-12)  # decayed to zero
    assert lr_factor(0, total=10, warmup=2) == 0.5 and lr_factor(2, total=10, warmup=2) == 1.0


def test_early_stopping_keeps_the_best_epoch_in_the_model_and_the_best_checkpoint(tmp_path) -> None:
    data, model = problem(), build()
    scores = iter([0.5, 0.4, 0.7, 0.6, 0.3, 0.1, 0.0, 0.0])  # mode max: epoch 3 is best, then 2 worse
    weights = {}

    def on_epoch_end(epoch: int):
        weights[epoch] = model.weight.detach().clone()
        return {"marker": float(epoch)}

    result = run(model, data, LoopConfig(epochs=8, monitor="acc", mode="max", patience=2),
                 validate=lambda: {"acc": next(scores)}, hooks=Hooks(on_epoch_end=on_epoch_end), out_dir=tmp_path)
    assert result.stopped_early and result.epochs_run == 5 and result.best_epoch == 3
    assert result.best["val_acc"] == 0.7 and result.best["marker"] == 3.0
    torch.testing.assert_close(model.weight, weights[3])  # restored to the best epoch
    best, last = load_checkpoint(tmp_path / "ckpt_best.pt"), load_checkpoint(tmp_path / "ckpt_last.pt")
    assert best["epoch"] == 3 and best["metrics"]["val_acc"] == 0.7 and last["epoch"] == 5
    torch.testing.assert_close(best["state_dict"]["weight"], weights[3])
    torch.testing.assert_close(last["state_dict"]["weight"], weights[5])
    assert best["model_args"] == {"in_features": 3, "out_features": 1}
    assert best["config"]["lr"] == 0.1 and best["config"]["loop"]["patience"] == 2
    rebuilt = nn.Linear(**best["model_args"])  # self-describing: the model comes back from the file
    rebuilt.load_state_dict(best["state_dict"])
    torch.testing.assert_close(rebuilt(data.x_val), model(data.x_val))
    assert "training_state" in last and "training_state" not in best


def test_hooks_run_once_per_step_and_once_per_epoch_before_validation() -> None:
    calls: list[str] = []
    hooks = Hooks(on_step_end=lambda step: calls.append(f"step{step}"),
                  on_epoch_end=lambda epoch: calls.append(f"epoch{epoch}") or None)
    result = run(build(), problem(), LoopConfig(epochs=3, monitor="v", mode="max"), hooks=hooks,
                 validate=lambda: calls.append("validate") or {"v": 1.0}, batch=32)
    assert result.epochs_run == 3
    expected = []
    for epoch in range(3):
        expected += [f"step{epoch * 3 + i}" for i in (1, 2, 3)] + [f"epoch{epoch + 1}", "validate"]
    assert calls == expected


def test_stop_after_runs_the_first_epochs_of_the_same_schedule() -> None:
    full = run(build(), problem(), LoopConfig(epochs=8, monitor="mse"))
    short = run(build(), problem(), LoopConfig(epochs=8, stop_after=3, monitor="mse"), validate=None)
    assert [r["lr_weight"] for r in short.history] == [r["lr_weight"] for r in full.history[:3]]
    assert short.best_epoch == 3  # without validation the last epoch is the best


def test_old_checkpoints_are_never_resumed_silently(tmp_path) -> None:
    data = problem()
    old = build(seed=1)
    run(old, data, LoopConfig(epochs=4, monitor="mse"), out_dir=tmp_path)
    fresh_start = build(seed=2)
    first_weights = fresh_start.weight.detach().clone()
    calls = []
    result = run(fresh_start, data, LoopConfig(epochs=1, monitor="mse", warmup_frac=1.0), out_dir=tmp_path,
                 hooks=Hooks(on_step_end=lambda s: calls.append(s)))
    assert [r["epoch"] for r in result.history] == [1] and calls[0] == 1  # from the first step, not the file's
    assert load_checkpoint(tmp_path / "ckpt_last.pt")["epoch"] == 1
    assert not torch.allclose(fresh_start.weight, old.weight)
    assert (fresh_start.weight - first_weights).abs().max() < 0.5  # six small warm-up steps from its own start


def test_resuming_is_explicit_continues_the_schedule_and_checks_the_config(tmp_path) -> None:
    data = problem()
    straight = run(build(), data, LoopConfig(epochs=6, monitor="mse"))
    run(build(), data, LoopConfig(epochs=6, stop_after=3, monitor="mse"), out_dir=tmp_path)
    resumed = run(build(), data, LoopConfig(epochs=6, monitor="mse"), out_dir=tmp_path,
                  resume=tmp_path / "ckpt_last.pt")
    assert [r["epoch"] for r in resumed.history] == list(range(1, 7))
    for a, b in zip(resumed.history, straight.history, strict=True):
        assert a["lr_weight"] == pytest.approx(b["lr_weight"]) and a["val_mse"] == pytest.approx(b["val_mse"], rel=1e-4)
    with pytest.raises(ValueError, match="another config"):
        run(build(), data, LoopConfig(epochs=6, monitor="mse"), out_dir=tmp_path / "x",
            resume=tmp_path / "ckpt_last.pt", run_config={"lr": 0.2})
    with pytest.raises(ValueError, match="no optimiser state"):
        run(build(), data, LoopConfig(epochs=6, monitor="mse"), resume=tmp_path / "ckpt_best.pt")


def test_a_non_finite_loss_stops_the_run_loudly() -> None:
    data = problem()
    data.y[0] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan"):
        run(build(), data, LoopConfig(epochs=1, monitor="mse"))
