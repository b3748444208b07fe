"""The promotion gate on a real home: the first emotions model becomes champion with a frozen set
drawn before it trained; a challenger trained on shuffled labels is rejected with both figures
recorded; `models list|show|promote|rollback|archive` and `gc` act on the registry."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from emotion_fixtures import write_goemotions
from typer.testing import CliRunner

from emopulse.flows.cli import app

runner = CliRunner()


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _train(home: Path) -> dict:
    out = _cli("train", "emotions", "--profile", "light", "--epochs", "6", "--quiet", "--home", str(home))
    return json.loads(out[out.index("{"):])


def _shuffle_training_labels(home: Path) -> None:
    """Permute the labels of every text outside the frozen set (the frozen texts keep theirs)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        rows = con.execute("""
            SELECT source, split, text_id, labels FROM emotion_texts
            WHERE source || ':' || text_id NOT IN (SELECT key FROM frozen_sets WHERE task = 'emotions')
            ORDER BY text_id""").fetchall()
        order = np.random.default_rng(0).permutation(len(rows))
        con.executemany("UPDATE emotion_texts SET labels = ? WHERE source = ? AND split = ? AND text_id = ?",
                        [[rows[j][3], s, sp, t] for (s, sp, t, _), j in zip(rows, order)])
    finally:
        con.close()


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path):
    home = tmp_path_factory.mktemp("gate-home")
    folder = write_goemotions(tmp_path_factory.mktemp("go"), train=400, dev=90, seed=1)
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOPULSE_EMOJI_TEXT_ENCODER", str(tiny_encoder))
    mp.setenv("EMOPULSE_GATE_FROZEN_SHARE", "0.25")
    _cli("import", "goemotions", str(folder), "--home", str(home))
    champion = _train(home)
    _shuffle_training_labels(home)
    _cli("publish", "--home", str(home))  # training reads the published snapshot
    challenger = _train(home)
    yield home, champion, challenger
    mp.undo()


def test_the_first_model_is_champion_and_never_saw_the_frozen_set(gated) -> None:
    home, champion, _ = gated
    assert champion["decision"]["action"] == "promote" and champion["decision"]["champion_id"] is None
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        frozen = con.execute("SELECT count(*), min(key_kind) FROM frozen_sets WHERE task = 'emotions'").fetchall()[0]
        train_texts = con.execute("SELECT count(*) FROM emotion_texts WHERE split = 'train'").fetchall()[0][0]
    finally:
        con.close()
    assert frozen[1] == "text" and frozen[0] == round(0.25 * train_texts)
    shown = json.loads(_cli("models", "show", champion["model_id"], "--home", str(home)))
    assert shown["status"] == "champion"
    assert shown["metrics"]["texts"]["train"] == train_texts - frozen[0]  # trained on the rest only


def test_a_challenger_trained_on_shuffled_labels_is_rejected_with_both_figures(gated) -> None:
    home, champion, challenger = gated
    decision = challenger["decision"]
    assert decision["action"] == "reject" and decision["champion_id"] == champion["model_id"]
    assert decision["model_score"] < decision["champion_score"] - 0.005, decision
    listed = json.loads(_cli("models", "list", "--task", "emotions", "--format", "json", "--home", str(home)))
    status = {m["model_id"]: m["status"] for m in listed}
    assert status == {champion["model_id"]: "champion", challenger["model_id"]: "rejected"}
    shown = json.loads(_cli("models", "show", challenger["model_id"], "--home", str(home)))
    (recorded,) = [d for d in shown["decisions"] if d["action"] == "reject"]
    assert recorded["model_score"] == pytest.approx(decision["model_score"])
    assert recorded["champion_score"] == pytest.approx(decision["champion_score"])


def test_promote_rollback_archive_and_gc(gated) -> None:
    home, champion, challenger = gated
    promoted = json.loads(_cli("models", "promote", challenger["model_id"], "--home", str(home)))
    assert promoted["action"] == "manual-promote" and promoted["model_score"] is not None
    result = runner.invoke(app, ["models", "archive", challenger["model_id"], "--home", str(home)])
    assert result.exit_code == 1 and "is the emotions champion" in result.output
    back = json.loads(_cli("models", "rollback", "emotions", "--home", str(home)))
    assert back["model_id"] == champion["model_id"]
    _cli("models", "archive", challenger["model_id"], "--home", str(home))
    listed = json.loads(_cli("models", "list", "--format", "json", "--home", str(home)))
    assert {m["model_id"]: m["status"] for m in listed} == {champion["model_id"]: "champion",
                                                            challenger["model_id"]: "archived"}
    folder = home / Path(challenger["artifacts"]["onnx"]).parent
    assert folder.is_dir()
    dry = json.loads(_cli("gc", "--dry-run", "--home", str(home)))
    assert dry["models"] == [] and folder.is_dir()  # gc_keep_models keeps 3 non-champions
    runner.invoke(app, ["score", "--task", "emotions", "--home", str(home)])
    import os

    os.environ["EMOPULSE_GC_KEEP_MODELS"] = "0"
    try:
        freed = json.loads(_cli("gc", "--home", str(home)))
    finally:
        del os.environ["EMOPULSE_GC_KEEP_MODELS"]
    assert freed["models"] == [challenger["model_id"]] and freed["model_bytes"] > 0 and not folder.exists()
    listed = json.loads(_cli("models", "list", "--format", "json", "--home", str(home)))
    assert [m["model_id"] for m in listed] == [champion["model_id"]]  # the champion is never removed


def test_a_scheduled_retrain_is_one_fit_judged_by_the_gate(gated, monkeypatch) -> None:
    home, champion, _ = gated
    monkeypatch.setenv("EMOPULSE_RETRAIN_PROFILE", "light")
    monkeypatch.setenv("EMOPULSE_JOBS", '{"retrain-emotions": {"params": {"task": "emotions", "epochs": 6}}}')
    out = _cli("job", "retrain-emotions", "--home", str(home))
    assert "retrain-emotions" in out and "completed" in out
    listed = json.loads(_cli("models", "list", "--task", "emotions", "--format", "json", "--home", str(home)))
    newest = max(listed, key=lambda m: m["version"])
    shown = json.loads(_cli("models", "show", newest["model_id"], "--home", str(home)))
    assert "tfidf_dev_macro_f1" not in shown["metrics"] and "A_mse_dev_macro_f1" not in shown["metrics"]  # one fit
    (decision,) = [d for d in shown["decisions"] if d["model_id"] == newest["model_id"]]
    assert decision["action"] in ("promote", "reject") and decision["champion_id"] == champion["model_id"]
    assert decision["model_score"] is not None and decision["champion_score"] is not None
