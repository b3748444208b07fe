from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from emopulse.serving.export import ParityError, check_parity, export_onnx, export_text_model
from emopulse.serving.runtime import open_session
from emopulse.training.emoji_align.model import EmoteRanker
from emopulse.training.emoji_align.train import TrainResult


@pytest.mark.parametrize("which", ["trained", "trained_transformers"])
def test_export_matches_torch_on_new_batch_and_sequence_sizes(tmp_path, request, which: str) -> None:
    result: TrainResult = request.getfixturevalue(which)
    path = tmp_path / "model.onnx"
    assert export_text_model(result.model, result.tokenizer, path) < 1e-3
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    for graph_input in graph.graph.input:
        assert [d.dim_param for d in graph_input.type.tensor_type.shape.dim] == ["batch", "seq"]
    assert [d.dim_param or d.dim_value for d in graph.graph.output[0].type.tensor_type.shape.dim] == \
        ["batch", len(result.labels)]

    # and with real text, through a real InferenceSession, at sizes the export never saw
    session = open_session(path, device="cpu")
    for texts in (["哈哈哈", "狗头保命", "加油冲鸭", "呜呜太感动了吧", "", "好漂亮啊"], ["好漂亮啊" * 9]):
        ids, mask = result.tokenizer.encode(texts)
        got = session.run({"attention_mask": mask, "input_ids": ids})["logits"]  # by name, in any order
        with torch.no_grad():
            want = result.model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        assert got.shape == want.shape == (len(texts), len(result.labels))
        assert np.abs(got - want).max() < 1e-3


def test_the_exported_logits_are_cosine_similarities_over_tau(trained: TrainResult) -> None:
    ranker = trained.model
    ids, mask = map(torch.from_numpy, trained.tokenizer.encode(["狗头保命", "哈哈哈"]))
    with torch.no_grad():
        text = ranker.text(ids, mask)
        logits = ranker(ids, mask)
    assert torch.allclose(text.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(ranker.prototypes.norm(dim=1), torch.ones(len(trained.labels)), atol=1e-5)
    torch.testing.assert_close(logits, text @ ranker.prototypes.T * ranker.inv_tau)
    assert 1 / 0.2 - 1e-4 <= float(ranker.inv_tau) <= 1 / 0.03 + 1e-4


def test_parity_check_fails_loudly_when_the_file_and_model_disagree(tmp_path, trained: TrainResult) -> None:
    path = tmp_path / "model.onnx"
    export_text_model(trained.model, trained.tokenizer, path)
    other = EmoteRanker(trained.model.text, -trained.model.prototypes, 0.1).eval()  # other prototypes
    ids, mask = trained.tokenizer.encode(["哈哈哈", "狗头保命", "围观"])
    inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    with pytest.raises(ParityError, match="model.onnx.*differs from torch"):
        check_parity(other, path, inputs=inputs)


def test_export_refuses_size_one_sample_dimensions(tmp_path, trained: TrainResult) -> None:
    ids, mask = trained.tokenizer.encode(["哈"])
    with pytest.raises(ValueError, match=">= 2"):
        export_onnx(trained.model, tmp_path / "m.onnx",
                    sample_inputs={"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)})
