"""MediaCrawler-shaped Xiaohongshu records for the reader tests (`from xhs_samples import ...`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# 2024-04-07 10:31:23 in China; ids are ObjectIds
NOTE_TIME_MS = 1_712_457_083_000


def note(note_id: str = "6612057b000000001a00ce44", **fields: Any) -> dict[str, Any]:
    """A note as MediaCrawler's store writes it (counts as the page prints them)."""
    record = {
        "note_id": note_id,
        "type": "normal",
        "title": "今日穿搭",
        "desc": "今日穿搭 好看吗[笑哭R]😍 #ootd[话题]# #穿搭[话题]#",
        "video_url": "",
        "time": NOTE_TIME_MS,
        "last_update_time": NOTE_TIME_MS + 60_000,
        "user_id": "5a5e0afb11be1017b83be966",
        "nickname": "小红",
        "avatar": "https://example.invalid/a.jpg",
        "liked_count": "1.2万",
        "collected_count": "3千",
        "comment_count": "88",
        "share_count": "",
        "ip_location": "上海",
        "image_list": "https://sns-img.example.invalid/1.jpg,https://sns-img.example.invalid/2.jpg",
        "tag_list": "ootd,穿搭",
        "last_modify_ts": 1_712_500_000_000,
        "note_url": f"https://www.xiaohongshu.com/explore/{note_id}",
        "source_keyword": "穿搭",
    }
    record.update(fields)
    return record


def comment(comment_id: str = "661300000000000000000001", **fields: Any) -> dict[str, Any]:
    record = {
        "comment_id": comment_id,
        "create_time": NOTE_TIME_MS + 3_600_000,
        "ip_location": "北京",
        "note_id": "6612057b000000001a00ce44",
        "content": "太好看了[赞R][赞R] 链接https://x.invalid/a",
        "user_id": "u1",
        "nickname": "路人",
        "sub_comment_count": "2",
        "pictures": "",
        "parent_comment_id": 0,
        "last_modify_ts": 1_712_500_000_000,
        "like_count": "10万+",
    }
    record.update(fields)
    return record


def write_json_array(path: Path, records: list[dict[str, Any]]) -> Path:
    """As MediaCrawler's JSON store does: an indented array, one key per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first occurrence of `needle`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")
