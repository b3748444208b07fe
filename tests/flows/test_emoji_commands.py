"""The emoji model's commands end to end on a small file: import, clean, `train emoji --profile
light`, `predict emoji`; and `models prepare` when the folder is there already."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from emote_fixtures import synthetic_emote_rows
from typer.testing import CliRunner

from emopulse.flows import steps
from emopulse.flows.cli import app
from emopulse.flows.settings import load_settings

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("emoji-home")
    rows = synthetic_emote_rows(300, seed=2)
    videos = sorted(rows["bvid"].dropna().unique())  # real-looking BV ids: the importer derives aids from them
    rows["bvid"] = rows["bvid"].map({v: f"BV1xx411c7m{c}" for v, c in zip(videos, "ABCDEFGHJKLMNPQR")}).fillna("BV1xx411c7mS")
    rows["mid"] = rows["rpid"].astype(str)
    rows["uname"] = "u" + rows["mid"]
    rows["ctime_iso"] = "2024-01-01T00:00:00+00:00"
    path = home / "cleaned_combined.csv"
    rows[["bvid", "emoji_alt", "emoji_name", "message", "sentence", "mid", "uname", "ctime_iso"]].to_csv(path, index=False)
    for args in (["import", "comments", str(path)], ["clean", "--min-comments", "10"]):
        result = runner.invoke(app, [*args, "--home", str(home)])
        assert result.exit_code == 0, result.output
    return home


def test_train_light_then_predict_a_csv(home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMOPULSE_EMOJI_UNICODE_MAP", str(tmp_path / "none.csv"))
    result = runner.invoke(app, ["train", "emoji", "--profile", "light", "--epochs", "6", "--min-comments", "10",
                                 "--quiet", "--home", str(home)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{"):])
    assert record["task"] == "emoji" and record["model_id"].startswith("emoji_align-")
    assert record["metrics"]["profile"] == "light" and record["metrics"]["evaluation"] == "video_folds(k=3)"
    assert "runs" not in record["metrics"]  # the full runs are in metrics.json and eval_summary.md

    src = tmp_path / "comments.csv"
    src.write_text("id,content\n1,狗头保命[doge]\n2,[笑哭]\n3,呜呜太感动\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", "emoji", "--input", str(src), "--text-col", "content",
                                 "--output", str(out), "--model", record["model_id"], "--home", str(home)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert (summary["rows"], summary["scored"], summary["empty"], summary["unreadable"]) == (3, 2, 1, 0)
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["pred_1"] == "[doge]" and rows[1]["pred_1"] == "" and rows[2]["pred_1"].startswith("[")


def test_predict_with_an_unknown_model_or_column_fails_clearly(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "c.csv"
    src.write_text("content\n哈哈\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "emoji", "--input", str(src), "--text-col", "content", "--output",
                                 str(tmp_path / "o.csv"), "--model", "nope", "--home", str(home)])
    assert result.exit_code == 1 and "no model 'nope'" in result.output


def test_models_prepare_keeps_an_existing_folder_and_the_encoder_setting_wins(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    (settings.models_dir / steps.E5_SMALL).mkdir(parents=True)
    got = steps.prepare_models(settings)
    assert got["prepared"] is False and got["path"] == str(tmp_path / "models" / "multilingual-e5-small")
    assert steps.text_encoder_path(settings) == got["path"]
    assert steps.text_encoder_path(load_settings(home=tmp_path, emoji_text_encoder="/my/encoder")) == "/my/encoder"
