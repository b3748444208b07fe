"""The registry: model folders that score on their own, paths relative to the home (the home can
move), every file scoring reads checked against its sha256, encoders named by fingerprint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emopulse.serving import ArtifactMismatch, ModelRecord, export_and_register, find_model, load_scorer, sha256_file
from emopulse.training.result import TrainResult
from emopulse.warehouse import Warehouse, latest_model

TEXTS = ["狗头保命", "哈哈哈", "好漂亮啊"]


@pytest.fixture(scope="module")
def bert_home(tmp_path_factory, bert_ranker: TrainResult) -> tuple[Path, ModelRecord]:
    """A home with the BERT ranker registered (its tokenizer's files bundled); tests copy it."""
    home = tmp_path_factory.mktemp("bert-home") / "home"
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        record = export_and_register(wh, bert_ranker)
    return home, record


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "home"
    shutil.copytree(src, dst)
    return dst


def test_the_folder_and_the_row_hold_everything_with_paths_relative_to_the_home(bert_home, bert_ranker) -> None:
    home, record = bert_home
    folder = home / "models" / "emoji" / record.model_id
    assert record.folder == folder
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"model.onnx", "model.int8.onnx", "head.json", "preprocessor.json", "export.json", "SHA256SUMS",
            "tokenizer_files/tokenizer.json"} <= names
    assert all(not Path(p).is_absolute() and p.startswith(f"models/emoji/{record.model_id}/")
               for p in [*record.artifacts.values(), *record.files])
    assert {p.removeprefix(f"models/emoji/{record.model_id}/") for p in record.files} == names - {"SHA256SUMS"}
    assert all(sha256_file(home / p) == h for p, h in record.files.items())
    assert record.sha256 == record.files[record.artifacts["onnx"]]
    sums = dict(line.split("  ")[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert sums["model.onnx"] == record.sha256
    pre = json.loads((folder / "preprocessor.json").read_text(encoding="utf-8"))
    assert pre["tokenizer"]["path"] == "tokenizer_files" and pre["clean"] == "strip_emotes"
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        row = wh.con.execute("SELECT metrics::VARCHAR || artifacts::VARCHAR || params::VARCHAR || files::VARCHAR "
                             "FROM models").fetchall()[0][0]
        assert ModelRecord.from_row(latest_model(wh, "emoji"), home=home) == record == find_model(wh, task="emoji")
    assert str(home) not in row and '"/' not in row  # no absolute path of this machine anywhere
    assert record.params["encoders"] == {"text": "tiny-bert-0"}
    encoder_folder = Path(bert_ranker.config["text_encoder_path"])
    assert encoder_folder.is_absolute() and record.params["config"]["text_encoder_path"] == encoder_folder.name
    assert record.metrics["parity"]["cpu"] == "ok" and record.metrics["parity"]["cuda"] in ("ok", "skipped")
    assert record.metrics["onnx_max_abs_diff"] < 1e-4


def test_a_moved_home_keeps_every_model_usable(bert_home, tmp_path) -> None:
    src, record = bert_home
    before = load_scorer(record, device="cpu").predict(TEXTS).values
    moved = tmp_path / "elsewhere" / "home"
    shutil.move(str(_copy(src, tmp_path)), moved)
    assert not (tmp_path / "home").exists()
    with Warehouse.open(moved / "warehouse.duckdb", command="test") as wh:
        found = find_model(wh, task="emoji")
    assert found.home == moved and found.folder == moved / "models" / "emoji" / record.model_id
    scorer = load_scorer(found, device="cpu")
    assert Path(scorer.preprocessor.tokenizer.path).is_relative_to(moved)  # its own tokenizer files, moved too
    np.testing.assert_allclose(scorer.predict(TEXTS).values, before, atol=1e-9)


def _swap_labels(path: Path) -> None:
    head = json.loads(path.read_text(encoding="utf-8"))
    head["labels"][0], head["labels"][1] = head["labels"][1], head["labels"][0]
    path.write_text(json.dumps(head, ensure_ascii=False), encoding="utf-8")


def _no_cleaning(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["clean"] = "none"
    path.write_text(json.dumps(data), encoding="utf-8")


def _other_vocab(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    a, b = sorted(vocab)[5:7]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize(("name", "change"), [("head.json", _swap_labels), ("preprocessor.json", _no_cleaning),
                                              ("tokenizer_files/tokenizer.json", _other_vocab),
                                              ("model.int8.onnx", lambda p: p.write_bytes(p.read_bytes()[:-8]))])
def test_a_changed_file_is_refused_by_name(bert_home, tmp_path, name: str, change) -> None:
    src, record = bert_home
    home = _copy(src, tmp_path)
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        record = find_model(wh, task="emoji")
    load_scorer(record, device="cpu", variant="int8")  # fine before the change
    change(record.folder / name)
    with pytest.raises(ArtifactMismatch, match=rf"model {record.model_id}: models/emoji/{record.model_id}/{name} "
                                               r"has sha256 \w+\.\.\., the registry says \w+\.\.\. "
                                               r"\(the file was changed or swapped"):
        load_scorer(record, device="cpu", variant="int8")


def test_a_missing_file_is_named(bert_home, tmp_path) -> None:
    src, record = bert_home
    home = _copy(src, tmp_path)
    (home / record.artifacts["head"]).unlink()
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        record = find_model(wh, task="emoji")
    with pytest.raises(FileNotFoundError, match=r"head\.json is missing"):
        load_scorer(record, device="cpu")


def test_a_model_of_another_task_or_none_at_all_is_refused(bert_home, tmp_path) -> None:
    home = _copy(bert_home[0], tmp_path)
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        with pytest.raises(LookupError, match="is a 'emoji' model, not 'emotions'"):
            find_model(wh, model_id=bert_home[1].model_id, task="emotions")
        with pytest.raises(LookupError, match="no model registered for task 'trend'"):
            find_model(wh, task="trend")
        with pytest.raises(LookupError, match="no model 'missing'"):
            find_model(wh, model_id="missing", task=None)
