"""The bundled xycode comments as videos and threaded replies, with derived fields.

The rows have no ctime, mid, bvid or threading; they are derived deterministically: bvid from
aid (the real av→BV algorithm), ctime increasing with rpid, mid a hash of uname, and about 30%
of each video's comments made sub-replies of an earlier root comment.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from ..bvid import av2bv

__all__ = ["Dataset", "Reply", "SampleVideo", "load_dataset"]

DATA_FILE = "xycode_comments.csv.gz"
# Topics of the source's videos, from the notes in its videolist.json5.
_TOPICS = {
    314683347: "键政", 841124054: "种族歧视", 609351579: "反种族歧视", 160008: "早期的B站",
    759969426: "国际主义", 503264467: "动漫讨论", 313951706: "风纪委员评判结果",
    349510962: "鬼畜视频", 67829931: "经典鬼畜", 418788911: "日常", 697136245: "日常",
}
_PROVINCES = ("北京", "上海", "广东", "浙江", "江苏", "四川", "湖北", "山东", "福建", "陕西")
_T0, _T1 = 1_293_840_000, 1_686_960_000  # 2011-01-01 and 2023-06-17, UTC
_LOG_RPID0, _LOG_RPID1 = math.log(1e6), math.log(2e11)


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def ctime_of(rpid: int) -> int:
    """A plausible Unix time for a reply id: rpids grow with time, roughly exponentially."""
    share = (math.log(max(rpid, 1)) - _LOG_RPID0) / (_LOG_RPID1 - _LOG_RPID0)
    return int(_T0 + min(max(share, 0.0), 1.0) * (_T1 - _T0))


@dataclass(slots=True)
class Reply:
    rpid: int
    aid: int
    mid: int
    uname: str
    message: str
    like: int
    ctime: int
    root: int = 0
    parent: int = 0
    location: str = ""
    children: list[Reply] = field(default_factory=list)  # sub-replies of a root, time order


@dataclass(slots=True)
class SampleVideo:
    aid: int
    bvid: str
    title: str
    pubdate: int
    owner_mid: int
    owner_name: str
    roots: list[Reply]  # root replies, newest first, without the pinned one
    pinned: Reply | None
    replies: dict[int, Reply]  # every reply of the video by rpid

    @property
    def reply_count(self) -> int:
        return len(self.replies)


@dataclass(slots=True)
class Dataset:
    videos: dict[int, SampleVideo]  # by aid

    def by_bvid(self, bvid: str) -> SampleVideo | None:
        return next((v for v in self.videos.values() if v.bvid == bvid), None)


def _read_rows() -> list[dict[str, str]]:
    blob = resources.files(__package__).joinpath("data", DATA_FILE).read_bytes()
    text = gzip.decompress(blob).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def _thread(replies: list[Reply]) -> list[Reply]:
    """Make about 30% of the replies (in time order) sub-replies; return the roots.

    Half of them answer the most liked root so far (hot threads grow long), half a recent root.
    """
    roots: list[Reply] = []
    hottest: Reply | None = None
    for reply in replies:
        h = stable_hash(f"thread:{reply.rpid}")
        if hottest is None or h % 10 >= 3:
            roots.append(reply)
            hottest = reply if hottest is None or reply.like > hottest.like else hottest
            continue
        root = hottest if (h >> 8) % 2 else roots[-1 - (h >> 9) % min(len(roots), 8)]
        parent = root.children[-1] if root.children and (h >> 16) % 2 else root
        reply.root, reply.parent = root.rpid, parent.rpid
        root.children.append(reply)
    return roots


def _video(aid: int, replies: list[Reply]) -> SampleVideo:
    replies.sort(key=lambda r: r.rpid)
    roots = _thread(replies)
    pinned = max(roots, key=lambda r: (r.like, -r.rpid))
    return SampleVideo(
        aid=aid,
        bvid=av2bv(aid),
        title=f"{_TOPICS.get(aid, '日常')}（xycode 样本 av{aid}）",
        pubdate=replies[0].ctime - 3600,
        owner_mid=stable_hash(f"up:{aid}") % 10**9,
        owner_name=f"样本UP主{aid % 1000:03d}",
        roots=[r for r in reversed(roots) if r is not pinned],
        pinned=pinned,
        replies={r.rpid: r for r in replies},
    )


@cache
def load_dataset() -> Dataset:
    """The bundled comments, grouped by video and threaded (cached: built once a process)."""
    by_aid: dict[int, list[Reply]] = {}
    for row in _read_rows():
        rpid, aid, uname = int(row[""]), int(row["oid"]), row["uname"]
        by_aid.setdefault(aid, []).append(
            Reply(
                rpid=rpid,
                aid=aid,
                mid=stable_hash(f"mid:{uname}") % 10**9 + 1,
                uname=uname,
                message=row["message"],
                like=int(row["like"] or 0),
                ctime=ctime_of(rpid),
                location=_PROVINCES[stable_hash(f"loc:{uname}") % len(_PROVINCES)],
            )
        )
    return Dataset({aid: _video(aid, replies) for aid, replies in by_aid.items()})
