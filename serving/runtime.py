"""ONNX Runtime sessions: CUDA when it really loads, else CPU, and a clear error for a bad model file.

`get_available_providers()` lists CUDA on any onnxruntime-gpu install, GPU or not, so the provider
actually running is read back from `session.get_providers()` after the session is built.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["Device", "ModelFileError", "ModelSession", "ProviderUnavailable", "open_session"]

Device = Literal["auto", "cuda", "cpu"]
log = logging.getLogger(__name__)
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ModelFileError(RuntimeError):
    """The model file is missing or ONNX Runtime cannot load it; `path` names the file."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"cannot load ONNX model {path}: {reason}")


class ProviderUnavailable(RuntimeError):
    """`device="cuda"` was asked for, but the CUDA provider did not load."""


@dataclass(frozen=True)
class ModelSession:
    """An ONNX Runtime session and the provider that really runs it."""

    session: Any
    path: Path
    provider: str

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run with inputs given by name; returns outputs by name."""
        names = list(outputs or self.output_names)
        return dict(zip(names, self.session.run(names, dict(feeds)), strict=True))


def open_session(path: str | Path, *, device: Device = "auto") -> ModelSession:
    """Load `path` on CUDA (`"cuda"`: or raise; `"auto"`: if it loads) or on the CPU."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', not {device!r}")
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "no such file")
    want_cuda = device != "cpu" and CUDA in ort.get_available_providers()
    providers = [CUDA, CPU] if want_cuda else [CPU]
    if device == "auto":  # a failed CUDA load is expected without a GPU: keep it off stderr
        ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise ModelFileError(path, f"{type(exc).__name__}: {exc}") from exc
    finally:
        ort.set_default_logger_severity(3)
    provider = session.get_providers()[0]
    if device == "cuda" and provider != CUDA:
        raise ProviderUnavailable(f"CUDA was requested for {path} but ONNX Runtime runs it on {provider}")
    if want_cuda and provider != CUDA:
        log.info("CUDA provider did not load for %s; running on %s", path, provider)
    return ModelSession(session=session, path=path, provider=provider)
