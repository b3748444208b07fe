"""Model registry and predictions."""

from __future__ import annotations

import pandas as pd
from emopulse.warehouse import Warehouse, latest_model, register_model, write_predictions
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
    assert latest["artifacts"] == {"onnx": "/m.onnx"}
    assert latest_model(wh, "nothing") is None


def test_write_predictions_is_an_idempotent_upsert(wh: Warehouse) -> None:
    df = pd.DataFrame(
        {
            "model_id": ["e1"] * 4,
            "task": ["emoji"] * 4,
            "entity_id": [1, 1, 2, 2],
            "rank": [1, 2, 1, 2],
            "label": ["[doge]", "[笑哭]", "[doge]", "[大哭]"],
            "score": [0.6, 0.3, 0.5, 0.2],
        }
    )
    assert write_predictions(wh, df) == 4
    write_predictions(wh, df.assign(score=df.score / 2))
    assert count(wh, "predictions") == 4
    got = wh.con.execute(
        "SELECT entity_id, score, scored_at IS NOT NULL FROM predictions WHERE rank = 1 "
        "ORDER BY entity_id"
    ).fetchall()
    assert got == [("1", 0.3, True), ("2", 0.25, True)]
