"""`emopulse score` and `emopulse predict TASK` on registered models of two tasks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from emopulse.flows.cli import app
from emopulse.serving import export_and_register
from emopulse.warehouse import Warehouse, query

runner = CliRunner()


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def test_score_every_task_then_only_what_is_new_and_predict_a_task(tmp_path: Path, comments: pd.DataFrame,
                                                                   ranker, multilabel) -> None:
    home = tmp_path / "home"
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        frame = comments[["rpid", "message", "sentence"]].head(20)
        wh.con.register("c", frame)
        wh.con.execute("INSERT INTO comments (rpid, message, sentence) SELECT * FROM c")
        emoji = export_and_register(wh, ranker)
        emotions = export_and_register(wh, multilabel)
    result = runner.invoke(app, ["score", "--home", str(home)])
    assert result.exit_code == 0, result.output
    runs = {r["task"]: r for r in _json(result.stdout)["scored"]}
    assert runs["emoji"]["model_id"] == emoji.model_id and runs["emoji"]["rows"] == 5 * 20
    assert runs["emotions"]["model_id"] == emotions.model_id and runs["emotions"]["rows"] == 6 * 20
    assert runs["emoji"]["variant"] == "int8"  # its measured change (none) is within the default setting
    published = query(home, "SELECT entity_kind, count(*) AS n FROM predictions GROUP BY ALL")
    assert published.values.tolist() == [["comment", 220]]  # the snapshot readers see

    again = runner.invoke(app, ["score", "--task", "emoji", "--variant", "fp32", "--home", str(home)])
    assert again.exit_code == 0 and _json(again.stdout)["rows"] == 0
    none = runner.invoke(app, ["score", "--task", "trend", "--home", str(home)])
    assert none.exit_code == 1 and "no model registered for task 'trend'" in none.output
    bad = runner.invoke(app, ["score", "--variant", "int4", "--home", str(home)])
    assert bad.exit_code == 2

    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("content\n狗头保命[doge]\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "emotions", "--input", str(src), "--text-col", "content",
                                 "--output", str(out), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert _json(result.stdout)["model_id"] == emotions.model_id
    with open(out, encoding="utf-8", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert "[doge]" in row["labels_on"].split(";") and 0 <= float(row["score_[doge]"]) <= 1
