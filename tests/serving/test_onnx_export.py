"""Export of any TrainResult through its preprocessor, and parity with torch that can fail."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from emopulse.serving.export import ParityError, check_parity, export_onnx, parity_everywhere
from emopulse.serving.runtime import CPU, CUDA
from emopulse.training.encoders.tokenizers import HashedNgramTokenizer
from emopulse.training.preprocess import SequencePreprocessor, TextPreprocessor
from emopulse.training.result import Head, TrainResult

# what each graph input's axes must be: names for the dynamic ones, sizes for the fixed ones
AXES = {"input_ids": ["batch", "tokens"], "attention_mask": ["batch", "tokens"], "pixels": ["batch", 3, 32, 32],
        "has_image": ["batch"], "values": ["batch", "days", 3], "mask": ["batch", "days", 3]}


@pytest.mark.parametrize("which", ["ranker", "multilabel", "regressor", "poster", "bert_ranker"])
def test_export_through_the_preprocessor_matches_torch_on_new_shapes(tmp_path, request, which: str) -> None:
    result: TrainResult = request.getfixturevalue(which)
    pre = result.preprocessor
    path = export_onnx(result.module, pre, tmp_path / "model.onnx", output_names=result.output_names)
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == list(pre.input_names)
    for graph_input in graph.graph.input:  # no `seq` axis where there is none: only text has tokens
        dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        assert dims == AXES[graph_input.name]
    out = [d.dim_param or d.dim_value for d in graph.graph.output[0].type.tensor_type.shape.dim]
    assert out == ["batch", len(result.head.labels)]

    check = check_parity(result.module, path, pre, result.head)
    sample = {name: list(a.shape) for name, a in pre.sample_inputs().items()}
    assert check.status == "ok" and check.provider == CPU
    assert len(check.shapes) >= 3 and all(shapes != sample for shapes in check.shapes)  # shapes the trace never saw
    assert len({tuple(map(tuple, s.values())) for s in check.shapes}) == len(check.shapes)
    assert 0 <= check.max_diff < 1e-4
    assert check.top_k_agreement == (None if result.head.kind == "regression" else 1.0)


def test_parity_fails_naming_the_shapes_and_the_difference(tmp_path, ranker: TrainResult) -> None:
    path = export_onnx(ranker.module, ranker.preprocessor, tmp_path / "model.onnx")
    other = type(ranker.module)(ranker.preprocessor.tokenizer.vocab_size, len(ranker.head.labels)).eval()  # other weights
    with pytest.raises(ParityError, match=r"model\.onnx on CPUExecutionProvider: softmax probabilities differ from "
                                          r"torch by [0-9.e-]+ \(> atol 0.0001\) for inputs \{'input_ids': \[5, \d+\]"):
        check_parity(other, path, ranker.preprocessor, ranker.head)


class Fixed(nn.Module):
    """Constant logits (whatever the text): two labels nearly tied, a third far below."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        zero = (input_ids * attention_mask).sum(dim=1, keepdim=True).float() * 0.0
        return zero + self.logits


def test_parity_fails_when_the_ranking_changes_within_the_probability_tolerance(tmp_path) -> None:
    pre = TextPreprocessor(HashedNgramTokenizer(buckets=64))
    head = Head("ranking", ("a", "b", "c"))
    path = export_onnx(Fixed([0.0, 1e-4, -5.0]), pre, tmp_path / "model.onnx")
    swapped = Fixed([1e-4, 0.0, -5.0])  # probabilities move by ~5e-5: within atol, but top-1 changes
    with pytest.raises(ParityError, match=r"top-3 labels differ from torch in 5 of 5 rows .*torch \[0, 1, 2\], "
                                          r"ONNX \[1, 0, 2\]"):
        check_parity(swapped, path, pre, head, atol=1e-4)
    assert check_parity(Fixed([0.0, 1e-4, -5.0]), path, pre, head).top_k_agreement == 1.0


def test_regression_parity_compares_the_raw_values(tmp_path, regressor: TrainResult) -> None:
    path = export_onnx(regressor.module, regressor.preprocessor, tmp_path / "m.onnx", output_names=("share",))
    shifted = type(regressor.module)(3).eval()
    shifted.load_state_dict(regressor.module.state_dict())
    with torch.no_grad():
        shifted.out.bias += 1e-3  # softmax would hide a constant shift; raw values do not
    with pytest.raises(ParityError, match="values differ from torch by 0.001"):
        check_parity(shifted, path, regressor.preprocessor, regressor.head)


@dataclass(frozen=True)
class OneRowSequences(SequencePreprocessor):
    def sample_inputs(self) -> dict[str, np.ndarray]:
        return self._random(1, self.days, seed=0)


def test_export_refuses_a_size_one_dynamic_axis_in_the_sample(tmp_path, regressor: TrainResult) -> None:
    pre = OneRowSequences(features=("likes", "comments", "share"), days=8)
    with pytest.raises(ValueError, match=r"'values' \(1, 8, 3\): every dynamic axis needs a size >= 2"):
        export_onnx(regressor.module, pre, tmp_path / "m.onnx", output_names=("share",))


def test_cuda_parity_is_skipped_and_said_so_when_no_session_runs_on_cuda(tmp_path, ranker, monkeypatch) -> None:
    """onnxruntime-gpu without a usable GPU: CUDA listed as available, the session runs on the CPU."""
    path = export_onnx(ranker.module, ranker.preprocessor, tmp_path / "model.onnx")
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", lambda p, providers: real(p, providers=[CPU]))
    checks = parity_everywhere(ranker.module, path, ranker.preprocessor, ranker.head)
    assert checks["cpu"].status == "ok" and checks["cpu"].provider == CPU
    assert checks["cuda"].status == "skipped" and checks["cuda"].max_diff is None
    assert "session runs on CPUExecutionProvider" in checks["cuda"].reason


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA provider")
def test_cuda_parity_runs_where_a_session_really_runs_on_cuda(tmp_path, ranker) -> None:
    from emopulse.serving.runtime import open_session

    path = export_onnx(ranker.module, ranker.preprocessor, tmp_path / "model.onnx")
    checks = parity_everywhere(ranker.module, path, ranker.preprocessor, ranker.head)
    if open_session(path, device="auto").provider != CUDA:
        assert checks["cuda"].status == "skipped"
    else:
        assert checks["cuda"].status == "ok" and checks["cuda"].provider == CUDA and len(checks["cuda"].shapes) >= 3
