"""ONNX export with the legacy exporter (opset 17, dynamic batch and sequence) and a parity check.

Inputs are passed by name everywhere: `sample_inputs` maps forward's parameter names to tensors,
and the exported graph's inputs carry the same names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .runtime import open_session

if TYPE_CHECKING:
    import torch

    from emopulse.training.encoders.tokenizers import Tokenizer

__all__ = ["OPSET", "PARITY_TEXTS", "ParityError", "check_parity", "export_onnx", "export_text_model"]

OPSET = 17
# Texts of several lengths (and an empty one) for the parity check: a batch and sequence sizes the
# export was not traced with.
PARITY_TEXTS = ("哈哈哈哈哈哈笑死我了，这也太离谱了吧", "狗头保命", "", "前方高能预警！！！up主太强了，三连支持",
                "呜呜呜好感动")


class ParityError(RuntimeError):
    """ONNX Runtime's outputs differ from torch's by more than the tolerance."""


def export_onnx(model: torch.nn.Module, path: str | Path, *, sample_inputs: Mapping[str, torch.Tensor],
                output_names: Sequence[str] = ("logits",),
                dynamic_axes: Mapping[str, Mapping[int, str]] | None = None) -> Path:
    """Export `model` (in eval mode) to `path`. By default every input has dynamic axes 0 `batch` and
    1 `seq`, every output dynamic axis 0 `batch`. Sample dimensions must be >= 2 (size 1 gets frozen)."""
    import torch

    if any(d < 2 for t in sample_inputs.values() for d in t.shape):
        raise ValueError("sample inputs need every dimension >= 2, or the exporter freezes it")
    if dynamic_axes is None:
        dynamic_axes = {name: {0: "batch", 1: "seq"} for name in sample_inputs}
        dynamic_axes |= {name: {0: "batch"} for name in output_names}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, (), str(path), kwargs=dict(sample_inputs), input_names=list(sample_inputs),
                          output_names=list(output_names), dynamic_axes=dict(dynamic_axes),
                          opset_version=OPSET, dynamo=False)
    return path


def check_parity(model: torch.nn.Module, path: str | Path, *, inputs: Mapping[str, torch.Tensor],
                 atol: float = 1e-4) -> float:
    """Run torch and ONNX Runtime (CPU) on `inputs`; return the largest absolute difference over all
    outputs, or raise `ParityError` when it exceeds `atol`."""
    import torch

    model.eval()
    with torch.no_grad():
        expected = model(**inputs)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    session = open_session(path, device="cpu")
    got = session.session.run(None, {name: t.numpy() for name, t in inputs.items()})
    shapes = {name: tuple(t.shape) for name, t in inputs.items()}
    diff = 0.0
    for want, have in zip(expected, got, strict=True):
        if tuple(want.shape) != have.shape:
            raise ParityError(f"{path}: output shape {have.shape} != torch {tuple(want.shape)} "
                              f"on inputs {shapes}")
        diff = max(diff, float(np.max(np.abs(want.numpy() - have))) if have.size else 0.0)
    if not diff <= atol:
        raise ParityError(f"{path}: ONNX Runtime differs from torch by {diff:.3g} (> {atol:g}) "
                          f"on inputs {shapes}")
    return diff


def export_text_model(model: torch.nn.Module, tokenizer: Tokenizer, path: str | Path, *,
                      atol: float = 1e-3, output_name: str = "logits") -> float:
    """Export a text model (forward(input_ids, attention_mask) -> [B, labels]) with dynamic batch and
    sequence, then check parity with torch on `PARITY_TEXTS`; returns the largest absolute difference."""
    import torch

    ids, mask = tokenizer.encode(["导出样例 sample text", "第二个例子，长一点的句子"])
    export_onnx(model, path, sample_inputs={"input_ids": torch.from_numpy(ids),
                                            "attention_mask": torch.from_numpy(mask)}, output_names=(output_name,))
    ids, mask = tokenizer.encode(list(PARITY_TEXTS))
    return check_parity(model, path, inputs={"input_ids": torch.from_numpy(ids),
                                             "attention_mask": torch.from_numpy(mask)}, atol=atol)
