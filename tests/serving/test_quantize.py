"""The int8 variant: registered beside fp32 with its measured change, used only within a setting."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from emopulse.serving import export_and_register, load_scorer
from emopulse.serving.heads import top_k, values
from emopulse.serving.runtime import CPU, open_session
from emopulse.training.result import TrainResult
from emopulse.warehouse import Warehouse


@pytest.fixture(scope="module")
def registered(register_models):
    """name → (record) for the ranker, the BERT ranker, the multi-label and the regression model."""
    return register_models(("ranker", "bert_ranker", "multilabel", "regressor"), home="int8-home")


@pytest.mark.parametrize("which", ["ranker", "bert_ranker"])
def test_int8_is_registered_beside_fp32_with_its_measured_agreement(request, registered, which: str) -> None:
    result: TrainResult = request.getfixturevalue(which)
    record = registered[which]
    fp32, int8 = record.path("onnx"), record.path("onnx_int8")
    assert int8.parent == fp32.parent and int8.name == "model.int8.onnx"
    assert int8.stat().st_size < fp32.stat().st_size
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {n.op_type for n in onnx.load(str(int8)).graph.node}
    info = record.metrics["int8"]
    quality = info["quality"]
    assert info["measured_on"] == "quality_records" and quality["records"] == len(result.quality_records)
    # the recorded figures are what the two graphs really do on those records
    records = list(result.quality_records)
    feeds = result.preprocessor.encode(records)
    want = values(result.head, open_session(fp32, device="cpu").run(feeds)["logits"])
    got = values(result.head, open_session(int8, device="cpu").run(feeds)["logits"])
    top1 = float((top_k(want, 1) == top_k(got, 1)).mean())
    assert quality["top1_agreement"] == pytest.approx(top1, abs=1 / len(records) + 1e-9)
    assert quality["max_prob_diff"] == pytest.approx(np.abs(want - got).max(), abs=1e-4)
    assert quality["max_prob_diff"] > 0  # int8 really differs from fp32
    assert quality["change"] == pytest.approx(1 - quality["top1_agreement"])
    assert f"top{min(5, len(result.head.labels))}_agreement" in quality


def test_multilabel_and_regression_record_their_own_change(registered) -> None:
    multi = registered["multilabel"].metrics["int8"]["quality"]
    assert 0 <= multi["on_off_agreement"] <= 1
    assert multi["change"] == pytest.approx(max(1 - multi["top1_agreement"], 1 - multi["on_off_agreement"]))
    reg = registered["regressor"].metrics["int8"]["quality"]
    assert reg["relative_mae"] == pytest.approx(reg["mae_vs_fp32"] / reg["fp32_sd"]) and reg["change"] == reg["relative_mae"]


def test_scoring_uses_int8_only_within_the_setting(registered) -> None:
    record = registered["ranker"]
    change = record.metrics["int8"]["quality"]["change"]
    within = load_scorer(record, device="cpu", int8_max_change=change)
    assert within.variant == "int8" and within.session.path.name == "model.int8.onnx" and within.provider == CPU
    beyond = load_scorer(record, device="cpu", int8_max_change=change - 1e-6)
    assert beyond.variant == "fp32" and beyond.session.path.name == "model.onnx"
    assert load_scorer(record, device="cpu", variant="fp32", int8_max_change=1.0).variant == "fp32"
    assert load_scorer(record, device="cpu", variant="int8", int8_max_change=-1.0).variant == "int8"


def test_int8_is_never_chosen_by_itself_without_quality_records(tmp_path, poster: TrainResult) -> None:
    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        record = export_and_register(wh, poster)
    assert record.metrics["int8"]["quality"]["records"] == 0
    assert load_scorer(record, device="cpu", int8_max_change=1.0).variant == "fp32"
    assert load_scorer(record, device="cpu", variant="int8").variant == "int8"


def test_quantising_a_transformers_graph_leaves_nothing_in_the_working_folder(tmp_path, monkeypatch, registered) -> None:
    """Its symbolic shape pass fails (then ONNX's own runs); the failed pass used to leave a
    `<uuid>.data` file in the working folder."""
    from emopulse.serving.quantize import quantize_int8

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    how = quantize_int8(registered["bert_ranker"].path("onnx"), tmp_path / "int8.onnx")
    assert how["pre_process"] == "onnx" and (tmp_path / "int8.onnx").is_file()
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx", "work"]


def test_each_layers_feed_forward_output_stays_in_float_and_the_rest_is_int8(tmp_path, registered) -> None:
    import onnx

    from emopulse.serving.quantize import float_kept, quantize_int8

    src = registered["bert_ranker"].path("onnx")
    fp32 = onnx.load(str(src))
    layers = {n.name.split("/output/")[0] for n in fp32.graph.node if "/output/dense/MatMul" in n.name
              and "attention" not in n.name}
    assert len(float_kept(fp32)) == len(layers) >= 2  # one per transformer layer, none of the attention's
    how = quantize_int8(src, tmp_path / "int8.onnx")
    int8 = onnx.load(str(tmp_path / "int8.onnx"))
    float_matmuls = {n.name for n in int8.graph.node if n.op_type == "MatMul"}
    integer = [n for n in int8.graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert how["kept_float"] == len(layers) and set(float_kept(fp32)) <= float_matmuls
    assert integer and not any("attention" not in n.name and "/output/dense/" in n.name for n in integer)
