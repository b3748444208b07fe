"""The EQN quantisation of multi-label intensities, on hand-computed cases, and where it applies:
scoring and thresholds yes, parity no (the graphs' sigmoid), int8 quality on what is served."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from emopulse.serving.export import check_parity
from emopulse.serving.heads import energy_level, quantize_intensity, quantizes, values
from emopulse.serving.quantize import quantization_quality
from emopulse.serving.runtime import ModelSession
from emopulse.serving.scorer import Scores
from emopulse.training.result import Head, load_head


def logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.mark.parametrize(("value", "want"), [
    (1.2, 1.0), (1.0, 1.0), (1.0000001, 1.0), (0.996, 1.0),
    (0.005, 0.0), (0.004999, 0.0), (0.0099999, 0.0), (0.0, 0.0), (-0.3, 0.0), (-1e-12, 0.0),
    (0.01, 0.01), (0.456, 0.46), (0.454, 0.45), (0.5, 0.5), (0.125, 0.12),  # an exact binary tie: to even
    (math.inf, 1.0), (-math.inf, 0.0),
])
def test_quantize_intensity_on_hand_computed_cases(value: float, want: float) -> None:
    got = quantize_intensity(value)
    assert got.dtype == np.float64 and got == want  # exactly the float of the two-decimal number
    assert not np.signbit(quantize_intensity(-0.3))  # 0, not -0


def test_quantize_intensity_keeps_nan_keeps_shape_and_is_idempotent() -> None:
    raw = np.array([[0.456, np.nan, 1.2], [0.004999, 0.01, -2.0]], dtype=np.float32)
    got = quantize_intensity(raw)
    assert got.shape == (2, 3) and got.dtype == np.float64
    assert np.isnan(got[0, 1]) and np.isnan(got).sum() == 1
    # float32's 0.01 is 0.0099999998: still 0.01, not below it
    np.testing.assert_array_equal(np.delete(got.reshape(-1), 1), [0.46, 1.0, 0.0, 0.01, 0.0])
    assert quantize_intensity(np.float32(0.0099)) == 0.0 and quantize_intensity([1, 0, 2]).tolist() == [1.0, 0.0, 1.0]
    many = np.random.default_rng(0).uniform(-0.1, 1.1, size=100_000)
    once = quantize_intensity(many)
    np.testing.assert_array_equal(quantize_intensity(once), once)
    assert set(np.unique(once)) <= {round(i / 100, 2) for i in range(101)} and 0.0 in once and 1.0 in once


def test_energy_level_is_ten_times_the_quantised_intensity_with_one_decimal() -> None:
    got = energy_level([0.456, 1.2, 0.004999, 0.07, 0.01, 0.33])
    assert got.tolist() == [4.6, 10.0, 0.0, 0.7, 0.1, 3.3]  # 4.6, not 4.6000000000000005
    assert np.isnan(energy_level(float("nan")))


def test_a_head_carries_quantize_through_head_json_and_old_heads_load_without_it(tmp_path: Path) -> None:
    head = Head("multilabel", ("joy", "anger"), thresholds=(0.3, 0.5), quantize=True)
    assert head.to_dict()["quantize"] is True
    head.save(tmp_path)
    assert load_head(tmp_path) == head
    old = {"kind": "multilabel", "labels": ["joy", "anger"], "output": "logits", "thresholds": [0.3, 0.5]}
    (tmp_path / "head.json").write_text(json.dumps(old), encoding="utf-8")
    assert load_head(tmp_path).quantize is False and Head("multilabel", ("a",)).quantize is False
    (tmp_path / "head.json").write_text(json.dumps({**old, "quantize": "yes"}), encoding="utf-8")
    with pytest.raises(ValueError, match="quantize must be true or false"):
        load_head(tmp_path)
    with pytest.raises(ValueError, match="quantize applies to multilabel heads, not 'ranking'"):
        Head("ranking", ("a", "b"), quantize=True)


def test_values_quantise_a_multilabel_head_that_asks_and_thresholds_read_the_quantised_intensity() -> None:
    raw = np.array([[logit(0.2951), logit(0.456), logit(0.004), 20.0]])
    plain = Head("multilabel", ("a", "b", "c", "d"), thresholds=(0.3, 0.46, 0.01, 1.0))
    eqn = Head("multilabel", plain.labels, thresholds=plain.thresholds, quantize=True)
    sigmoid = values(plain, raw)
    np.testing.assert_allclose(sigmoid, [[0.2951, 0.456, 0.004, 1 / (1 + math.exp(-20))]], rtol=1e-12)
    assert values(eqn, raw).tolist() == [[0.3, 0.46, 0.0, 1.0]]
    np.testing.assert_array_equal(values(eqn, raw, quantized=False), sigmoid)
    assert quantizes(eqn) and not quantizes(plain) and not quantizes(Head("ranking", ("a", "b")))
    # 0.2951 is off at 0.3, its quantised 0.30 is on; 0.456 → 0.46 reaches 0.46; 1 - 2e-9 → 1 reaches 1
    assert Scores(plain, sigmoid).on().tolist() == [[False, False, False, False]]
    assert Scores(eqn, values(eqn, raw)).on().tolist() == [[True, True, False, True]]
    assert Scores(eqn, quantize_intensity([[np.nan, 0.5, 0.5, 0.5]])).on().tolist() == [[False, True, True, False]]


class _Fixed(nn.Module):
    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("logits", torch.from_numpy(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]]


class _FakeOrt:
    """Stands for an onnxruntime.InferenceSession that returns given logits."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def get_outputs(self) -> list:
        return [type("Output", (), {"name": "logits", "shape": ["batch", self.logits.shape[1]]})()]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows = feeds["x"][:, 0].astype(int)
        return [self.logits[rows]]


