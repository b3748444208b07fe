"""Comment-file importers: layouts, synthetic ids, emotes from text, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from emopulse.ingest.files import CommentFileError, read_comment_file, synthetic_rpid

SHARED = Path(__file__).resolve().parents[2] / "../shared/data/bilibili"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared data not found at {SHARED} (a fresh clone has none)"
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@needs_shared
@pytest.mark.parametrize(
    ("name", "layout", "rows", "comments", "with_emotes", "videos"),
    [
        ("xycode_comments.csv", "xycode", 14_523, 14_523, 3_990, 11),
        ("riderich/cleaned_combined.csv", "riderich_cleaned", 2_642, 2_642, 2_642, 14),
        ("riderich/combined_emoji_mapped.csv", "riderich_mapped", 1_249, 1_165, 1_165, 10),
        ("sysu_labeled_comments.csv", "sysu_labeled", 2_769, 2_769, 1_088, 0),
        ("sysu_sample_comments.csv", "sysu_sample", 100, 100, 43, 0),
    ],
)
def test_real_shared_files(name, layout, rows, comments, with_emotes, videos) -> None:
    result = read_comment_file(SHARED / name)
    assert (result.layout, result.rows, len(result.comments)) == (layout, rows, comments)
    assert sum(1 for c in result.comments if c.emotes) == with_emotes
    assert len(result.videos) == videos and result.skipped == []
    assert len({c.rpid for c in result.comments}) == len(result.comments)
    assert all(c.source == f"file:{Path(name).name}" for c in result.comments)
    for c in result.comments:
        for e in c.emotes:
            assert e.emoji_alt not in c.sentence and e.rpid == c.rpid


@needs_shared
def test_xycode_keeps_rpid_and_maps_oid_to_the_video() -> None:
    result = read_comment_file(SHARED / "xycode_comments.csv")
    first = result.comments[0]
    assert (first.rpid, first.uname, first.aid, first.likes) == (
        166089444304,
        "李公子Fb1",
        609351579,
        0,
    )
    assert first.bvid and first.bvid.startswith("BV1")
    assert {v.aid for v in result.videos} >= {609351579}


@needs_shared
def test_riderich_cleaned_gets_synthetic_ids_and_its_second_emote_back() -> None:
    result = read_comment_file(SHARED / "riderich/cleaned_combined.csv")
    first = result.comments[0]
    assert (
        first.rpid < 0
        and first.rpid
        == read_comment_file(SHARED / "riderich/cleaned_combined.csv").comments[0].rpid
    )
    assert first.ctime == 1688794098  # 2023-07-08T05:28:18+00:00
    assert [(e.emoji_alt, e.occurrences) for e in first.emotes] == [("[脸红]", 1), ("[星星眼]", 3)]
    assert (
        first.sentence
        == "我们老师在上历史课的时候，专门把这个视频放出来了 然后一个一个的民族详细讲解"
    )


def test_rows_of_one_comment_are_grouped_back(tmp_path: Path) -> None:
    header = "bvid,emoji_alt,emoji_name,message,sentence,mid,uname,ctime_iso\n"
    row = "BV17x411w7KC,{alt},{name},好[doge]哈[笑哭][doge],x,42,u,2023-07-08T05:28:18+00:00\n"
    path = write(
        tmp_path / "seed.csv",
        header + row.format(alt="[doge]", name="doge") + row.format(alt="[笑哭]", name="笑哭"),
    )
    result = read_comment_file(path)
    assert result.layout == "riderich_cleaned" and len(result.comments) == 1
    comment = result.comments[0]
    assert comment.rpid == synthetic_rpid(
        "seed.csv", "BV17x411w7KC", "42", "u", "好[doge]哈[笑哭][doge]", "2023-07-08T05:28:18+00:00"
    )
    assert {(e.emoji_alt, e.emoji_name, e.occurrences) for e in comment.emotes} == {
        ("[doge]", "doge", 2),
        ("[笑哭]", "笑哭", 1),
    }
    assert comment.sentence == "好 哈" and comment.aid == 170001 and comment.mid == "42"
    assert [v.bvid for v in result.videos] == ["BV17x411w7KC"]


def test_synthetic_ids_are_stable_negative_63_bit() -> None:
    a = synthetic_rpid("f.csv", "hello", "1")
    assert a == synthetic_rpid("f.csv", "hello", "1") and -(2**63) < a < 0
    assert a != synthetic_rpid("g.csv", "hello", "1")


def test_known_emotes_limit_what_counts(tmp_path: Path) -> None:
    path = write(tmp_path / "l.csv", "content,label\n见[1]文[doge],3\n")
    only = read_comment_file(path, known_emotes={"[doge]"}).comments[0]
    assert [e.emoji_alt for e in only.emotes] == ["[doge]"] and only.sentence == "见[1]文"


def test_unknown_layout_names_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.csv", "text,score,when\na,1,2\n")
    with pytest.raises(
        CommentFileError,
        match=r"odd.csv: unknown comment file layout with "
        r"columns \['text', 'score', 'when'\]",
    ):
        read_comment_file(path)


def test_gbk_file_is_refused_clearly_or_read_when_told(tmp_path: Path) -> None:
    path = write(tmp_path / "gbk.csv", "content,label\n太好了[doge],6\n", encoding="gbk")
    with pytest.raises(CommentFileError, match=r"gbk.csv: not valid UTF-8 .*GB18030"):
        read_comment_file(path)
    result = read_comment_file(path, encoding="gb18030")
    assert result.comments[0].message == "太好了[doge]"


def test_malformed_rows_are_reported_and_good_rows_kept(tmp_path: Path) -> None:
    text = (
        "\ufeff,uname,message,like,oid,label\n"
        "1,a,好[doge],3,170001,0\n"
        "x2,b,bad id,0,170001,0\n"
        "3,c,too,many,fields,0,0\n"
        '4,d,"a message\nover two lines",5,170001,1\n'
        "5,e,,0,170001,0\n"
        "6,f,ok,0,170001,0\n"
    )
    result = read_comment_file(write(tmp_path / "xy.csv", text))
    assert [c.rpid for c in result.comments] == [1, 4, 6]
    assert result.comments[1].message == "a message\nover two lines"
    assert [(e.line, e.message.split(":")[0]) for e in result.skipped] == [
        (3, "rpid is not an integer"),
        (4, "7 fields where the header has 6"),
        (7, "empty message"),
    ]
    assert str(result.skipped[0]).startswith(f"{tmp_path / 'xy.csv'}:3: ")
    assert result.rows == 6


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(CommentFileError, match="empty"):
        read_comment_file(write(tmp_path / "e.csv", ""))
