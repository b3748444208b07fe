"""`emopulse import pairs DIR`: the multimodal seed's layout into `sentiment_pairs` of a real DuckDB
file, with every kind of bad row named by file and line while the good rows load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from emopulse.flows.cli import app
from emopulse.ingest.pairs import decode_text, read_pairs
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()


def _image(path: Path, colour: tuple[int, int, int]) -> None:
    Image.new("RGB", (16, 12), colour).save(path, format="JPEG")


@pytest.fixture
def pairs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mm"
    data = root / "data"
    data.mkdir(parents=True)
    texts = {"1": "what a lovely day #sun".encode(), "2": "我很难过".encode("gbk"), "3": b"meh",
             "4": "no image for me".encode(), "5": b"broken image", "6": b"\xff\xfe\xfa\xfb\xfc",
             "7": "not listed right".encode(), "8": "unlabelled one".encode(), "9": "again".encode()}
    for guid, raw in texts.items():
        (data / f"{guid}.txt").write_bytes(raw)
    for guid, colour in (("1", (250, 200, 0)), ("2", (0, 0, 90)), ("3", (128, 128, 128)), ("6", (1, 2, 3)),
                         ("7", (9, 9, 9)), ("8", (50, 60, 70)), ("9", (1, 1, 1)), ("10", (5, 5, 5))):
        _image(data / f"{guid}.jpg", colour)
    (data / "5.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "train.txt").write_text(
        "guid,tag\n1,positive\n2,negative\n3,neutral\n4,positive\n5,negative\n6,neutral\n7,happy\n"
        "8\n1,negative\n10,positive\n", encoding="utf-8")
    (root / "test_without_label.txt").write_text("guid,tag\n8,null\n9,\n", encoding="utf-8")
    (root / "SOURCE.txt").write_text("Source repo: somewhere\n", encoding="utf-8")
    return root


def test_good_rows_load_and_every_bad_row_is_named_with_its_file_and_line(pairs_dir: Path) -> None:
    read = read_pairs(pairs_dir)
    assert read.source == "mm" and read.skipped_files == ["SOURCE.txt"]
    got = {p.guid: (p.label, p.text, p.list_file) for p in read.pairs}
    assert got == {"1": ("positive", "what a lovely day #sun", "train.txt"),
                   "2": ("negative", "我很难过", "train.txt"),  # GBK text, decoded as gb18030
                   "3": ("neutral", "meh", "train.txt"),
                   "8": (None, "unlabelled one", "test_without_label.txt"),  # 'null': unlabelled
                   "9": (None, "again", "test_without_label.txt")}  # empty tag: unlabelled
    assert read.lists == {"test_without_label.txt": 2, "train.txt": 3}
    errors = "\n".join(read.errors)
    for expected in ("train.txt:5: guid 4: no image file", "train.txt:6: guid 5: image",
                     "train.txt:7: guid 6: text", "neither UTF-8 nor gb18030",
                     "train.txt:8: unknown tag 'happy'", "train.txt:9: expected 'guid,tag'",
                     "train.txt:10: guid 1 listed again (first at train.txt:2)", "train.txt:11: guid 10: no text file"):
        assert expected in errors, expected
    assert len(read.errors) == 7
    first = next(p for p in read.pairs if p.guid == "1")
    assert first.image_sha256 == hashlib.sha256((pairs_dir / "data" / "1.jpg").read_bytes()).hexdigest()
    assert Path(first.image_path).is_absolute() and Path(first.image_path).is_file()


def test_the_command_upserts_into_the_warehouse_and_a_second_run_changes_nothing(pairs_dir: Path,
                                                                               tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = runner.invoke(app, ["import", "pairs", str(pairs_dir), "--home", str(home)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 5 and summary["bad_rows"] == 7
    assert summary["labels"] == {"positive": 1, "negative": 1, "neutral": 1, "unlabelled": 2}
    query = "SELECT source, guid, label, text, imported_at FROM sentiment_pairs ORDER BY guid"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        first = con.execute(query).fetchall()
    assert [(r[0], r[1], r[2]) for r in first] == [("mm", "1", "positive"), ("mm", "2", "negative"),
                                                    ("mm", "3", "neutral"), ("mm", "8", None), ("mm", "9", None)]
    (pairs_dir / "data" / "3.txt").write_text("meh, really", encoding="utf-8")  # an edited text
    again = runner.invoke(app, ["import", "pairs", str(pairs_dir), "--home", str(home)])
    assert again.exit_code == 0, again.output
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        second = con.execute(query).fetchall()
    assert len(second) == 5  # keyed by (source, guid): no copies
    assert second[2][3] == "meh, really" and second[2][4] == first[2][4]  # the text updated, first import kept


def test_a_folder_without_a_list_or_without_good_rows_is_refused(tmp_path: Path, pairs_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("just notes\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no guid,tag list"):
        read_pairs(empty)
    bad = tmp_path / "bad"
    (bad / "data").mkdir(parents=True)
    (bad / "train.txt").write_text("guid,tag\n1,positive\n", encoding="utf-8")  # no data files
    result = runner.invoke(app, ["import", "pairs", str(bad), "--home", str(tmp_path / "home")])
    assert result.exit_code == 1 and "no good pair" in result.output
    assert "train.txt:2: guid 1: no text file" in json.loads(result.stdout)["errors"][0]


def test_decoding_tries_utf8_then_gb18030() -> None:
    assert decode_text("\ufeff好的".encode()) == "好的"  # a BOM is dropped
    assert decode_text("好的".encode("gbk")) == "好的"
    with pytest.raises(ValueError, match="neither UTF-8 nor gb18030"):
        decode_text(b"\xff\xfe\xfa\xfb")
