"""The trend dataset's CSVs: one row per image, dataset categories, MM-DD dates, `1万` counts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from emopulse.ingest.mkt import read_mkt
from emopulse.ingest.postdates import FULL, NEXT_YEAR, SAME_YEAR
from emopulse.ingest.posts import PostFileError

SHARED = Path(__file__).resolve().parents[2] / "../shared/data/xhs_mkt"
HEADER = "poster_id,post_id,nums_category_img,post_date,post_like,post_collect\n"


def write(tmp_path: Path, rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "posts.csv"
    path.write_text(header + rows, encoding="utf-8")
    return path


def test_rows_of_a_post_become_its_images_with_dataset_categories(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "u1,6612057b000000001a00ce44,9,04-07,188,55\n"
        "u1,6612057b000000001a00ce44,3,04-07,1万,60\n"   # another image, crawled later: more likes
        "u1,6612057b000000001a00ce44,9,2024-04-07,190,55\n"
        "u2,657da21b0000000007009a23,12,12-16,667,348\n"
    ))
    batch = read_mkt(path)
    assert batch.layout == "mkt_posts" and batch.rows == 4
    first, second = batch.posts
    assert (first.post_id, first.user_id, first.published_date, first.date_resolution) == (
        "6612057b000000001a00ce44", "u1", date(2024, 4, 7), FULL)  # a printed year wins for the post
    assert (second.published_date, second.date_resolution) == (date(2023, 12, 16), SAME_YEAR)
    assert [(i.post_id[:4], i.image_index, i.category, i.category_source) for i in batch.images] == [
        ("6612", 0, 9, "dataset"), ("6612", 1, 3, "dataset"), ("6612", 2, 9, "dataset"), ("657d", 0, 12, "dataset")]
    assert [(m.likes, m.collects) for m in batch.metrics] == [(10_000, 60), (667, 348)]
    assert batch.dates == {FULL: 1, SAME_YEAR: 1}
    assert "1 posts have rows with different counts: the largest was kept" in batch.notes


def test_bad_rows_are_named_by_line_and_the_rest_kept(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "u1,6612057b000000001a00ce44,9,04-07,188,55\n"
        "u1,6612057b000000001a00ce45,x,04-07,1,1\n"
        "u1,6612057b000000001a00ce46,1,13-45,1,1\n"
        "u1,6612057b000000001a00ce47,1,04-07,lots,1\n"
        "u1,6612057b000000001a00ce48,1,04-07\n"
    ))
    batch = read_mkt(path)
    assert [p.post_id[-2:] for p in batch.posts] == ["44"]
    assert [(e.line, e.message.split(":")[0]) for e in batch.skipped] == [
        (3, "nums_category_img is not an integer"), (4, "post_date is not a calendar date"),
        (5, "post_like"), (6, "4 fields where the header has 6")]
    assert all(e.path == str(path) for e in batch.skipped)


def test_texts_layout(tmp_path: Path) -> None:
    path = write(tmp_path, 'p1,6612057b000000001a00ce44,"好看 #Ootd #穿搭 [哇R]",0\n',
                 header="poster_id,post_id,summary,num_category_text\n")
    batch = read_mkt(path)
    (text,) = batch.texts
    assert (text.text, text.hashtags, text.emotes) == ("好看", ("Ootd", "穿搭"), ("[哇R]",))
    assert not batch.posts


def test_unknown_layout_names_the_columns(tmp_path: Path) -> None:
    with pytest.raises(PostFileError, match=r"\['post', 'likes'\]"):
        read_mkt(write(tmp_path, "1,2\n", header="post,likes\n"))


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED} (a fresh clone has none)")
def test_the_real_alldata_file() -> None:
    batch = read_mkt(SHARED / "alldata_20%.csv")
    assert (batch.rows, len(batch.posts), len(batch.images)) == (43_683, 16_441, 43_683)
    assert not batch.skipped
    assert sum(batch.dates.values()) == 16_441
    assert batch.dates[FULL] > 8_000 and batch.dates[SAME_YEAR] > 8_000 and batch.dates[NEXT_YEAR] > 0
    assert max(m.likes for m in batch.metrics) >= 10_000  # `1万` parsed
