from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from emopulse.serving import runtime
from emopulse.serving.export import export_onnx
from emopulse.serving.runtime import CPU, CUDA, ModelFileError, ProviderUnavailable, open_session
from emopulse.training.result import TrainResult


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, ranker: TrainResult) -> Path:
    return export_onnx(ranker.module, ranker.preprocessor, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_a_corrupt_model_file_raises_an_error_naming_the_file(tmp_path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelFileError, match="broken.onnx") as err:
        open_session(bad)
    assert err.value.path == bad


def test_a_missing_model_file_raises_an_error_naming_the_file(tmp_path) -> None:
    with pytest.raises(ModelFileError, match=r"nowhere\.onnx: no such file"):
        open_session(tmp_path / "nowhere.onnx")


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is present")
def test_auto_falls_back_to_cpu_without_a_gpu_and_reports_it(onnx_path: Path) -> None:
    session = open_session(onnx_path, device="auto")
    assert session.provider == CPU == session.session.get_providers()[0]
    with pytest.raises(ProviderUnavailable, match="CUDA was requested"):
        open_session(onnx_path, device="cuda")


def test_the_provider_is_read_from_the_session_not_from_what_is_available(onnx_path: Path, monkeypatch) -> None:
    """Simulate onnxruntime-gpu on a machine without CUDA: CUDA listed as available, CPU running."""
    asked: list[list[str]] = []
    real = ort.InferenceSession

    def session(path: str, providers: list[str]) -> ort.InferenceSession:
        asked.append(providers)
        return real(path, providers=[CPU])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", session)
    assert open_session(onnx_path).provider == CPU
    assert asked == [[CUDA, CPU]]
    assert open_session(onnx_path, device="cpu").provider == CPU
    assert asked[-1] == [CPU]
    with pytest.raises(ProviderUnavailable):
        open_session(onnx_path, device="cuda")


def test_an_unknown_device_is_refused(onnx_path: Path) -> None:
    with pytest.raises(ValueError, match="device"):
        runtime.open_session(onnx_path, device="tpu")  # type: ignore[arg-type]
