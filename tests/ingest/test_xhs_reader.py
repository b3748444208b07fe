"""MediaCrawler Xiaohongshu files: JSON array, JSON Lines, CSV; bad rows named, good rows kept."""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from emopulse.ingest.posts import PostFileError
from emopulse.ingest.xhs import GIVEN_TIME, ID_TIME, read_xhs, xhs_files
from xhs_samples import comment, line_of, note, write_json_array


def test_json_array_of_notes(tmp_path: Path) -> None:
    batch = read_xhs(write_json_array(tmp_path / "search_contents_2024-04-08.json", [note()]))
    (post,) = batch.posts
    assert (post.post_id, post.title, post.user_id, post.ip_location) == (
        "6612057b000000001a00ce44", "今日穿搭", "5a5e0afb11be1017b83be966", "上海")
    assert post.published_date == date(2024, 4, 7) and post.date_resolution == GIVEN_TIME
    assert post.tags == ("ootd", "穿搭")
    (metrics,) = batch.metrics
    assert (metrics.likes, metrics.collects, metrics.comments, metrics.shares) == (12_000, 3_000, 88, None)
    assert metrics.observed_at == datetime.fromtimestamp(1_712_500_000, UTC)  # last_modify_ts
    assert [(i.image_index, i.url) for i in batch.images] == [
        (0, "https://sns-img.example.invalid/1.jpg"), (1, "https://sns-img.example.invalid/2.jpg")]
    (text,) = batch.texts
    assert text.text == "今日穿搭 好看吗"  # title repeated by desc counts once; tags and emotes out
    assert text.hashtags == ("ootd", "穿搭")
    assert text.emotes == ("[笑哭R]", "😍")


def test_a_bad_count_rejects_its_record_naming_file_and_line(tmp_path: Path) -> None:
    records = [note(), note("6612057b000000001a00ce45", liked_count="很多"), note("6612057b000000001a00ce46")]
    path = write_json_array(tmp_path / "notes.json", records)
    batch = read_xhs(path)
    assert [p.post_id for p in batch.posts] == ["6612057b000000001a00ce44", "6612057b000000001a00ce46"]
    (error,) = batch.skipped
    # the record starts on the line of its opening brace, just above its note_id
    assert error.path == str(path) and error.line == line_of(path, "6612057b000000001a00ce45") - 1
    assert "liked_count" in error.message and "很多" in error.message
    assert str(error).startswith(f"{path}:{error.line}: ")


def test_jsonl_comments_and_a_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "comments.jsonl"
    path.write_text(json.dumps(comment(), ensure_ascii=False) + "\n{not json\n"
                    + json.dumps(comment("661300000000000000000002", parent_comment_id="661300000000000000000001",
                                         like_count=""), ensure_ascii=False) + "\n", encoding="utf-8")
    batch = read_xhs(path)
    first, second = batch.comments
    assert (first.likes, first.sub_comments, first.parent_comment_id) == (100_000, 2, None)
    assert first.emotes == ("[赞R]", "[赞R]") and first.text == "太好看了 链接"
    assert (second.likes, second.parent_comment_id) == (None, "661300000000000000000001")
    assert [(e.line, e.message.split(" (")[0]) for e in batch.skipped] == [(2, "invalid JSON")]
    assert not batch.posts


def test_csv_notes_without_last_modify_ts_are_observed_at_the_files_mtime(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    row = note(time="", last_modify_ts="")
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
        writer.writerow(note("6612057b000000001a00ce47", collected_count="1.2.3"))
    os.utime(path, (1_715_000_000, 1_715_000_000))
    batch = read_xhs(path)
    (post,) = batch.posts
    assert post.date_resolution == ID_TIME and post.published_date == date(2024, 4, 7)  # from the id
    assert batch.metrics[0].observed_at == datetime.fromtimestamp(1_715_000_000, UTC)
    (error,) = batch.skipped
    assert error.line == 3 and "collected_count" in error.message


def test_downloaded_images_are_linked_by_note_and_index(tmp_path: Path) -> None:
    path = write_json_array(tmp_path / "data" / "xhs" / "json" / "notes.json", [note()])
    image = tmp_path / "data" / "xhs" / "images" / "6612057b000000001a00ce44" / "1.jpg"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"jpeg")
    batch = read_xhs(path)
    assert [i.local_path for i in batch.images] == [None, str(image.resolve())]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("garbage.json", "<html>rate limited</html>", "not JSON"),
        ("empty.json", "  \n", "empty"),
        ("other.csv", "a,b\n1,2\n", "no note_id or comment_id"),
        ("nothing.json", '[{"foo": 1}]', "no note or comment could be read"),
    ],
)
def test_unreadable_files_are_refused_as_a_whole(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PostFileError, match=message) as info:
        read_xhs(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("cut", "message", "complete"),
    [
        (lambda t: t[: t.index("6612057b000000001a00ce46")], "JSON array cut short", 2),
        (lambda t: t[: t.rindex("{")], "not closed", 2),
        (lambda t: t.rstrip()[:-1], "not closed", 3),
        (lambda t: t.replace('"6612057b000000001a00ce45",', '"6612057b000000001a00ce45" oops', 1),
         "invalid JSON", 1),
        (lambda t: t + "\n[]", "text after the end", 3),
    ],
    ids=["inside-a-record", "after-a-comma", "no-closing-bracket", "broken-in-the-middle", "trailing-text"],
)
def test_a_truncated_or_broken_json_array_is_refused_whole(tmp_path: Path, cut, message: str, complete: int) -> None:
    whole = write_json_array(tmp_path / "whole.json",
                             [note(), note("6612057b000000001a00ce45"), note("6612057b000000001a00ce46")])
    path = tmp_path / "cut.json"
    path.write_text(cut(whole.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(PostFileError, match=message) as info:
        read_xhs(path)
    text = str(info.value)
    assert text.startswith(f"{path}:") and "nothing imported" in text
    assert f"after {complete} complete record" in text
    assert len(read_xhs(whole).posts) == 3


def test_a_folder_lists_data_files_oldest_first(tmp_path: Path) -> None:
    new = write_json_array(tmp_path / "b.json", [note()])
    old = write_json_array(tmp_path / "sub" / "a.json", [note()])
    write_json_array(tmp_path / "images" / "x.json", [])
    os.utime(old, (1_000_000_000, 1_000_000_000))
    assert xhs_files(tmp_path) == [old, new]