def _session(logits: np.ndarray) -> ModelSession:
    return ModelSession(session=_FakeOrt(logits), path=Path("fake.onnx"), provider="FakeExecutionProvider")


def test_parity_compares_the_sigmoid_before_quantisation() -> None:
    # torch's intensity lies just above the 0.455 rounding boundary, ONNX's 4e-7 under it: the
    # graphs agree within atol, their quantised values differ by a whole step
    torch_logits = np.array([[logit(0.4550003), logit(0.9)]], dtype=np.float32)
    onnx_logits = torch_logits.copy()
    onnx_logits[0, 0] = np.float32(logit(0.4549999))
    head = Head("multilabel", ("a", "b"), quantize=True)
    served = np.abs(values(head, torch_logits) - values(head, onnx_logits)).max()
    assert served == pytest.approx(0.01)
    check = check_parity(_Fixed(torch_logits), _session(onnx_logits), None, head,  # type: ignore[arg-type]
                         inputs=[{"x": np.zeros((1, 1), np.float32)}])
    assert check.status == "ok" and 1e-7 < check.max_diff < 1e-6


class _Rows:
    """A preprocessor whose records are row numbers into the fake session's logits."""

    def length(self, record: int) -> int:
        return 1

    def encode(self, records: list[int]) -> dict[str, np.ndarray]:
        return {"x": np.asarray(records, np.float32)[:, None]}


def test_int8_quality_of_a_quantised_head_is_measured_on_what_scoring_serves() -> None:
    # record 0: fp32 0.2951, int8 0.2949 for label a (threshold 0.3): both off before quantising,
    # 0.30 (on) vs 0.29 (off) after; record 1 is the same in both
    fp32 = np.array([[logit(0.2951), logit(0.8)], [logit(0.6), logit(0.1)]])
    int8 = fp32.copy()
    int8[0, 0] = logit(0.2949)
    thresholds = (0.3, 0.5)
    plain = quantization_quality(_session(fp32), _session(int8), _Rows(), Head("multilabel", ("a", "b"),
                                 thresholds=thresholds), [0, 1], k=1)  # type: ignore[arg-type]
    eqn = quantization_quality(_session(fp32), _session(int8), _Rows(), Head("multilabel", ("a", "b"),
                               thresholds=thresholds, quantize=True), [0, 1], k=1)  # type: ignore[arg-type]
    assert plain["on_off_agreement"] == 1.0 and plain["change"] == 0.0 and "max_served_diff" not in plain
    assert eqn["on_off_agreement"] == 0.75 and eqn["change"] == 0.25  # 1 of 4 decisions flipped
    assert eqn["max_prob_diff"] == pytest.approx(0.0002) == plain["max_prob_diff"]
    assert eqn["max_served_diff"] == pytest.approx(0.01) and eqn["top1_agreement"] == 1.0
