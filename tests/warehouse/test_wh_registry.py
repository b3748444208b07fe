"""Model registry and predictions."""

from __future__ import annotations

import pandas as pd
import pytest
from emopulse.warehouse import (
    Warehouse, latest_model, register_model, unscored_comments, unscored_posts, write_predictions,
)
from wh_builders import count


def test_versions_count_up_per_task(wh: Warehouse) -> None:
    args = dict(metrics={"top1": 0.4}, artifacts={"onnx": "/m.onnx"}, sha256="00")
    assert register_model(wh, model_id="e1", task="emoji", **args) == 1
    assert register_model(wh, model_id="s1", task="sentiment", **args) == 1
    assert register_model(wh, model_id="e2", task="emoji", params={"lr": 0.1}, **args) == 2
    assert register_model(wh, model_id="e1", task="emoji", **args) == 1  # same id: same version
    latest = latest_model(wh, "emoji")
    assert (latest["model_id"], latest["version"]) == ("e2", 2)
    assert latest["metrics"] == {"top1": 0.4} and latest["params"] == {"lr": 0.1}
    assert latest["artifacts"] == {"onnx": "/m.onnx"} and latest["files"] == {}
    assert latest_model(wh, "nothing") is None


def test_write_predictions_is_an_idempotent_upsert(wh: Warehouse) -> None:
    df = pd.DataFrame(
        {
            "model_id": ["e1"] * 4,
            "entity_kind": ["comment"] * 4,
            "entity_id": [1, 1, 2, 2],
            "label": ["[doge]", "[笑哭]", "[doge]", "[大哭]"],
            "score": [0.6, 0.3, 0.5, 0.2],
            "rank": [1, 2, 1, 2],
        }
    )
    assert write_predictions(wh, df) == 4
    write_predictions(wh, df.assign(score=df.score / 2))
    write_predictions(wh, df.assign(entity_kind="post"))  # the same ids as posts: other rows
    assert count(wh, "predictions") == 8
    got = wh.con.execute(
        "SELECT entity_id, score, scored_at IS NOT NULL FROM predictions WHERE rank = 1 "
        "AND entity_kind = 'comment' ORDER BY entity_id"
    ).fetchall()
    assert got == [("1", 0.3, True), ("2", 0.25, True)]


def test_write_predictions_refuses_an_unknown_entity_kind(wh: Warehouse) -> None:
    df = pd.DataFrame({"model_id": ["e1"], "entity_kind": ["video"], "entity_id": ["BV1"], "label": ["x"],
                       "score": [1.0], "rank": [1]})
    with pytest.raises(ValueError, match=r"unknown entity_kind \['video'\]"):
        write_predictions(wh, df)


def test_unscored_readers_anti_join_on_model_and_entity_kind(wh: Warehouse) -> None:
    wh.con.execute("INSERT INTO comments (rpid, sentence) VALUES (1, '哈哈'), (2, '好的'), (3, ''), (4, NULL)")
    wh.con.execute("INSERT INTO posts (post_id) VALUES ('1'), ('p2')")
    wh.con.execute("INSERT INTO post_texts (post_id, text) VALUES ('1', '标题'), ('p2', '')")
    wh.con.execute("INSERT INTO post_images (post_id, image_index, local_path) VALUES ('p2', 1, 'b.png'), "
                   "('p2', 0, 'a.png')")
    assert unscored_comments(wh, "m")["rpid"].tolist() == [1, 2]  # no text, nothing to score
    assert unscored_posts(wh, "m")["post_id"].tolist() == ["1"]
    posts = unscored_posts(wh, "m", images=True)
    assert posts["post_id"].tolist() == ["1", "p2"] and posts["image_path"].fillna("-").tolist() == ["-", "a.png"]
    rows = {"model_id": ["m"], "entity_id": ["1"], "label": ["x"], "score": [1.0], "rank": [1]}
    write_predictions(wh, pd.DataFrame({**rows, "entity_kind": ["post"]}))  # post '1', not comment 1
    assert unscored_comments(wh, "m")["rpid"].tolist() == [1, 2]
    assert unscored_posts(wh, "m", images=True)["post_id"].tolist() == ["p2"]
    write_predictions(wh, pd.DataFrame({**rows, "entity_kind": ["comment"]}))
    assert unscored_comments(wh, "m")["rpid"].tolist() == [2]
    assert unscored_comments(wh, "other")["rpid"].tolist() == [1, 2]
