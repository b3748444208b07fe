"""`read_goemotions`: GoEmotions' split files and labels.txt, every kind of bad row named with its
file and line while the good rows load."""

from __future__ import annotations

from pathlib import Path

import pytest
from emopulse.ingest.goemotions import read_goemotions, split_lines

LABELS = ["admiration", "amusement", "anger", "joy", "neutral"]  # ids 0..4


def _folder(root: Path, files: dict[str, bytes | str], labels: str | None = "\n".join(LABELS)) -> Path:
    root.mkdir(parents=True)
    if labels is not None:
        (root / "labels.txt").write_text(labels, encoding="utf-8")  # no final newline, as the real one
    for name, content in files.items():
        (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def test_good_rows_load_with_their_label_names_and_skipped_files_are_listed(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "goemo", {
        "train.tsv": 'He said "wow" and left\t0,3\taa1\nmeh\t4\taa2\nboth twice\t3,0,3\taa3\n',
        "dev.tsv": "fine\t2\taa1\n",  # the same id in another split is another row
        "SOURCE.txt": "where it came from\n",
    })
    (folder / "ekman").mkdir()
    read = read_goemotions(folder)
    assert read.source == "goemo" and read.labels == tuple(LABELS)
    assert [(r.split, r.text_id, r.text, r.labels, r.file, r.line) for r in read.rows] == [
        ("train", "aa1", 'He said "wow" and left', ("admiration", "joy"), "train.tsv", 1),  # quotes kept
        ("train", "aa2", "meh", ("neutral",), "train.tsv", 2),
        ("train", "aa3", "both twice", ("admiration", "joy"), "train.tsv", 3),  # id order, each once
        ("dev", "aa1", "fine", ("anger",), "dev.tsv", 1)]
    assert read.splits == {"train": 3, "dev": 1} and read.errors == [] and read.encodings == {}
    assert read.skipped_files == ["SOURCE.txt", "ekman/"]
    assert read_goemotions(folder, source="mine").source == "mine"


def test_every_bad_row_is_named_with_its_file_and_line_and_the_good_rows_still_load(tmp_path: Path) -> None:
    lines = [
        "good one\t1\tg1",  # 1
        "out of range\t5\tb1",  # 2: 5 labels, ids 0..4
        "negative\t-1\tb2",  # 3
        "not a number\t1,x\tb3",  # 4
        "no labels\t\tb4",  # 5
        "\t2\tb5",  # 6: empty text
        "no id\t2\t",  # 7
        "two fields\t2",  # 8
        "four\tfields\t2\tb6",  # 9
        "good two\t4,0\tg2",  # 10
        "again\t3\tg1",  # 11: g1 twice
        "",  # 12: an empty line inside the file
        "empty piece\t1,,2\tb7",  # 13
        "good three\t4\tg3",  # 14
        "", "",  # trailing empty lines: fine
    ]
    read = read_goemotions(_folder(tmp_path / "bad", {"train.tsv": "\n".join(lines)}))
    assert [(r.text_id, r.labels, r.line) for r in read.rows] == [
        ("g1", ("amusement",), 1), ("g2", ("admiration", "neutral"), 10), ("g3", ("neutral",), 14)]
    assert read.splits == {"train": 3}
    assert read.errors == [
        "train.tsv:2: label id 5 out of range 0..4",
        "train.tsv:3: label id -1 out of range 0..4",
        "train.tsv:4: label id 'x' is not an integer",
        "train.tsv:5: no label id",
        "train.tsv:6: empty text",
        "train.tsv:7: empty id",
        "train.tsv:8: expected 3 tab-separated fields (text, label ids, id), got 2 field(s)",
        "train.tsv:9: expected 3 tab-separated fields (text, label ids, id), got 4 field(s)",
        "train.tsv:11: id g1 listed again (first at train.tsv:1); the first is kept",
        "train.tsv:12: expected 3 tab-separated fields (text, label ids, id), got an empty line",
        "train.tsv:13: empty label id in '1,,2'",
    ]


def test_a_gb18030_file_a_bom_and_crlf_or_cr_line_ends_are_read(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "enc", {
        "train.tsv": "我很开心\t3\tz1\r\n气死我了\t2\tz2\r\n".encode("gb18030"),
        "dev.tsv": "\ufeff好的\t4\tz3\rline\u2028sep\t0\tz4\r".encode(),  # CR only; U+2028 is no line end
        "test.tsv": b"\xff\xfe\x81\x30 neither\t1\tz5\n",
    }, labels="\ufeffadmiration\r\namusement\r\nanger\r\njoy\r\nneutral\r\n\r\n")
    read = read_goemotions(folder)
    assert read.labels == tuple(LABELS)  # BOM, CRLF and blank lines at the end
    assert [(r.split, r.text, r.labels) for r in read.rows] == [
        ("train", "我很开心", ("joy",)), ("train", "气死我了", ("anger",)),
        ("dev", "好的", ("neutral",)), ("dev", "line\u2028sep", ("admiration",))]
    assert read.encodings == {"train.tsv": "gb18030", "test.tsv": "mixed"}
    assert read.errors == ["test.tsv:1: bytes that are neither UTF-8 nor gb18030"]
    assert read.splits == {"train": 2, "dev": 2, "test": 0}


def test_one_undecodable_line_costs_that_line_not_the_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "mixed", {
        "train.tsv": "it’s great 😀\t3\ta1\n".encode() + b"bad \xe9\t2\ta2\n" + "fine\t0\ta3\n".encode()})
    read = read_goemotions(folder)
    assert [(r.text_id, r.line) for r in read.rows] == [("a1", 1), ("a3", 3)]
    assert read.errors == ["train.tsv:2: bytes that are neither UTF-8 nor gb18030"]


