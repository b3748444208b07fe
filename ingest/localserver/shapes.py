"""Bilibili JSON shapes built from the bundled dataset (replies, videos, emotes)."""

from __future__ import annotations

import re
import time
from typing import Any

from ..parse import extract_tokens
from .dataset import Reply, SampleVideo, stable_hash
from .emotes import (
    MEMBER_PACKAGE_ID, MEMBER_PACKAGE_NAME, MTIME, PACKAGE_ID, PACKAGE_NAME, CatalogEmote,
    all_emotes, catalog, member_catalog,
)

__all__ = [
    "PREVIEW", "emote_json", "member_json", "member_package_json", "mid_of", "package_json",
    "reply_json", "video_json",
]

PREVIEW = 3  # sub-replies shown inline under a root reply
_MENTION = re.compile(r"@([^\s@\[\]【】，,。!！?？:：()（）]+)")


def emote_json(emote: CatalogEmote, base: str) -> dict[str, Any]:
    return {
        "id": emote.emote_id,
        "package_id": emote.package_id,
        "state": 0,
        "type": 1 if emote.package_id == PACKAGE_ID else 3,
        "attr": 0,
        "text": emote.text,
        "url": f"{base}/bfs/emote/{emote.emote_id}.png",
        "meta": {"size": 1, "suggest": [""], "alias": emote.name},
        "mtime": MTIME,
    }


def package_json(base: str) -> dict[str, Any]:
    emotes = [emote_json(e, base) for e in catalog().values()]
    return {
        "id": PACKAGE_ID,
        "text": PACKAGE_NAME,
        "url": emotes[0]["url"],
        "mtime": MTIME,
        "type": 1,
        "attr": 322,
        "meta": {"size": 1, "item_id": 958},
        "emote": emotes,
    }


def member_package_json(base: str) -> dict[str, Any]:
    """Package 2 as `/x/emote/package` answers it (the panel does not list it)."""
    emotes = [emote_json(e, base) for e in member_catalog().values()]
    return {
        "id": MEMBER_PACKAGE_ID,
        "text": MEMBER_PACKAGE_NAME,
        "url": emotes[0]["url"],
        "mtime": MTIME,
        "type": 3,
        "attr": 2,
        "meta": {"size": 1, "item_id": 4111},
        "emote": emotes,
    }


def mid_of(uname: str) -> int:
    """The `mid` the dataset gives a user name (commenters and @-mentioned users alike)."""
    return stable_hash(f"mid:{uname}") % 10**9 + 1


def member_json(mid: int, uname: str, base: str) -> dict[str, Any]:
    """A user as a reply's `member` (and each `content.members` entry) describes them: the
    profile fields a real answer carries (avatar, signature, pendant, medal, ...), derived."""
    h = stable_hash(f"member:{mid}")
    return {
        "mid": str(mid),
        "uname": uname,
        "sex": ("男", "女", "保密")[h % 3],
        "sign": f"{uname}的个性签名 #{h % 10_000}" if h % 3 else "",
        "avatar": f"{base}/bfs/face/{h:016x}.jpg",
        "rank": "10000",
        "level_info": {"current_level": mid % 7},
        "pendant": {"pid": 0, "name": "", "image": ""},
        "nameplate": {"nid": 0, "name": "", "image": "", "level": ""},
        "official_verify": {"type": -1, "desc": ""},
        "vip": {"vipType": 0, "vipStatus": 0, "nickname_color": ""},
        "fans_detail": {"uid": mid, "medal_id": 1000 + h % 7, "medal_name": "样本团", "level": 3}
        if h % 4 == 0 else None,
    }


def _content(message: str, base: str) -> dict[str, Any]:
    known = all_emotes()
    used = {t: emote_json(known[t], base) for t in extract_tokens(message) if t in known}
    mentioned = list(dict.fromkeys(_MENTION.findall(message)))
    content: dict[str, Any] = {
        "message": message, "plat": 0, "device": "",
        "members": [member_json(mid_of(name), name, base) for name in mentioned],
        "jump_url": {}, "max_line": 6,
    }
    if used:
        content["emote"] = used
    if mentioned:
        content["at_name_to_mid"] = {name: mid_of(name) for name in mentioned}
    return content


def reply_json(reply: Reply, base: str) -> dict[str, Any]:
    """One reply object; a root carries a preview of its first sub-replies (or null)."""
    preview = [reply_json(child, base) for child in reply.children[:PREVIEW]]
    return {
        "rpid": reply.rpid,
        "oid": reply.aid,
        "type": 1,
        "mid": reply.mid,
        "root": reply.root,
        "parent": reply.parent,
        "dialog": reply.parent,
        "count": len(reply.children),
        "rcount": len(reply.children),
        "state": 0,
        "ctime": reply.ctime,
        "like": reply.like,
        "rpid_str": str(reply.rpid),
        "root_str": str(reply.root),
        "parent_str": str(reply.parent),
        "mid_str": str(reply.mid),
        "member": member_json(reply.mid, reply.uname, base),
        "content": _content(reply.message, base),
        "replies": preview or None,
        "reply_control": {
            "location": f"IP属地：{reply.location}",
            "time_desc": time.strftime("%Y-%m-%d发布", time.gmtime(reply.ctime)),
        },
        "up_action": {"like": False, "reply": False},
        "folder": {"has_folded": False, "is_folded": False, "rule": ""},
        "invisible": False,
    }


def video_json(video: SampleVideo, base: str) -> dict[str, Any]:
    """A video as `view` and `popular` describe it."""
    h = stable_hash(f"stat:{video.aid}")
    likes = sum(r.like for r in video.replies.values())
    return {
        "aid": video.aid,
        "bvid": video.bvid,
        "cid": video.aid + 1,
        "title": video.title,
        "pubdate": video.pubdate,
        "ctime": video.pubdate,
        "desc": "本地样本视频：评论来自 XYCode-Kerman/BilibiliCommentAsDataset (MIT)",
        "duration": 60 + h % 600,
        "pic": f"{base}/bfs/archive/{video.bvid}.jpg",
        "tname": "样本",
        "owner": {"mid": video.owner_mid, "name": video.owner_name,
                  "face": f"{base}/bfs/face/member/noface.jpg"},
        "pub_location": "",
        "stat": {
            "aid": video.aid,
            "view": video.reply_count * 40 + h % 1000,
            "danmaku": video.reply_count // 3,
            "reply": video.reply_count,
            "favorite": likes // 4,
            "coin": likes // 5,
            "share": likes // 20,
            "like": likes,
        },
    }
