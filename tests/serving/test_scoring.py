from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emopulse.serving import ModelRecord, export_and_register, find_model, score_comments, sha256_file
from emopulse.training.data import read_emoji_training_set
from emopulse.training.emoji_align.train import TrainResult
from emopulse.warehouse import Warehouse, latest_model


def _fill(wh: Warehouse, rows: pd.DataFrame) -> None:
    comments = rows.drop_duplicates("rpid")[["rpid", "bvid", "message", "sentence"]].copy()
    comments.loc[comments.index[:3], "sentence"] = ""  # comments of nothing but emotes
    wh.con.register("new_comments", comments)
    wh.con.execute("INSERT INTO comments (rpid, bvid, message, sentence) SELECT * FROM new_comments")
    wh.con.unregister("new_comments")


def test_register_then_score_comments_into_a_real_duckdb_file(tmp_path, rows, trained: TrainResult) -> None:
    db = tmp_path / "warehouse.duckdb"
    with Warehouse.open(db, command="test") as wh:
        _fill(wh, rows)
        record = export_and_register(wh, trained, artifacts_root=tmp_path)
        assert record.version == 1 and record.task == "emoji"
        folder = tmp_path / "models" / "emoji" / record.model_id
        assert {p.name for p in folder.iterdir()} == {
            "model.onnx", "ckpt.pt", "ckpt_last.pt", "tokenizer.json", "labels.json", "split.json", "metrics.json",
            "eval_summary.md", "SHA256SUMS"}
        assert record.sha256 == sha256_file(folder / "model.onnx")
        sums = dict(line.split("  ")[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())
        assert sums["model.onnx"] == record.sha256 and sums["ckpt.pt"] == sha256_file(folder / "ckpt.pt")
        assert record.metrics["onnx_max_abs_diff"] < 1e-3
        assert "parity with torch" in (folder / "eval_summary.md").read_text(encoding="utf-8")
        assert ModelRecord.from_row(latest_model(wh, "emoji")) == record
        assert find_model(wh, model_id=record.model_id) == find_model(wh) == record

        summary = score_comments(wh, k=3)
        scored = rows["rpid"].nunique() - 3
        assert summary.model_id == record.model_id and summary.provider.endswith("ExecutionProvider")
        assert summary.comments == scored
        n = summary.rows
        assert n == 3 * scored
        preds = wh.con.sql("SELECT * FROM predictions ORDER BY entity_id, rank").df()
        assert len(preds) == n
        assert set(preds["model_id"]) == {record.model_id} and set(preds["task"]) == {"emoji"}
        assert preds["entity_id"].nunique() == scored
        assert set(preds["rank"]) == {1, 2, 3}
        labels = set(json.loads(Path(record.artifacts["labels"]).read_text(encoding="utf-8")))
        assert set(preds["label"]) <= labels
        by_comment = preds.groupby("entity_id")["score"]
        assert (by_comment.apply(lambda s: s.is_monotonic_decreasing)).all()
        assert (by_comment.sum() <= 1 + 1e-9).all()

        # the model learned the phrases: a comment saying 狗头保命 ranks [doge] first
        top = preds[preds["rank"] == 1].set_index("entity_id")["label"]
        doge = rows.loc[rows["emoji_alt"] == "[doge]", "rpid"].astype(str)
        assert (top.reindex(doge).dropna() == "[doge]").mean() > 0.9

        assert score_comments(wh, model=record.model_id, k=3).rows == n  # by id; upserts, adds no rows
        assert wh.con.sql("SELECT count(*) FROM predictions").fetchall()[0][0] == n
        assert len(read_emoji_training_set(wh)) == 0  # the reader works on a Warehouse too


def test_scoring_refuses_an_onnx_file_that_does_not_match_the_registry(tmp_path, rows, trained) -> None:
    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        _fill(wh, rows)
        record = export_and_register(wh, trained, artifacts_root=tmp_path, model_id="tampered")
        Path(record.artifacts["onnx"]).write_bytes(b"garbage")
        with pytest.raises(ValueError, match="model.onnx has sha256"):
            score_comments(wh)


def test_scoring_without_a_registered_model_says_so(tmp_path) -> None:
    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        with pytest.raises(LookupError, match="no model registered"):
            score_comments(wh)
        with pytest.raises(LookupError, match="no model 'missing'"):
            score_comments(wh, model="missing")


def test_a_transformers_model_folder_scores_on_its_own(tmp_path, rows, trained_transformers: TrainResult) -> None:
    """The tokenizer's files travel with the model: scoring reads nothing from the encoder's folder."""
    from emopulse.serving import EmojiScorer

    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        record = export_and_register(wh, trained_transformers, artifacts_root=tmp_path)
    folder = Path(record.artifacts["onnx"]).parent
    assert (folder / "tokenizer_files" / "tokenizer.json").is_file()
    assert json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["path"] == "tokenizer_files"
    assert "tokenizer_files/tokenizer.json" in (folder / "SHA256SUMS").read_text()
    scorer = EmojiScorer.load(record, device="cpu")
    assert scorer.tokenizer.path == str(folder / "tokenizer_files") and scorer.tokenizer.prefix == "query: "
    labels, scores = scorer.rank(["狗头保命", "哈哈哈", "好漂亮啊"], k=5)
    assert labels.shape == scores.shape == (3, 5) and (np.diff(scores, axis=1) <= 1e-12).all()