def test_the_test_split_is_read_when_present_and_any_single_split_is_enough(tmp_path: Path) -> None:
    read = read_goemotions(_folder(tmp_path / "only_test", {"test.tsv": "t\t0\tq1\n"}))
    assert read.splits == {"test": 1} and read.rows[0].split == "test"
    read = read_goemotions(_folder(tmp_path / "all", {"train.tsv": "a\t0\t1\n", "dev.tsv": "b\t1\t2\n",
                                                      "test.tsv": "c\t2\t3\nd\t3\t4\n"}))
    assert read.splits == {"train": 1, "dev": 1, "test": 2}


def test_a_folder_without_splits_or_labels_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no split file \(train.tsv, dev.tsv, test.tsv\)"):
        read_goemotions(_folder(tmp_path / "nosplit", {"train.csv": "a,0,1\n"}))
    with pytest.raises(ValueError, match=r"labels.txt: no such file"):
        read_goemotions(_folder(tmp_path / "nolabels", {"train.tsv": "a\t0\t1\n"}, labels=None))
    with pytest.raises(ValueError, match=r"labels.txt: no label names"):
        read_goemotions(_folder(tmp_path / "emptylabels", {"train.tsv": "a\t0\t1\n"}, labels="\n \n"))
    with pytest.raises(ValueError, match=r"labels.txt: label 'joy' named twice \(ids 1 and 2\)"):
        read_goemotions(_folder(tmp_path / "twice", {"train.tsv": "a\t0\t1\n"}, labels="anger\njoy\njoy\n"))
    with pytest.raises(ValueError, match=r"labels.txt:2: an empty line inside the list"):
        read_goemotions(_folder(tmp_path / "gap", {"train.tsv": "a\t0\t1\n"}, labels="anger\n\njoy\n"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        read_goemotions(tmp_path / "absent")


def test_split_lines_ends_lines_at_lf_crlf_or_cr_only() -> None:
    assert split_lines("a\r\nb\nc") == ["a", "b", "c"]
    assert split_lines("a\rb\r") == ["a", "b", ""]
    assert split_lines("a\x0cb\u2028c\n") == ["a\x0cb\u2028c", ""]
