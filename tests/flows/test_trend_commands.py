"""The trend forecaster's commands on a real home: `train trend --profile light` (walk-forward folds,
exported to ONNX with parity on both outputs, int8 beside it, registered, the open windows
forecast), `forecast trends` and `score` again (an upsert), new posts refreshing the windows and
then the forecasts, past forecasts kept and set beside what happened, and the refusals: a
changed forecast.json, another text encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from emote_fixtures import build_tiny_encoder
from trend_fixtures import write_trend_posts
from typer.testing import CliRunner

from emopulse.flows.cli import app

runner = CliRunner()


def _forecasts(home: Path) -> pd.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM trend_forecasts ORDER BY window_end, category").df()


def _open_windows(home: Path) -> pd.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT window_end, category, target_month FROM trend_windows WHERE label_share IS NULL "
                           "ORDER BY window_end, category").df()


def test_train_registers_a_forecaster_and_forecasts_every_open_window(trend_home) -> None:
    home, record, _ = trend_home
    assert record["task"] == "trend" and record["model_id"].startswith("trend-")
    metrics = record["metrics"]
    assert metrics["registered"] == "all_data_retrain" and metrics["evaluation"].startswith("walk_forward")
    for name in ("persistence_spearman", "share_60d_trend_macro_f1", "aggregate_spearman", "class_prior_trend_macro_f1",
                 "coverage"):
        assert name in metrics, name
    folder = home / Path(record["artifacts"]["onnx"]).parent
    assert {"forecast.json", "forecast_vs_actual.png", "eval_summary.md", "model.int8.onnx"} <= {p.name for p in folder.iterdir()}
    export = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    assert export["outputs"] == ["trend_logits", "share"] and export["parity"]["cpu"]["status"] == "ok"
    assert export["dynamic_axes"]["numbers"] == {"0": "batch", "1": "days"}
    head = json.loads((folder / "head.json").read_text(encoding="utf-8"))
    assert head == {**head, "kind": "ranking", "labels": ["down", "flat", "up"], "output": "trend_logits"}

    forecasts, open_windows = _forecasts(home), _open_windows(home)
    assert record["forecasts"]["rows"] == len(forecasts) == len(open_windows) > 0
    assert forecasts[["window_end", "category", "target_month"]].astype(str).values.tolist() == \
        open_windows.astype(str).values.tolist()
    assert (forecasts["share_lo"] <= forecasts["share"]).all() and (forecasts["share"] <= forecasts["share_hi"]).all()
    assert np.allclose(forecasts[["p_down", "p_flat", "p_up"]].sum(axis=1), 1.0)
    assert set(forecasts["trend"]) <= {-1, 0, 1} and (forecasts["model_id"] == record["model_id"]).all()
    rule = json.loads((folder / "forecast.json").read_text(encoding="utf-8"))["trend_from"]
    if rule == "head":
        assert (forecasts["trend"] == forecasts[["p_down", "p_flat", "p_up"]].to_numpy().argmax(1) - 1).all()


def test_forecast_and_score_again_update_the_same_rows(trend_home) -> None:
    home, record, _ = trend_home
    before = _forecasts(home)
    result = runner.invoke(app, ["forecast", "trends", "--home", str(home)])
    assert result.exit_code == 0, result.output
    again = _forecasts(home)
    assert json.loads(result.stdout)["rows"] == len(again) == len(before)
    assert (again["forecast_at"] > before["forecast_at"]).all()
    np.testing.assert_allclose(again["share"], before["share"], rtol=1e-5)
    result = runner.invoke(app, ["score", "--task", "trend", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["forecasts"][0]["rows"] == len(before) and len(_forecasts(home)) == len(before)


def test_new_posts_refresh_windows_then_forecasts_and_past_forecasts_meet_what_happened(trend_home, tmp_path: Path) -> None:
    source, record, _ = trend_home
    home = tmp_path / "home"
    shutil.copytree(source, home)
    before = _forecasts(home)
    later, later_texts = write_trend_posts(tmp_path / "later", days=440, categories=6, per_day=12, seed=5,
                                           first_day=400, name="later")
    result = runner.invoke(app, ["import", "mkt", str(later), str(later_texts), "--home", str(home)])
    assert result.exit_code == 0, result.output
    refreshed = json.loads(result.stdout)["windows"]["forecasts"]
    open_now = _open_windows(home)
    assert refreshed["rows"] == len(open_now) and refreshed["model_id"] == record["model_id"]
    after = _forecasts(home)
    assert len(after) > len(before)  # the old forecasts stay, the new open windows are added
    kept = before.merge(after, on=["model_id", "category", "window_end"], suffixes=("", "_now"))
    assert len(kept) == len(before)
    out = runner.invoke(app, ["sql", "SELECT count(*) AS n, count(DISTINCT target_month) AS months, "
                                     "avg(abs_error) AS mae, avg(in_interval::INT) AS coverage "
                                     "FROM trend_forecast_outcomes", "--format", "json", "--home", str(home)])
    assert out.exit_code == 0, out.output
    outcome = json.loads(out.stdout)[0]
    assert outcome["n"] > 0 and outcome["months"] >= 1 and 0 <= outcome["coverage"] <= 1 and outcome["mae"] < 0.2


def test_a_changed_forecast_file_is_refused_and_nothing_is_written(trend_home, tmp_path: Path) -> None:
    source, record, _ = trend_home
    home = tmp_path / "home"
    shutil.copytree(source, home)
    before = _forecasts(home)
    path = home / record["artifacts"]["forecast"]
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "log_ratio_quantiles": [-9, 9]}), encoding="utf-8")
    result = runner.invoke(app, ["forecast", "trends", "--home", str(home)])
    assert result.exit_code != 0
    assert "forecast.json" in result.output and "sha256" in result.output
    pd.testing.assert_frame_equal(_forecasts(home), before)


def test_another_text_encoder_is_refused(trend_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, record, _ = trend_home
    assert json.loads((source / record["artifacts"]["metrics"]).read_text(encoding="utf-8"))["inputs"]["text_cells"]
    home = tmp_path / "home"
    shutil.copytree(source, home)
    monkeypatch.setenv("EMOPULSE_EMOJI_TEXT_ENCODER", str(build_tiny_encoder(tmp_path / "other", seed=1)))
    result = runner.invoke(app, ["forecast", "trends", "--home", str(home)])
    assert result.exit_code != 0 and "trained with the text encoder" in result.output


def test_train_trend_help_and_a_bad_rnn() -> None:
    result = runner.invoke(app, ["train", "trend", "--help"])
    assert result.exit_code == 0 and "--rnn" in result.output and "--ablation" in result.output
    result = runner.invoke(app, ["train", "trend", "--rnn", "transformer"])
    assert result.exit_code != 0 and "lstm or gru" in result.output


def test_the_gate_judges_a_trend_challenger_on_the_frozen_months(trend_home, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, tiny_encoder) -> None:
    home, record, _ = trend_home
    assert record["decision"]["action"] == "promote"  # the first: champion
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    con = duckdb.connect(str(copy / "warehouse.duckdb"), read_only=True)
    try:
        frozen = [k for (k,) in con.execute("SELECT key FROM frozen_sets WHERE task = 'trend' ORDER BY key").fetchall()]
        months = [str(m) for (m,) in con.execute("SELECT DISTINCT target_month FROM trend_windows "
                                                 "WHERE label_share IS NOT NULL ORDER BY 1").fetchall()]
    finally:
        con.close()
    assert frozen == months[-len(frozen):] and 1 <= len(frozen) < len(months)  # the latest label months
    metrics = json.loads(runner.invoke(app, ["models", "show", record["model_id"], "--home", str(copy)]).stdout)["metrics"]
    assert all(f["target_month"] < frozen[0][:7] for f in metrics["folds"])  # never tested (nor trained) on them
    monkeypatch.setenv("EMOPULSE_EMOJI_TEXT_ENCODER", str(tiny_encoder))
    result = runner.invoke(app, ["train", "trend", "--profile", "light", "--no-ablation", "--quiet", "--home", str(copy)])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout[result.stdout.index("{"):])["decision"]
    assert decision["metric"] == "spearman" and decision["champion_id"] == record["model_id"]
    assert -1 <= decision["model_score"] <= 1 and -1 <= decision["champion_score"] <= 1
    assert decision["action"] in ("promote", "reject")
