"""A real home for the dashboard tests: a warehouse written through its public API, then published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emopulse.ingest.records import Comment, CommentEmote, Video
from emopulse.warehouse import (
    Warehouse,
    publish_snapshots,
    refresh_emoji_stats,
    register_model,
    upsert_comments,
    upsert_videos,
)

# (emoji_alt, emoji_name, comments using it): 12 emotes; those under MIN_SHARE fold into `others`.
EMOTES = [
    ("[笑哭]", "笑哭", 30), ("[doge]", "doge", 25), ("[大哭]", "大哭", 20),
    ("[星星眼]", "星星眼", 16), ("[脸红]", "脸红", 12), ("[吃瓜]", "吃瓜", 10),
    ("[妙啊]", "妙啊", 9), ("[OK]", "OK", 8), ("[捂脸]", "捂脸", 7),
    ("[喜欢]", "喜欢", 6), ("[酸了]", "酸了", 3), ("[呲牙]", "呲牙", 2),
]
MIN_SHARE = 0.05
PLAIN_COMMENTS = 12  # comments without any emote
# 2024-03-01 20:00 UTC is 2024-03-02 04:00 in Shanghai: days must be counted there.
FIRST_CTIME = int(datetime(2024, 3, 1, 20, 0, tzinfo=UTC).timestamp())
METRICS = {
    "top1_strict": 0.41, "top1_any": 0.45, "top5_strict": 0.83, "top5_any": 0.86,
    "majority_top1_strict": 0.2, "majority_top1_any": 0.22, "majority_top5_strict": 0.6,
    "majority_top5_any": 0.63, "val_top1_strict": 0.4, "best_epoch": 3, "n_train": 100,
    "n_val": 20, "n_test": 30, "n_labels": 12, "train_seconds": 1.25,
}


@dataclass(frozen=True)
class PublishedHome:
    home: Path
    comments: int
    videos: int
    emotes: int
    top_names: list[str]  # emoji_name, most used first
    others: int  # comments of the emotes folded into `others`
    model_version: str
    days: dict[str, int]  # Shanghai date -> comments


def _comments() -> list[Comment]:
    comments, rpid = [], 1000
    for i, (alt, name, uses) in enumerate(EMOTES):
        for j in range(uses):
            rpid += 1
            comments.append(Comment(
                rpid=rpid, message=f"第{j}条评论{alt}", sentence=f"第{j}条评论", source="api:main",
                bvid=f"BV1test{j % 3}", mid=str(rpid), uname=f"用户{rpid}",
                ctime=FIRST_CTIME + 86400 * (j % 4) + 60 * i,
                emotes=(CommentEmote(rpid, alt, name),),
            ))
    for j in range(PLAIN_COMMENTS):
        rpid += 1
        comments.append(Comment(rpid=rpid, message=f"没有表情{j}", sentence=f"没有表情{j}",
                                source="api:main", bvid="BV1test0", mid=str(rpid),
                                ctime=FIRST_CTIME + 86400 * 6))
    return comments


@pytest.fixture(scope="session")
def published_home(tmp_path_factory) -> PublishedHome:
    home = tmp_path_factory.mktemp("emopulse-home")
    comments = _comments()
    with Warehouse.open(home / "warehouse.duckdb", command="tests/dashboard") as wh:
        upsert_videos(wh, [Video(f"BV1test{k}", aid=k + 1, title=f"视频{k}", source="explicit")
                           for k in range(3)])
        upsert_comments(wh, comments)
        refresh_emoji_stats(wh, min_share=MIN_SHARE, min_comments=5)
        version = register_model(wh, model_id="emoji_bow-test", task="emoji", metrics=METRICS,
                                 artifacts={"onnx": str(home / "model.onnx")}, sha256="0" * 64)
        publish_snapshots(wh, home)
    days: dict[str, int] = {}
    for c in comments:
        day = datetime.fromtimestamp(c.ctime + 8 * 3600, UTC).date().isoformat()
        days[day] = days.get(day, 0) + 1
    return PublishedHome(home=home, comments=len(comments), videos=3, emotes=len(EMOTES),
                         top_names=[name for _, name, _ in EMOTES],
                         others=sum(n for *_, n in EMOTES if n / sum(n for *_, n in EMOTES) < MIN_SHARE),
                         model_version=str(version), days=days)
