"""`emopulse import goemotions DIR`: GoEmotions' layout into `emotion_texts` and `emotion_labels` of a
real DuckDB file, bad rows named by file and line while the good rows load; `read_emotion_texts`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from emopulse.flows.cli import app
from emopulse.training.data import read_emotion_texts
from emopulse.warehouse import Warehouse
from typer.testing import CliRunner

runner = CliRunner()
LABELS = ["admiration", "anger", "joy", "neutral"]  # ids 0..3
REAL = Path("/work/shared/data/goemotions")


def _folder(root: Path, labels: list[str] = LABELS) -> Path:
    root.mkdir(parents=True)
    (root / "labels.txt").write_text("\n".join(labels), encoding="utf-8")
    (root / "train.tsv").write_text('so "great"\t0,2\tt1\nugh\t1\tt2\nwho knows\t3\tt3\nbad\t4\tt4\n'
                                    "missing\t2\n", encoding="utf-8")
    (root / "dev.tsv").write_bytes("太好了\t2\td1\n".encode("gb18030"))
    (root / "SOURCE.txt").write_text("where from\n", encoding="utf-8")
    return root


def _import(folder: Path, home: Path, *options: str):
    return runner.invoke(app, ["import", "goemotions", str(folder), "--home", str(home), *options])


def _said(result) -> str:
    """What the command printed, with the console's line wrapping undone."""
    return result.output.replace("\n", "")


def _tables(home: Path) -> tuple[list[tuple], list[tuple]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        texts = con.execute("SELECT * FROM emotion_texts ORDER BY source, split, text_id").fetchall()
        labels = con.execute("SELECT * FROM emotion_labels ORDER BY source, label_id").fetchall()
    return texts, labels


def test_the_command_loads_good_rows_and_labels_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    folder, home = _folder(tmp_path / "goemo"), tmp_path / "home"
    result = _import(folder, home)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {"source": "goemo", "folder": str(folder), "rows": 4, "splits": {"train": 3, "dev": 1},
                       "labels": 4, "encodings": {"dev.tsv": "gb18030"}, "skipped_files": ["SOURCE.txt"],
                       "bad_rows": 2, "errors": [
                           "train.tsv:4: label id 4 out of range 0..3",
                           "train.tsv:5: expected 3 tab-separated fields (text, label ids, id), got 2 field(s)"]}
    texts, labels = _tables(home)
    assert [row[:7] for row in texts] == [
        ("goemo", "dev", "d1", "太好了", ["joy"], "dev.tsv", 1),
        ("goemo", "train", "t1", 'so "great"', ["admiration", "joy"], "train.tsv", 1),
        ("goemo", "train", "t2", "ugh", ["anger"], "train.tsv", 2),
        ("goemo", "train", "t3", "who knows", ["neutral"], "train.tsv", 3)]
    assert [row[:3] for row in labels] == [("goemo", i, name) for i, name in enumerate(LABELS)]
    again = _import(folder, home)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == summary
    assert _tables(home) == (texts, labels)  # keyed upserts: no copies, and imported_at kept


def test_another_label_list_for_the_same_source_is_refused_before_writing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _import(_folder(tmp_path / "a" / "goemo"), home).exit_code == 0
    before = _tables(home)
    other = _folder(tmp_path / "b" / "goemo", labels=["admiration", "annoyance", "joy", "neutral"])
    result = _import(other, home)
    assert result.exit_code == 1
    assert "another label list for source 'goemo'" in _said(result)
    assert "label 1 is 'anger' in the warehouse, 'annoyance' in labels.txt" in _said(result)
    assert _tables(home) == before
    assert _import(other, home, "--source", "goemo_b").exit_code == 0
    texts, _ = _tables(home)
    assert {row[0] for row in texts} == {"goemo", "goemo_b"}


def test_a_folder_without_a_split_file_or_labels_txt_fails_with_a_clear_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    no_split = tmp_path / "no_split"
    no_split.mkdir()
    (no_split / "labels.txt").write_text("joy\n", encoding="utf-8")
    result = _import(no_split, home)
    assert result.exit_code == 1 and "no split file (train.tsv, dev.tsv, test.tsv)" in _said(result)
    no_labels = _folder(tmp_path / "no_labels")
    (no_labels / "labels.txt").unlink()
    result = _import(no_labels, home)
    assert result.exit_code == 1 and "labels.txt: no such file" in _said(result)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "labels.txt").write_text("joy\n", encoding="utf-8")
    (only_bad / "test.tsv").write_text("x\t1\tq\n", encoding="utf-8")
    result = _import(only_bad, home)
    assert result.exit_code == 1 and "no good row in" in _said(result)
    assert json.loads(result.stdout)["errors"] == ["test.tsv:1: label id 1 out of range 0..0"]


def test_read_emotion_texts_gives_rows_and_label_names_and_refuses_mixed_label_lists(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Warehouse.open(home / "warehouse.duckdb", command="pytest") as wh:
        frame, labels = read_emotion_texts(wh)
        assert frame.empty and list(frame.columns) == ["source", "split", "text_id", "text", "labels"]
        assert labels == []
    assert _import(_folder(tmp_path / "goemo"), home).exit_code == 0
    assert _import(_folder(tmp_path / "copy"), home).exit_code == 0  # the same label list
    with Warehouse.open(home / "warehouse.duckdb", command="pytest") as wh:
        frame, labels = read_emotion_texts(wh)
        assert labels == LABELS
        assert frame[["source", "split", "text_id"]].values.tolist()[:3] == [
            ["copy", "dev", "d1"], ["copy", "train", "t1"], ["copy", "train", "t2"]]
        assert len(frame) == 8 and frame["labels"].iloc[1] == ["admiration", "joy"]
    assert _import(_folder(tmp_path / "other", labels=["joy", "anger", "admiration", "neutral"]), home).exit_code == 0
    with Warehouse.open(home / "warehouse.duckdb", command="pytest") as wh:
        with pytest.raises(ValueError, match=r"different label lists \(copy, goemo, other\)"):
            read_emotion_texts(wh)
        frame, labels = read_emotion_texts(wh, "other")
        assert labels == ["joy", "anger", "admiration", "neutral"] and set(frame["source"]) == {"other"}
        assert frame["labels"].iloc[1] == ["joy", "admiration"]  # t1: ids 0,2 of this list
        assert read_emotion_texts(wh, "absent")[0].empty and read_emotion_texts(wh, "absent")[1] == []


@pytest.mark.skipif(not (REAL / "train.tsv").is_file(), reason="no ../shared/data/goemotions here")
def test_the_real_goemotions_folder_loads_whole(tmp_path: Path) -> None:
    home = tmp_path / "home"
    started = time.monotonic()
    result = _import(REAL, home)
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["splits"] == {"train": 43_410, "dev": 5_426} and summary["rows"] == 48_836
    assert summary["labels"] == 28 and summary["bad_rows"] == 0 and summary["encodings"] == {}
    assert summary["skipped_files"] == ["SOURCE.txt", "ekman/"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT split, count(*) FROM emotion_texts GROUP BY split ORDER BY split").fetchall() == [
            ("dev", 5_426), ("train", 43_410)]
        assert con.execute("SELECT name FROM emotion_labels WHERE label_id = 27").fetchall() == [("neutral",)]
        assert con.execute("SELECT text, labels FROM emotion_texts WHERE split = 'train' AND text_id = 'eebbqej'"
                           ).fetchall() == [("My favourite food is anything I didn't have to cook myself.", ["neutral"])]
    assert took < 60, took
