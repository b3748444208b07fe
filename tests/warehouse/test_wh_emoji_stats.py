"""The cleaned view `emoji_comments`, its dedup rules, and the thresholds of the statistics."""

from __future__ import annotations

import csv

import pytest
from emopulse.warehouse import (
    EMOJI_COMMENTS_COLUMNS,
    Warehouse,
    export_emoji_counts,
    refresh_emoji_stats,
    upsert_comments,
)
from wh_builders import make_comment


def rows(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.con.execute(sql).fetchall()


def test_emoji_comments_has_exactly_the_seed_columns(wh: Warehouse) -> None:
    upsert_comments(wh, [make_comment(1, "好[doge]", mid="7", uname="u", ctime=1688794098)])
    rel = wh.con.execute("SELECT * FROM emoji_comments")
    assert tuple(d[0] for d in rel.description) == EMOJI_COMMENTS_COLUMNS
    assert rel.fetchall() == [
        ("BV1test", "[doge]", "doge", "好[doge]", "好", "7", "u", "2023-07-08T05:28:18+00:00")
    ]


def test_dedup_same_user_same_content_counts_once_per_emote(wh: Warehouse) -> None:
    upsert_comments(
        wh,
        [
            make_comment(1, "好[doge]", mid="A", uname="a", ctime=100),
            make_comment(2, "好[doge]", mid="A", uname="a-renamed", ctime=200),  # same mid: dup
            make_comment(3, "好[doge]", uname="b", ctime=100),  # no mid: user is the uname
            make_comment(4, "好[doge]", uname="b", ctime=50),  # dup of 3; earlier, so kept
            make_comment(5, "哈[doge][笑哭]", mid="A", ctime=300),  # two emotes: both kept
            make_comment(6, "哈[doge][笑哭]", mid="A", ctime=400),  # dup of 5, both emotes
            make_comment(7, "哈[笑哭]", mid="A", ctime=500),  # other content: kept
            make_comment(8, "好[doge]", ctime=100),  # nobody: never merged
            make_comment(9, "好[doge]", ctime=100),
        ],
    )
    got = rows(wh, "SELECT rpid, emoji_alt FROM emoji_comments_keyed ORDER BY rpid, emoji_alt")
    assert got == [
        (1, "[doge]"),
        (4, "[doge]"),
        (5, "[doge]"),
        (5, "[笑哭]"),
        (7, "[笑哭]"),
        (8, "[doge]"),
        (9, "[doge]"),
    ]
    assert rows(wh, "SELECT count(*) FROM emoji_comments") == [(7,)]


def test_message_else_sentence_is_the_content(wh: Warehouse) -> None:
    a = make_comment(1, "[doge]", mid="A")
    b = make_comment(2, "[doge]", mid="A")
    upsert_comments(wh, [a, b])
    assert rows(wh, "SELECT count(*) FROM emoji_comments") == [(1,)]


@pytest.fixture
def spread(wh: Warehouse) -> Warehouse:
    """100 (comment, emote) rows: a 50, b 30, c 15, d 3, e 2 comments."""
    sizes = {"a": 50, "b": 30, "c": 15, "d": 3, "e": 2}
    comments, rpid = [], 0
    for emote, n in sizes.items():
        for i in range(n):
            rpid += 1
            comments.append(make_comment(rpid, f"{emote}{i}[{emote}]", mid=str(rpid)))
    upsert_comments(wh, comments)
    return wh


def test_rare_emotes_fold_into_others(spread: Warehouse) -> None:
    stats = refresh_emoji_stats(spread, min_share=0.05, min_comments=15)
    counts = rows(spread, "SELECT emoji_alt, emoji_name, count, share FROM emoji_counts")
    assert [c[:3] for c in counts] == [
        ("[a]", "a", 50),
        ("[b]", "b", 30),
        ("[c]", "c", 15),
        ("others", "others", 5),
    ]
    assert [round(c[3], 6) for c in counts] == [0.5, 0.3, 0.15, 0.05]
    assert (stats.emoji_comments, stats.emotes) == (100, 5)


def test_training_set_keeps_emotes_with_more_than_n_comments(spread: Warehouse) -> None:
    stats = refresh_emoji_stats(spread, min_share=0.05, min_comments=15)
    assert (stats.training_emotes, stats.training_rows, stats.training_comments) == (2, 80, 80)
    rel = spread.con.execute("SELECT * FROM emoji_training_set")
    assert tuple(d[0] for d in rel.description) == ("rpid", *EMOJI_COMMENTS_COLUMNS)
    assert {r[2] for r in rel.fetchall()} == {"[a]", "[b]"}
    stats = refresh_emoji_stats(spread, min_share=0.5, min_comments=0)
    assert stats.training_emotes == 5
    assert rows(spread, "SELECT emoji_alt, count FROM emoji_counts") == [
        ("[a]", 50),
        ("others", 50),
    ]


def test_export_emoji_counts_writes_a_csv(spread: Warehouse, tmp_path) -> None:
    refresh_emoji_stats(spread, min_share=0.05)
    out = export_emoji_counts(spread, tmp_path / "out" / "counts.csv")
    with out.open(encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["emoji_alt", "emoji_name", "count", "share"]
    assert table[-1][:3] == ["others", "others", "5"] and len(table) == 5


def test_thresholds_are_checked(wh: Warehouse) -> None:
    with pytest.raises(ValueError):
        refresh_emoji_stats(wh, min_share=2)
