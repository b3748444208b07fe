"""The trend forecaster's protocol on posts whose category shares move visibly within 60 days: the
model reads the trend that persistence misses (it beats persistence and the 60-day share on mean
Spearman and trend macro-F1 over the walk-forward months), the report carries every baseline,
the paired per-month differences, the interval's coverage, the ablation and the plot; the
registered retrain and its ONNX export take the window tensors and give the share and the trend."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from trend_fixtures import write_trend_posts

from emopulse.flows.posts import import_posts
from emopulse.flows.settings import Settings
from emopulse.serving.export import check_parity, export_onnx
from emopulse.training.trend.model import TrendConfig, TrendModel
from emopulse.training.trend.train import prepare_data, profile_config, train_trend

FAST = dict(min_window_posts=10, min_month_posts=10, threads=2, min_steps=150, epochs=3, max_test_months=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path):
    root = tmp_path_factory.mktemp("trend-train")
    posts, texts = write_trend_posts(root / "data", days=430, categories=10, per_day=30, seed=0)
    settings = Settings(home=root / "home")
    import_posts(settings, [posts, texts], kind="mkt")
    cfg = profile_config("light", ablation=True, text_encoder_path=str(tiny_encoder), **FAST)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        data = prepare_data(con, cfg)
    result = train_trend(data, out_dir=root / "run", config=cfg, progress=False)
    return result, data


def test_the_model_reads_trends_that_persistence_misses(trained) -> None:
    result, _ = trained
    m = result.metrics
    assert m["evaluation"].startswith("walk_forward") and [f["test_month"] for f in m["folds"]] == ["2023-11", "2023-12"]
    for baseline in ("persistence", "share_60d"):
        assert m["spearman"] > m[f"{baseline}_spearman"] + 0.2, (m["spearman"], m[f"{baseline}_spearman"])
        assert m["trend_macro_f1"] > m[f"{baseline}_trend_macro_f1"] + 0.1
    assert m["trend_macro_f1"] > m["class_prior_trend_macro_f1"]
    paired = m["paired"]["persistence"]["spearman"]
    assert len(paired["per_month"]) == len(m["folds"]) and paired["model_better"] == len(m["folds"])
    assert 0.5 <= m["coverage"] <= 1.0  # an 80% interval, measured on the test months


def test_the_report_shows_every_baseline_month_by_month_and_the_ablation(trained) -> None:
    result, data = trained
    summary = result.files["eval_summary"].read_text(encoding="utf-8")
    for needle in ("persistence (last 30 days' share)", "the window's 60-day share", "aggregate model",
                   "class prior", "Per test month", "paired", "without numbers", "without texts", "GRU instead of LSTM",
                   "without images", "the data hold none"):
        assert needle in summary, needle
    ablation = result.metrics["ablation"]
    assert ablation["without numbers"]["summary"]["spearman"]["mean"] < result.metrics["spearman"]
    assert ablation["without images"]["summary"] is None  # the posts have no images
    assert result.files["forecast_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.metrics["windows"]["eligible"] == int(data.eligible.sum())


def test_the_registered_retrain_runs_its_chosen_epochs_with_its_chosen_scale(trained) -> None:
    result, _ = trained
    m = result.metrics
    assert len(result.history) == m["retrain_epochs"] == max(1, int(np.median([f["best_epoch"] for f in m["folds"]])))
    from emopulse.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(result.files["checkpoint"])
    assert float(ckpt["state_dict"]["ratio_scale"]) == float(result.module.ratio_scale) == m["interval"]["ratio_scale"]


def test_the_export_takes_window_tensors_and_gives_share_and_trend(trained, tmp_path: Path) -> None:
    result, data = trained
    path = export_onnx(result.module, result.preprocessor, tmp_path / "trend.onnx", output_names=result.output_names)
    check = check_parity(result.module, path, result.preprocessor, result.head)
    assert check.status == "ok" and len(check.shapes) >= 3
    assert {s["numbers"][1] for s in check.shapes} == {57, 60, 65}  # the days axis varies
    import onnx

    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(result.preprocessor.input_names)
    assert [o.name for o in graph.output] == ["trend_logits", "share"]
    assert "seq" not in str(graph.input) and "days" in str(graph.input)
    from emopulse.serving.quantize import quantization_quality, quantize_int8
    from emopulse.serving.runtime import open_session

    quantize_int8(path, tmp_path / "trend.int8.onnx")
    quality = quantization_quality(open_session(path, device="cpu"), open_session(tmp_path / "trend.int8.onnx", device="cpu"),
                                   result.preprocessor, result.head, list(result.quality_records))
    share = quality["other_outputs"]["share"]
    assert quality["change"] >= share["relative_mae"] > 0  # what int8 does to the share counts


def test_parity_fails_when_the_second_output_differs(trained, tmp_path: Path) -> None:
    result, _ = trained

    class Shifted(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, **inputs):
            logits, share = self.inner(**inputs)
            return logits, share

    path = export_onnx(result.module, result.preprocessor, tmp_path / "a.onnx", output_names=result.output_names)
    shifted = TrendModel(TrendConfig(**vars(result.module.cfg)))
    shifted.load_state_dict(result.module.state_dict())
    with torch.no_grad():
        shifted.ratio.bias += 0.5  # the share moves, the trend logits do not
    shifted.eval()
    from emopulse.serving.export import ParityError

    with pytest.raises(ParityError, match="output 'share'"):
        check_parity(Shifted(shifted), path, result.preprocessor, result.head)


def test_a_model_config_without_any_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one of numbers, texts and images"):
        TrendConfig(use_numbers=False, use_text=False, use_images=False)
    with pytest.raises(ValueError, match="rnn must be"):
        profile_config("light", rnn="transformer")
    assert np.isfinite(TrendModel(TrendConfig(text_dim=4, image_dim=3))(
        torch.zeros(2, 60, 6), torch.zeros(2, 60, 4), torch.zeros(2, 60), torch.zeros(2, 60, 3), torch.zeros(2, 60),
        torch.zeros(2, 9))[1].detach().numpy()).all()  # an empty window: finite forecasts
