"""The micro-emotion model's commands end to end on a real home: `import goemotions`, `train
emotions --profile light` (exported to ONNX, parity checked, int8 beside it, registered), `score`
of comments and posts into `predictions` (28 rows each), the `daily_emotions` view, and
`annotate emotions` with the registered model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pytest
from emotion_fixtures import EMOTIONS, write_goemotions
from typer.testing import CliRunner

from emopulse.flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path):
    home = tmp_path_factory.mktemp("emotions-home")
    folder = write_goemotions(tmp_path_factory.mktemp("go"), train=160, dev=60, seed=4)
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOPULSE_EMOJI_TEXT_ENCODER", str(tiny_encoder))
    result = runner.invoke(app, ["import", "goemotions", str(folder), "--home", str(home)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "emotions", "--profile", "light", "--epochs", "2", "--quiet",
                                 "--home", str(home)])
    assert result.exit_code == 0, result.output
    yield home, json.loads(result.stdout[result.stdout.index("{"):])
    mp.undo()


def test_train_registers_a_thresholded_quantised_model(trained) -> None:
    home, record = trained
    assert record["task"] == "emotions" and record["model_id"].startswith("emotions-")
    metrics = record["metrics"]
    assert metrics["registered"] == "B" and "tfidf_dev_macro_f1" in metrics and "A_mse_dev_macro_f1" in metrics
    folder = home / Path(record["artifacts"]["onnx"]).parent
    head = json.loads((folder / "head.json").read_text(encoding="utf-8"))
    assert head["kind"] == "multilabel" and head["quantize"] and head["labels"] == EMOTIONS
    assert len(head["thresholds"]) == 28
    assert {"expansion.json", "correlation.png", "eval_summary.md", "metrics.json"} <= {p.name for p in folder.iterdir()}


def test_score_gives_every_comment_and_post_its_28_intensities_and_the_daily_view(trained) -> None:
    home, record = trained
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("INSERT INTO comments (rpid, bvid, message, sentence, ctime) VALUES "
                "(7, 'BV1', 'so joy love', 'so joy love', 86400), (8, 'BV1', 'the fear', 'the fear', 86401)")
    con.execute("INSERT INTO posts (post_id, published_date) VALUES ('p1', DATE '2024-05-01')")
    con.execute("INSERT INTO post_texts (post_id, text) VALUES ('p1', 'really grati pride')")
    con.close()
    result = runner.invoke(app, ["score", "--task", "emotions", "--home", str(home)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT entity_id, count(*), count(DISTINCT label), min(score), max(score), "
                           "bool_and(round(score, 2) = score) FROM predictions WHERE model_id = ? "
                           "GROUP BY entity_id ORDER BY entity_id", [record["model_id"]]).fetchall()
        daily = con.execute("SELECT day, entity_kind, count(*), max(n), min(mean_energy) >= 0, max(mean_energy) <= 10 "
                            "FROM daily_emotions GROUP BY ALL").fetchall()
    finally:
        con.close()
    assert [r[:3] for r in rows] == [("7", 28, 28), ("8", 28, 28), ("p1", 28, 28)]
    assert all(0 <= r[3] <= r[4] <= 1 and r[5] for r in rows)  # intensities, quantised to two decimals
    assert sorted((str(d[0]), *d[1:]) for d in daily) == [("1970-01-02", "comment", 28, 2, True, True),
                                                          ("2024-05-01", "post", 28, 1, True, True)]
    again = runner.invoke(app, ["score", "--task", "emotions", "--home", str(home)])
    assert again.exit_code == 0 and json.loads(again.stdout[again.stdout.index("{"):])["rows"] == 0


def test_annotate_writes_energies_and_labels(trained, tmp_path: Path) -> None:
    home, record = trained
    src = tmp_path / "in.csv"
    src.write_text("id,sentence\n1,really joy love\n2,\n3,the anger annoy\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["annotate", "emotions", "--input", str(src), "--text-col", "sentence", "--output",
                                 str(out), "--home", str(home)])
    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0])[:2] == ["id", "sentence"] and f"energy_{EMOTIONS[0]}" in rows[0] and "labels" in rows[0]
    energies = [float(rows[0][f"energy_{e}"]) for e in EMOTIONS]
    assert all(0 <= v <= 10 for v in energies) and rows[1]["labels"] == ""
    thresholds = json.loads((home / Path(record["artifacts"]["onnx"]).parent / "head.json").read_text())["thresholds"]
    on = [e for e, v, t in zip(EMOTIONS, energies, thresholds, strict=True) if v / 10 >= t - 1e-9]
    assert rows[0]["labels"] == ";".join(on)  # the names at or above their thresholds, in label order
