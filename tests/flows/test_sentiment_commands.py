"""The sentiment model's commands end to end on a real home: `import pairs`, `train sentiment
--profile light --augment captions` (the offline captioner, captions cached in the warehouse),
`predict sentiment` with `--tags-out`, `score` into `predictions`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pytest
from sentiment_fixtures import write_pairs
from typer.testing import CliRunner

from emopulse.flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path):
    home = tmp_path_factory.mktemp("sentiment-home")
    pairs = write_pairs(tmp_path_factory.mktemp("mm"), n=48, seed=3, unlabelled=3)
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOPULSE_EMOJI_TEXT_ENCODER", str(tiny_encoder))
    mp.setenv("EMOPULSE_CAPTION_BACKEND", "offline")
    result = runner.invoke(app, ["import", "pairs", str(pairs), "--home", str(home)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "sentiment", "--profile", "light", "--epochs", "3", "--folds", "2",
                                 "--augment", "captions", "--quiet", "--home", str(home)])
    assert result.exit_code == 0, result.output
    yield home, pairs, json.loads(result.stdout[result.stdout.index("{"):])
    mp.undo()


def test_train_registers_a_model_whose_hard_samples_got_cached_captions(trained) -> None:
    home, _, record = trained
    assert record["task"] == "sentiment" and record["model_id"].startswith("sentiment-")
    assert record["metrics"]["evaluation"] == "stratified_folds(k=2)" and record["metrics"]["augment"] == "captions"
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        captions = con.execute("SELECT captioner, caption FROM captions").fetchall()
        pairs = con.execute("SELECT count(*), count(label) FROM sentiment_pairs").fetchall()[0]
    finally:
        con.close()
    assert pairs == (51, 48)
    assert captions and all(c == "imagenet:efficientnet-lite0" and t.startswith("a photo of") for c, t in captions)
    metrics = json.loads((home / "runs" / "sentiment" / "metrics.json").read_text(encoding="utf-8"))
    assert sum(f["augmented"] for f in metrics["folds"]) > 0


def test_predict_writes_labels_and_the_seeds_tag_file(trained, tmp_path: Path) -> None:
    home, pairs, record = trained
    unlabelled = [line.split(",")[0] for line in (pairs / "test_without_label.txt").read_text().splitlines()[1:]]
    src = tmp_path / "unlabelled.csv"
    with open(src, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["guid", "text", "image"])
        for guid in unlabelled:
            writer.writerow([guid, (pairs / "data" / f"{guid}.txt").read_text("utf-8"), pairs / "data" / f"{guid}.jpg"])
    out, tags = tmp_path / "out.csv", tmp_path / "predict.txt"
    result = runner.invoke(app, ["predict", "sentiment", "--input", str(src), "--text-col", "text", "--image-col",
                                 "image", "--output", str(out), "--tags-out", str(tags), "--home", str(home)])
    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["text_only"] for r in rows] == ["false"] * 3 and {r["label"] for r in rows} <= {"positive", "neutral",
                                                                                           "negative"}
    assert tags.read_text().splitlines() == ["guid,tag", *(f"{r['guid']},{r['label']}" for r in rows)]
    result = runner.invoke(app, ["predict", "sentiment", "--input", str(src), "--text-col", "text", "--output",
                                 str(out), "--tags-out", str(tags), "--id-col", "nope", "--home", str(home)])
    assert result.exit_code != 0 and "no column 'nope'" in result.output


def test_score_writes_comment_predictions_flagged_text_only(trained) -> None:
    home, _, record = trained
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("INSERT INTO comments (rpid, bvid, message, sentence, ctime) VALUES (5, 'BV1', '哈哈哈', '哈哈哈', 1)")
    con.close()
    result = runner.invoke(app, ["score", "--home", str(home)])  # every task's latest model, as the pipeline does
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT entity_kind, entity_id, count(*), bool_and(text_only) FROM predictions "
                           "WHERE model_id = ? GROUP BY ALL", [record["model_id"]]).fetchall()
    finally:
        con.close()
    assert rows == [("comment", "5", 3, True)]  # every label of the one comment, its text alone


def test_the_pipeline_step_scores_other_tasks_and_survives_a_broken_one(trained) -> None:
    from emopulse.flows import steps
    from emopulse.flows.settings import load_settings

    home, _, record = trained
    settings = load_settings(home=home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("INSERT INTO comments (rpid, bvid, message, sentence, ctime) VALUES (6, 'BV1', '呜呜', '呜呜太感动', 2)")
    con.close()
    out = steps.score_other_tasks(settings, "emoji")  # the pipeline trained emoji: sentiment scores the rest
    assert list(out) == ["sentiment"] and out["sentiment"]["rows"] == 3
    assert steps.score_other_tasks(settings, "sentiment") == {}  # no other task has a model
    onnx = home / record["artifacts"]["onnx"]
    onnx.write_bytes(b"damaged")
    out = steps.score_other_tasks(settings, "emoji")
    assert "error" in out["sentiment"] and "model.onnx" in out["sentiment"]["error"]  # reported, not raised
