"""ONNX export of any model through its preprocessor, and parity with torch.

`export_onnx(module, preprocessor, path)` traces `module` on `preprocessor.sample_inputs()` with the
preprocessor's input names and dynamic axes (a `tokens` axis only for text, `days` for sequences,
`batch` everywhere), legacy exporter, opset 17. `check_parity` runs torch and ONNX Runtime on every
`preprocessor.parity_inputs()` (shapes the trace never saw) and compares what the head makes of
the outputs: probabilities (ranking: softmax, multilabel: sigmoid) or values (regression) within
`atol`, and the top-k labels in order (ties forgiven). A head with the EQN quantisation
(`head.quantize`) is compared before it: rounding to 0.01 turns a difference of 1e-7 at a
rounding boundary (0.455 vs 0.4549999) into 0.01, a hundred times `atol`, and it would hide any
difference smaller than half a step, so parity checks the graph's sigmoid, where `atol` means
what it says; what quantisation changes in served values is int8's business (`quantize.py`) and
is the same function on both sides. `parity_everywhere` does that on the CPU and
again on CUDA when an ONNX Runtime session really runs there, and says when it skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import heads
from .runtime import CUDA, ModelSession, open_session

if TYPE_CHECKING:
    import torch

    from emopulse.training.preprocess import Preprocessor
    from emopulse.training.result import Head

__all__ = ["OPSET", "ParityCheck", "ParityError", "check_parity", "export_onnx", "parity_everywhere"]

OPSET = 17


class ParityError(RuntimeError):
    """ONNX Runtime and torch disagree: the message names the file, the provider, the input shapes
    and the difference."""


@dataclass(frozen=True)
class ParityCheck:
    """One provider's parity: `status` `ok` or `skipped` (with `reason`); the largest difference
    of probabilities/values, and the share of rows whose top-k labels agree, over `shapes`."""

    provider: str
    status: str
    shapes: list[dict[str, list[int]]] = field(default_factory=list)
    max_diff: float | None = None
    top_k_agreement: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    import torch

    return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}


def export_onnx(module: torch.nn.Module, preprocessor: Preprocessor, path: str | Path, *,
                output_names: Sequence[str] = ("logits",)) -> Path:
    """Trace `module` (put in eval mode) on the preprocessor's sample inputs into `path`."""
    import torch

    sample = preprocessor.sample_inputs()
    axes = preprocessor.dynamic_axes
    for name, array in sample.items():
        frozen = [i for i, size in enumerate(array.shape) if i in axes.get(name, {}) and size < 2]
        if frozen:
            raise ValueError(f"sample input {name!r} {array.shape}: every dynamic axis needs a size >= 2, "
                             "or the exporter freezes it")
    dynamic_axes = {name: dict(axes[name]) for name in preprocessor.input_names if name in axes}
    dynamic_axes |= {name: {0: "batch"} for name in output_names}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, (), str(path), kwargs=_tensors(sample), input_names=list(preprocessor.input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, opset_version=OPSET,
                          dynamo=False)
    return path


