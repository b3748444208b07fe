"""The trained sentiment model end to end on a real DuckDB home: trained (tiny encoder, synthetic
pairs), exported to ONNX (ids, mask, pixels, has_image → probabilities) with parity and an int8
variant, registered; `predict` CSVs with a text-only fallback and the seed's `guid,tag` file;
posts and comments scored into `predictions` with `text_only`; the `daily_sentiment` view."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sentiment_fixtures import pairs_frame, write_pairs

from emopulse.serving import export_and_register, load_scorer, predict_csv, score_model
from emopulse.training.sentiment.model import LABELS
from emopulse.training.sentiment.train import profile_config, train_sentiment
from emopulse.warehouse import Warehouse


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs"), n=60, seed=2)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, pairs: Path, tiny_encoder: Path):
    home = tmp_path_factory.mktemp("home")
    cfg = profile_config("light", text_encoder_path=str(tiny_encoder), text_prefix="", epochs=4, folds=3,
                         quality_records=20, ensemble=2)  # two heads: the ensemble exports as one graph
    result = train_sentiment(pairs_frame(pairs), out_dir=home / "runs" / "sentiment", config=cfg,
                             cache_dir=home / "cache", progress=False)
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        record = export_and_register(wh, result)
    return home, result, record


def test_the_registered_model_carries_its_fold_figures_and_passes_parity(registered) -> None:
    home, result, record = registered
    metrics = record.metrics
    assert metrics["evaluation"] == "stratified_folds(k=3)"
    for name in ("weighted_f1", "late_fusion_weighted_f1", "tfidf_weighted_f1", "image_probe_weighted_f1",
                 "majority_weighted_f1", "neutral_f1", "macro_f1", "accuracy"):
        assert 0 <= metrics[name] <= 1, name
    assert record.params["entity_kinds"] == ["post", "comment"] and record.params["preprocessor"] == "image_text"
    export = json.loads((home / record.artifacts["export"]).read_text(encoding="utf-8"))
    assert export["inputs"] == ["input_ids", "attention_mask", "pixels", "has_image"]
    assert metrics["parity"]["cpu"] == "ok" and metrics["onnx_max_abs_diff"] <= 1e-4
    shapes = [s["pixels"] for s in export["parity"]["cpu"]["shapes"]]
    assert len(shapes) >= 3 and len({s[0] for s in shapes}) >= 3  # batches the trace never saw
    assert "onnx_int8" in record.artifacts and metrics["int8"]["quality"]["records"] == 20
    summary = (home / record.artifacts["eval_summary"]).read_text(encoding="utf-8")
    assert "late fusion (TF-IDF + image probe)" in summary and "Confusion matrix" in summary


def test_predict_adds_the_label_its_probabilities_and_falls_back_to_text(registered, pairs: Path,
                                                                        tmp_path: Path) -> None:
    _, _, record = registered
    scorer = load_scorer(record, device="cpu", variant="fp32")  # int8 scales activations per batch
    rows = [("1000", (pairs / "data" / "1000.txt").read_text("utf-8"), str(pairs / "data" / "1000.jpg")),
            ("1001", "哈哈哈 加油冲鸭", "missing.jpg"),  # relative to the CSV: not there
            ("1002", "呜呜太感动", "broken.jpg"), ("1003", "围观吃瓜", ""),
            ("1004", "哈哈哈", "truncated.jpg")]  # a JPEG cut in half: its header reads, its pixels do not
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    whole = (pairs / "data" / "1004.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(whole[:len(whole) // 2])
    src = tmp_path / "in.csv"
    with open(src, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("guid", "text", "image"), *rows])
    summary = predict_csv(scorer, src, tmp_path / "out.csv", text_col="text", image_col="image",
                          tags_out=tmp_path / "tags.txt")
    assert (summary.rows, summary.scored, summary.missing_images) == (5, 5, 3)
    with open(tmp_path / "out.csv", encoding="utf-8") as f:
        out = list(csv.DictReader(f))
    assert list(out[0]) == ["guid", "text", "image", "label", "p_positive", "p_neutral", "p_negative", "text_only"]
    assert [r["text_only"] for r in out] == ["false", "true", "true", "true", "true"]
    want = scorer.predict([{"text": rows[0][1], "image": rows[0][2]}, {"text": rows[1][1], "image": None}]).values
    for row, probs in zip(out, want, strict=False):
        got = np.array([float(row[f"p_{lab}"]) for lab in LABELS])
        np.testing.assert_allclose(got, probs, atol=1e-5)
        assert row["label"] == LABELS[int(np.argmax(probs))] and abs(got.sum() - 1) < 1e-4
    tags = (tmp_path / "tags.txt").read_text(encoding="utf-8").splitlines()
    assert tags[0] == "guid,tag" and tags[1:] == [f"{r['guid']},{r['label']}" for r in out]


def test_posts_and_comments_are_scored_and_counted_per_day(registered, pairs: Path) -> None:
    home, _, record = registered
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        image = str(pairs / "data" / "1000.jpg")
        wh.con.execute("INSERT INTO posts (post_id, published_date) VALUES ('p1', DATE '2026-11-30'), "
                       "('p2', DATE '2026-11-30'), ('p3', DATE '2026-12-01')")
        wh.con.execute("INSERT INTO post_texts (post_id, text) VALUES ('p1', '哈哈哈'), ('p2', '呜呜太感动'), "
                       "('p3', '围观吃瓜')")
        whole = Path(image).read_bytes()
        (home / "cut.jpg").write_bytes(whole[:len(whole) // 2])  # a truncated JPEG: scored on its text
        wh.con.execute("INSERT INTO post_images (post_id, image_index, local_path) VALUES ('p1', 0, ?), "
                       "('p3', 0, 'cut.jpg')", [image])
        wh.con.execute("INSERT INTO comments (rpid, bvid, message, sentence, ctime) VALUES "
                       "(1, 'BV1', '哈哈哈[doge]', '哈哈哈', 1764547200), (2, 'BV1', '呜呜', '呜呜太感动', 1764550800)")
        summaries = {s.entity_kind: s for s in score_model(wh, model=record.model_id, device="cpu")}
        assert (summaries["post"].entities, summaries["comment"].entities) == (3, 2)
        flags = dict(wh.con.execute("SELECT entity_id, bool_and(text_only) FROM predictions WHERE model_id = ? "
                                    "GROUP BY entity_id", [record.model_id]).fetchall())
        assert flags == {"p1": False, "p2": True, "p3": True, "1": True, "2": True}
        daily = wh.con.execute("SELECT day::VARCHAR, entity_kind, sum(n), sum(share) FROM daily_sentiment "
                               "GROUP BY ALL ORDER BY 1, 2").fetchall()
        assert daily == [("2025-12-01", "comment", 2, 1.0), ("2026-11-30", "post", 2, 1.0),
                         ("2026-12-01", "post", 1, 1.0)]
        top = dict(wh.con.execute("SELECT entity_id, label FROM predictions WHERE model_id = ? AND rank = 1",
                                  [record.model_id]).fetchall())
        labels = wh.con.execute("SELECT label, n FROM daily_sentiment WHERE entity_kind = 'post' AND "
                                "day = DATE '2026-11-30' ORDER BY label").fetchall()
        assert sum(n for _, n in labels) == 2 and {lab for lab, _ in labels} == {top["p1"], top["p2"]}
        assert score_model(wh, model=record.model_id, device="cpu")[0].entities == 0  # nothing new


def test_a_gbk_file_is_read_as_gb18030_and_other_bytes_stay_unreadable(registered, tmp_path: Path) -> None:
    _, _, record = registered
    scorer = load_scorer(record, device="cpu", variant="fp32")
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("guid,text\n1,哈哈哈 加油冲鸭\n2,呜呜太感动\n".encode("gbk"))
    summary = predict_csv(scorer, gbk, tmp_path / "out.csv", text_col="text")
    assert (summary.encoding, summary.scored, summary.unreadable) == ("gb18030", 2, 0)
    with open(tmp_path / "out.csv", encoding="utf-8") as f:
        assert [r["text"] for r in csv.DictReader(f)] == ["哈哈哈 加油冲鸭", "呜呜太感动"]
    mixed = tmp_path / "mixed.csv"  # UTF-8 with one cp1252 row: that row alone is unreadable
    mixed.write_bytes("guid,text\n1,哈哈哈\n2,".encode() + "naïve".encode("cp1252") + b"\n")
    summary = predict_csv(scorer, mixed, tmp_path / "out2.csv", text_col="text")
    assert (summary.encoding, summary.scored, summary.unreadable) == ("utf-8", 1, 1)
