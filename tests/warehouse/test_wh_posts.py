"""Loading posts: idempotent upserts, observations over time, NULL never wipes a value."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

from emopulse.ingest.mkt import read_mkt
from emopulse.ingest.xhs import read_xhs
from emopulse.warehouse import Warehouse
from emopulse.warehouse.posts import load_posts
from emopulse.warehouse.windows import refresh_windows
from post_builders import add, table

POST_TABLES = {
    "posts": "post_id", "post_images": "post_id, image_index", "post_metrics": "post_id, observed_at",
    "post_texts": "post_id", "post_comments": "comment_id", "daily_category_stats": "day, category",
    "trend_windows": "window_end, category",
}


def snapshot(wh: Warehouse) -> dict[str, list[tuple]]:
    return {name: table(wh, name, order) for name, order in POST_TABLES.items()}


def xhs_file(path: Path, likes: str, modified: int | None = None) -> Path:
    note = {"note_id": "6612057b000000001a00ce44", "type": "normal", "title": "今日穿搭",
            "desc": "好看吗 #ootd[话题]#", "time": 1_712_457_083_000, "liked_count": likes,
            "collected_count": "3千", "comment_count": "", "share_count": "5",
            "image_list": "https://img.invalid/1.jpg", "tag_list": "ootd"}
    if modified is not None:
        note["last_modify_ts"] = modified
    comment = {"comment_id": "c1", "note_id": note["note_id"], "content": "赞[赞R]", "create_time": 1_712_460_000_000,
               "like_count": "3", "sub_comment_count": 0, "parent_comment_id": 0, "pictures": ""}
    path.write_text(json.dumps([note, comment], ensure_ascii=False), encoding="utf-8")
    return path


def test_importing_the_same_file_twice_changes_nothing(wh: Warehouse, tmp_path: Path) -> None:
    csv = tmp_path / "alldata.csv"
    csv.write_text("poster_id,post_id,nums_category_img,post_date,post_like,post_collect\n"
                   + "".join(f"u,6612057b00000000000000{i:02d},{i % 3},0{3 + i % 3}-{1 + i % 28:02d},1万,{i}\n"
                             for i in range(80))
                   + "u,6612057b0000000000000001,7,04-02,5,5\n", encoding="utf-8")
    note = xhs_file(tmp_path / "notes.json", "1.2万")
    for path in (csv, note):
        load = load_posts(wh, read_mkt(path) if path.suffix == ".csv" else read_xhs(path))
        refresh_windows(wh, load.days)
    before = snapshot(wh)
    assert len(before["posts"]) == 81 and len(before["post_images"]) == 82 and len(before["trend_windows"]) > 0
    for path in (csv, note):
        load = load_posts(wh, read_mkt(path) if path.suffix == ".csv" else read_xhs(path))
        step = refresh_windows(wh, load.days)
        assert (step.days_changed, step.windows_written, step.labels_updated) == (0, 0, 0)
    assert snapshot(wh) == before


def test_a_newer_file_adds_an_observation_and_keeps_the_old(wh: Warehouse, tmp_path: Path) -> None:
    load_posts(wh, read_xhs(xhs_file(tmp_path / "a.json", "1.2万", modified=1_712_500_000_000)))
    load_posts(wh, read_xhs(xhs_file(tmp_path / "b.json", "1.5万", modified=1_712_600_000_000)))
    old = xhs_file(tmp_path / "c.json", "9")  # no last_modify_ts: the file's time
    os.utime(old, (1_712_550_000, 1_712_550_000))
    load_posts(wh, read_xhs(old))
    rows = wh.con.execute("SELECT epoch(observed_at)::BIGINT, likes, collects, shares FROM post_metrics "
                          "ORDER BY observed_at").fetchall()
    assert rows == [(1_712_500_000, 12_000, 3_000, 5), (1_712_550_000, 9, 3_000, 5), (1_712_600_000, 15_000, 3_000, 5)]
    assert wh.con.execute("SELECT text, hashtags FROM post_texts").fetchall() == [("今日穿搭 好看吗", ["ootd"])]
    assert wh.con.execute("SELECT text, emotes, likes FROM post_comments").fetchall() == [("赞", ["[赞R]"], 3)]


def test_a_thinner_source_never_wipes_a_richer_one(wh: Warehouse, tmp_path: Path) -> None:
    load_posts(wh, read_xhs(xhs_file(tmp_path / "a.json", "1")))
    wh.con.execute("UPDATE post_images SET category = 4, category_source = 'kmeans:test'")
    csv = tmp_path / "mkt.csv"
    csv.write_text("poster_id,post_id,nums_category_img,post_date,post_like,post_collect\n"
                   "u9,6612057b000000001a00ce44,2,04-07,1,1\n", encoding="utf-8")
    load_posts(wh, read_mkt(csv))
    assert wh.con.execute("SELECT title, user_id, published_date FROM posts").fetchall() == [
        ("今日穿搭", "u9", date(2024, 4, 7))]
    # the trend dataset's category for image 0 is the dataset's own
    assert wh.con.execute("SELECT category, category_source FROM post_images").fetchall() == [(2, "dataset")]
    load_posts(wh, read_xhs(xhs_file(tmp_path / "a.json", "1")))  # re-import: no category, keeps it
    assert wh.con.execute("SELECT category, url FROM post_images").fetchall() == [(2, "https://img.invalid/1.jpg")]


def test_a_post_that_moves_day_touches_both_days(wh: Warehouse) -> None:
    assert add(wh, [("p1", date(2024, 1, 1), [1], 5)]) == {date(2024, 1, 1)}
    assert add(wh, [("p1", date(2024, 1, 3), [1], 5)]) == {date(2024, 1, 1), date(2024, 1, 3)}
    assert add(wh, [("p1", date(2024, 1, 3), [1, 2], 5)]) == {date(2024, 1, 3)}
    assert add(wh, [("p1", date(2024, 1, 3), [1], 5)]) == {date(2024, 1, 3)}
    assert wh.con.execute("SELECT image_index FROM post_images").fetchall() == [(0,)]  # stale image dropped
