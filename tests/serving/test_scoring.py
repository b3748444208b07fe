"""Scoring into a real DuckDB file: long `predictions`, only entities the model has not scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emopulse.serving import export_and_register, load_scorer, score_entities, score_model
from emopulse.serving.runtime import CPU
from emopulse.training.result import TrainResult
from emopulse.warehouse import Warehouse


def _fill(wh: Warehouse, comments: pd.DataFrame) -> pd.DataFrame:
    """The comments; the first three carry nothing but emotes (no text to score)."""
    frame = comments[["rpid", "bvid", "message", "sentence"]].copy()
    frame.loc[frame.index[:3], "sentence"] = ""
    wh.con.register("new_comments", frame)
    wh.con.execute("INSERT INTO comments (rpid, bvid, message, sentence) SELECT * FROM new_comments")
    wh.con.unregister("new_comments")
    return frame.iloc[3:]


def _predictions(wh: Warehouse, model_id: str) -> pd.DataFrame:
    return wh.con.execute("SELECT * FROM predictions WHERE model_id = ? ORDER BY entity_id, rank",
                          [model_id]).df()


def test_a_ranking_model_writes_its_top_k_per_comment_and_scores_each_comment_once(
        tmp_path, comments: pd.DataFrame, ranker: TrainResult) -> None:
    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        scored = _fill(wh, comments)
        record = export_and_register(wh, ranker)
        [summary] = score_model(wh, task="emoji", k=3, device="cpu", variant="fp32")
        scorer = load_scorer(record, device="cpu", variant="fp32")
        assert summary.provider == CPU == scorer.session.session.get_providers()[0]
        assert (summary.model_id, summary.entity_kind, summary.variant) == (record.model_id, "comment", "fp32")
        assert summary.entities == len(scored) and summary.rows == 3 * len(scored)
        preds = _predictions(wh, record.model_id)
        assert len(preds) == summary.rows and set(preds["entity_kind"]) == {"comment"}
        assert set(preds["entity_id"]) == set(scored["rpid"].astype(str))  # not the three emote-only ones
        assert all(ranks == [1, 2, 3] for ranks in preds.groupby("entity_id")["rank"].apply(list))

        # the rows are the scorer's own top-3 softmax probabilities of each comment's sentence
        labels, probs = scorer.predict(scored["sentence"].tolist()).top(3)
        want = pd.DataFrame({"entity_id": np.repeat(scored["rpid"].astype(str).to_numpy(), 3),
                             "rank": np.tile([1, 2, 3], len(scored)), "label": labels.reshape(-1),
                             "want": probs.reshape(-1)})
        both = preds.merge(want, on=["entity_id", "rank"], suffixes=("", "_want"))
        assert len(both) == len(preds) and (both["label"] == both["label_want"]).all()
        np.testing.assert_allclose(both["score"], both["want"], atol=1e-9)
        # the model learned the phrases: a comment saying 狗头保命 ranks [doge] first
        top = preds[preds["rank"] == 1].set_index("entity_id")["label"]
        doge = scored.loc[scored["sentence"].str.contains("狗头保命"), "rpid"].astype(str)
        assert len(doge) > 10 and (top.reindex(doge) == "[doge]").mean() > 0.9

        again = score_model(wh, model=record.model_id, k=3, device="cpu")  # reads nothing new
        assert [(s.entities, s.rows) for s in again] == [(0, 0)]
        assert len(_predictions(wh, record.model_id)) == len(preds)
        wh.con.execute("INSERT INTO comments (rpid, bvid, message, sentence) VALUES (99999, 'BV1', '狗头保命[doge]', '狗头保命')")
        [third] = score_model(wh, model=record.model_id, k=3, device="cpu", variant="fp32")
        assert (third.entities, third.rows) == (1, 3)
        assert _predictions(wh, record.model_id).query("entity_id == '99999' and rank == 1")["label"].item() == "[doge]"


def test_a_multilabel_model_writes_one_row_per_label_with_intensities(tmp_path, comments, multilabel) -> None:
    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        scored = _fill(wh, comments)
        record = export_and_register(wh, multilabel)
        [summary] = score_model(wh, task="emotions", device="cpu", k=2)  # k: top-k of a ranking model only
        n = len(multilabel.head.labels)
        assert summary.entities == len(scored) and summary.rows == n * len(scored)
        preds = _predictions(wh, record.model_id)
        per = preds.groupby("entity_id")
        assert all(labels == set(multilabel.head.labels) for labels in per["label"].apply(set))
        assert all(ranks == list(range(1, n + 1)) for ranks in per["rank"].apply(sorted))
        assert preds["score"].between(0, 1).all() and per["score"].apply(lambda s: s.is_monotonic_decreasing).all()
        assert per["score"].sum().max() > 1.0  # intensities, not a distribution


def test_posts_are_scored_with_their_first_readable_image(tmp_path, poster: TrainResult) -> None:
    from PIL import Image

    home = tmp_path / "home"
    (home / "images").mkdir(parents=True)
    Image.new("RGB", (40, 40), (10, 200, 10)).save(home / "images" / "p1.png")
    (home / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        wh.con.execute("INSERT INTO posts (post_id) VALUES ('p1'), ('p2'), ('p3'), ('p4'), ('p5')")
        wh.con.execute("INSERT INTO post_texts (post_id, text) VALUES ('p1', '好漂亮啊'), ('p2', '好漂亮啊'), "
                       "('p3', '好漂亮啊'), ('p4', '')")  # p4: no text and no image; p5: nothing at all
        wh.con.execute("INSERT INTO post_images (post_id, image_index, local_path) VALUES "
                       "('p1', 1, 'images/missing.png'), ('p1', 0, 'images/p1.png'), ('p3', 0, 'images/broken.png')")
        record = export_and_register(wh, poster)
        [summary] = score_model(wh, task="sentiment", device="cpu")
        assert (summary.entity_kind, summary.entities, summary.rows) == ("post", 3, 9)
        preds = _predictions(wh, record.model_id).pivot(index="entity_id", columns="label", values="score")
        scorer = load_scorer(record, device="cpu")
        want = scorer.predict([{"text": "好漂亮啊", "image": home / "images" / "p1.png"},
                               {"text": "好漂亮啊", "image": None}]).values
        np.testing.assert_allclose(preds.loc["p1", list(poster.head.labels)], want[0], atol=1e-9)
        np.testing.assert_allclose(preds.loc["p2", list(poster.head.labels)], want[1], atol=1e-9)
        np.testing.assert_allclose(preds.loc["p3", list(poster.head.labels)], want[1], atol=1e-9)  # broken: no image
        assert score_model(wh, task="sentiment", device="cpu")[0].entities == 0


def test_score_entities_refuses_an_unknown_entity_kind(tmp_path, ranker) -> None:
    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        scorer = load_scorer(export_and_register(wh, ranker), device="cpu")
        with pytest.raises(ValueError, match=r"unknown entity_kind 'video': one of \['comment', 'post', 'text'\]"):
            score_entities(wh, scorer, entity_kind="video", frame=pd.DataFrame({"id": [1], "t": ["x"]}),
                           id_col="id", text_col="t")
        texts = pd.DataFrame({"id": ["a", "b"], "t": ["狗头保命", "哈哈哈"]})
        summary = score_entities(wh, scorer, entity_kind="text", frame=texts, id_col="id", text_col="t", k=2)
        assert (summary.entities, summary.rows) == (2, 4)


def test_scoring_without_a_registered_model_says_so(tmp_path) -> None:
    with Warehouse.open(tmp_path / "warehouse.duckdb", command="test") as wh:
        with pytest.raises(LookupError, match="no model registered for task 'emoji'"):
            score_model(wh, task="emoji")
        with pytest.raises(LookupError, match="no model 'missing'"):
            score_model(wh, model="missing")
