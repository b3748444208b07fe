from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from emopulse.serving.export import ParityError, check_parity, export_emoji_bow, export_onnx
from emopulse.serving.runtime import open_session
from emopulse.training.emoji_bow.train import TrainResult


def test_export_matches_torch_on_new_batch_and_sequence_sizes(tmp_path, trained: TrainResult) -> None:
    path = tmp_path / "model.onnx"
    diff = export_emoji_bow(trained.model, trained.tokenizer, path)
    assert diff < 1e-4
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == ["ids", "mask"]
    dims = [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq"]

    # and with real text, through a real InferenceSession, at sizes the export never saw
    session = open_session(path, device="cpu")
    for texts in (["哈哈哈", "狗头保命", "加油冲鸭", "呜呜太感动了吧", ""], ["好漂亮啊" * 9]):
        ids, mask = trained.tokenizer.encode(texts)
        got = session.run({"mask": mask, "ids": ids})["logits"]  # by name, in any order
        with torch.no_grad():
            want = trained.model(ids=torch.from_numpy(ids), mask=torch.from_numpy(mask)).numpy()
        assert got.shape == want.shape == (len(texts), len(trained.labels))
        assert np.abs(got - want).max() < 1e-4


def test_parity_check_fails_loudly_when_the_file_and_model_disagree(tmp_path, trained: TrainResult) -> None:
    path = tmp_path / "model.onnx"
    export_emoji_bow(trained.model, trained.tokenizer, path)
    other = type(trained.model)(trained.model.config)  # freshly initialised: different weights
    ids, mask = trained.tokenizer.encode(["哈哈哈", "狗头保命", "围观"])
    inputs = {"ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask)}
    with pytest.raises(ParityError, match="model.onnx.*differs from torch"):
        check_parity(other, path, inputs=inputs)


def test_export_refuses_size_one_sample_dimensions(tmp_path, trained: TrainResult) -> None:
    ids, mask = trained.tokenizer.encode(["哈"])
    with pytest.raises(ValueError, match=">= 2"):
        export_onnx(trained.model, tmp_path / "m.onnx",
                    sample_inputs={"ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask)})