def _shapes(inputs: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    return {name: list(a.shape) for name, a in inputs.items()}


def check_parity(module: torch.nn.Module, path: str | Path | ModelSession, preprocessor: Preprocessor, head: Head,
                 *, device: str = "cpu", atol: float = 1e-4, k: int = 5,
                 inputs: Sequence[Mapping[str, np.ndarray]] | None = None) -> ParityCheck:
    """Torch vs ONNX Runtime on `inputs` (default: the preprocessor's parity inputs) for `head.output`
    (and every other output of the graph, compared as it is).

    Fails with `ParityError` when a probability/value differs by more than `atol`, or when a row's
    top-k labels (ranking, multilabel) differ where torch separates them by more than `atol / 10`."""
    import torch

    session = path if isinstance(path, ModelSession) else open_session(path, device=device)  # type: ignore[arg-type]
    inputs = list(preprocessor.parity_inputs() if inputs is None else inputs)
    names = [o.name for o in session.session.get_outputs()]
    if head.output not in names:
        raise ParityError(f"{session.path}: no output {head.output!r} (outputs {names})")
    module.eval()
    worst, agree, rows = 0.0, 0, 0
    for feeds in inputs:
        with torch.no_grad():
            out = module(**_tensors(feeds))
        out = out if isinstance(out, (tuple, list)) else (out,)
        want_raw = out[names.index(head.output)].float().numpy()
        got_raw = session.run(feeds, [head.output])[head.output]
        shapes = _shapes(feeds)
        if want_raw.shape != got_raw.shape:
            raise ParityError(f"{session.path} on {session.provider}: output {head.output!r} has shape "
                              f"{list(got_raw.shape)}, torch {list(want_raw.shape)}, for inputs {shapes}")
        # before the EQN quantisation (module docstring): the graphs' own numbers
        want, got = heads.values(head, want_raw, quantized=False), heads.values(head, got_raw, quantized=False)
        diff = float(np.max(np.abs(want - got))) if want.size else 0.0
        if not diff <= atol:  # NaN fails too
            raise ParityError(f"{session.path} on {session.provider}: {_what(head)} differ from torch by "
                              f"{diff:.3g} (> atol {atol:g}) for inputs {shapes}")
        worst = max(worst, diff)
        for name in names:  # the graph's other outputs (a forecaster's share beside its trend), as they are
            if name == head.output or names.index(name) >= len(out):
                continue
            other_want = out[names.index(name)].float().numpy()
            other_got = session.run(feeds, [name])[name]
            other = float(np.max(np.abs(other_want - other_got))) if other_want.size else 0.0
            if other_want.shape != other_got.shape or not other <= atol:
                raise ParityError(f"{session.path} on {session.provider}: output {name!r} differs from torch by "
                                  f"{other:.3g} (> atol {atol:g}) or in shape ({list(other_got.shape)} vs "
                                  f"{list(other_want.shape)}) for inputs {shapes}")
            worst = max(worst, other)
        if head.kind != "regression" and len(want):
            same = heads.top_k_agreement(want, got, k, tie_tol=atol / 10)
            if not same.all():
                bad = int(np.flatnonzero(~same)[0])
                raise ParityError(
                    f"{session.path} on {session.provider}: top-{min(k, want.shape[1])} labels differ from torch "
                    f"in {int((~same).sum())} of {len(same)} rows for inputs {shapes} (row {bad}: torch "
                    f"{heads.top_k(want[bad:bad + 1], k)[0].tolist()}, ONNX {heads.top_k(got[bad:bad + 1], k)[0].tolist()})")
            agree += int(same.sum())
        rows += len(want)
    agreement = None if head.kind == "regression" else (agree / rows if rows else 1.0)
    return ParityCheck(provider=session.provider, status="ok", shapes=[_shapes(f) for f in inputs],
                       max_diff=worst, top_k_agreement=agreement)


def _what(head: Head) -> str:
    return {"ranking": "softmax probabilities", "multilabel": "sigmoid intensities"}.get(head.kind, "values")


def parity_everywhere(module: torch.nn.Module, path: str | Path, preprocessor: Preprocessor, head: Head, *,
                      atol: float = 1e-4, atol_cuda: float = 1e-3, k: int = 5) -> dict[str, ParityCheck]:
    """Parity on the CPU, then on CUDA when a session really runs there (else recorded as skipped)."""
    import onnxruntime as ort

    checks = {"cpu": check_parity(module, path, preprocessor, head, device="cpu", atol=atol, k=k)}
    if CUDA not in ort.get_available_providers():
        checks["cuda"] = ParityCheck(provider=CUDA, status="skipped", reason="onnxruntime has no CUDA provider")
        return checks
    session = open_session(path, device="auto")
    if session.provider != CUDA:
        checks["cuda"] = ParityCheck(provider=session.provider, status="skipped",
                                     reason=f"the CUDA provider did not load: the session runs on {session.provider}")
        return checks
    checks["cuda"] = check_parity(module, session, preprocessor, head, atol=atol_cuda, k=k)
    return checks
