"""Keyed pseudonyms for commenters: HMAC-SHA256 of `mid` and `uname` instead of the values.

The same user gets the same pseudonym under the same key (so counts per user still work), and
nobody without the key can map a pseudonym back or test a guess. The client applies it to every
answer before anything is parsed or landed, so neither `comments` nor `raw_pages` hold the values.

What a scrubbed answer keeps of a person:

- A reply (a dict with `rpid`) keeps only the fields of `_REPLY_FIELDS` (ids, threading, times,
  counts, its text, emotes and pictures, its sub-replies); its `mid`/`mid_str` are renamed. Its
  `member` and every `content.members[*]` keep only `mid` and `uname`, renamed (no avatar,
  signature, pendant, nameplate, vip, medal, level, sex, ...); `content.at_name_to_mid` is renamed
  on both sides; `reply_control` loses `location` (the IP region); `up_action`, `fansgrade`,
  `card_label` and any field not on the list are dropped.
- Any other dict with a `uname` (a person outside a reply, such as a logged-in account in `nav`)
  has `mid`/`mid_str`/`uid`/`uname` renamed and its profile fields (`_PROFILE_FIELDS`) dropped.
- In every message, `@name` of any person met in the same answer, and the `回复 @name :` prefix
  of a reply to a sub-reply, are renamed.

Uploaders (`owner`, `upper`, `staff`, search results' `mid`/`author`) are public and kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

__all__ = ["Pseudonymiser"]

# Fields of a reply object that are kept (all others are dropped): nothing here names a person
# except `mid`/`mid_str`/`member`/`content`, which are rewritten.
_REPLY_FIELDS = frozenset({
    "rpid", "rpid_str", "oid", "type", "mid", "mid_str", "root", "root_str", "parent",
    "parent_str", "dialog", "dialog_str", "count", "rcount", "state", "attr", "ctime", "like",
    "member", "content", "replies", "reply_control", "folder", "invisible",
})
_CONTENT_FIELDS = frozenset({
    "message", "plat", "device", "members", "jump_url", "max_line", "emote", "at_name_to_mid",
    "pictures", "picture_scale",
})
_REPLY_CONTROL_FIELDS = frozenset({
    "max_line", "time_desc", "sub_reply_entry_text", "sub_reply_title_text",
})
# Profile fields dropped from a person met outside a reply (a reply's member keeps mid/uname only).
_PROFILE_FIELDS = frozenset({
    "avatar", "face", "sign", "sex", "birthday", "rank", "level", "level_info", "pendant",
    "nameplate", "official", "official_verify", "vip", "vip_label", "fans_detail", "fans_medal",
    "user_sailing", "user_sailing_v2", "senior", "is_senior_member", "face_nft", "face_nft_new",
    "face_nft_type", "nft_interaction", "avatar_item", "contract_desc", "is_contractor", "location",
    "ip_location", "top_photo", "wallet", "money", "moral", "email_verified", "mobile_verified",
    "is_jury", "tel_status", "garb", "profession", "school", "tags",
})
_MID_FIELDS = ("mid", "mid_str", "uid")
_REPLY_PREFIX = re.compile(r"回复 @([^\s:：@]+)( ?[:：])")
_PERSON_FIELD = re.compile(r'"(mid|mid_str|uid|uname)"(\s*:\s*)("(?:[^"\\]|\\.)*"|-?\d+)')
_PROFILE_TEXT = re.compile(r'"(avatar|face|sign|location|ip_location)"(\s*:\s*)"(?:[^"\\]|\\.)*"')
_NOT_A_MID = (None, "", 0, "0")


class Pseudonymiser:
    """Rename commenters with a secret `key` (bytes or text); never shows the key in its repr."""

    def __init__(self, key: bytes | str) -> None:
        key = key.encode() if isinstance(key, str) else key
        if not key:
            raise ValueError("the pseudonymisation key is empty")
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonymiser(key=***)"

    def _hash(self, kind: str, value: object) -> str:
        digest = hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind[0]}_{digest[:24]}"

    def mid(self, value: object) -> str:
        """`"3461567173626616"` → `"m_…"` (24 hex digits)."""
        return self._hash("mid", value)

    def uname(self, value: object) -> str:
        """`"che救驾来迟"` → `"u_…"`."""
        return self._hash("uname", value)

    def scrub(self, payload: Any) -> Any:
        """A copy of a decoded answer with every commenter renamed and their profile dropped
        (see the module's docstring); the input is left untouched."""
        walk = _Walk(self)
        out = walk.value(payload)
        walk.rename_mentions()
        return out

    def scrub_text(self, body: str) -> str:
        """A body that is not JSON (kept for diagnosis), scrubbed.

        A JSON answer cut short is closed after its last complete element, without the reply it
        was cut in, scrubbed like any answer and stored with a note saying where it ended (never
        as valid JSON). Anything else
        (an HTML page) has every `"mid"`/`"mid_str"`/`"uid"`/`"uname"` value renamed and every
        `"avatar"`/`"face"`/`"sign"`/`"location"` value emptied.
        """
        prefix = _json_prefix(body)
        if prefix is not None:
            text = json.dumps(self.scrub(prefix), ensure_ascii=False, separators=(",", ":"))
            return (f"{text}\n[emopulse: the answer was cut short after {len(body)} characters; "
                    "above is its readable part, closed and pseudonymised]")

        def rename(match: re.Match[str]) -> str:
            field, colon, value = match.groups()
            plain = value[1:-1] if value.startswith('"') else value
            hashed = self.uname(plain) if field == "uname" else self.mid(plain)
            return f'"{field}"{colon}"{hashed}"'

        body = _PERSON_FIELD.sub(rename, body)
        return _PROFILE_TEXT.sub(lambda m: f'"{m.group(1)}"{m.group(2)}""', body)


class _Walk:
    """One scrub: the renamed copy, and the people met on the way (for @-mentions in messages)."""

    def __init__(self, hasher: Pseudonymiser) -> None:
        self.hasher = hasher
        self.names: dict[str, str] = {}  # original uname -> pseudonym, every person met
        self.contents: list[dict[str, Any]] = []  # the copies of every reply's `content`

    # -- renaming ------------------------------------------------------------------------------

    def mid(self, value: Any) -> Any:
        return value if value in _NOT_A_MID or isinstance(value, bool) else self.hasher.mid(value)

    def uname(self, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return value
        hashed = self.names[value] = self.hasher.uname(value)
        return hashed

    # -- the walk ------------------------------------------------------------------------------

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "rpid" in value:
            return self.reply(value)
        if "uname" in value:
            return self.loose_person(value)
        return {key: self.at_map(item) if key == "at_name_to_mid" else self.value(item)
                for key, item in value.items()}

    def person(self, value: Any) -> Any:
        """A reply's `member` or a mention: its `mid` and `uname`, renamed; nothing else."""
        if not isinstance(value, dict):
            return None
        out = {}
        if "mid" in value:
            out["mid"] = self.mid(value["mid"])
        if "uname" in value:
            out["uname"] = self.uname(value["uname"])
        return out

    def loose_person(self, value: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, item in value.items():
            if key in _PROFILE_FIELDS:
                continue
            if key in _MID_FIELDS:
                out[key] = self.mid(item)
            elif key == "uname":
                out[key] = self.uname(item)
            else:
                out[key] = self.at_map(item) if key == "at_name_to_mid" else self.value(item)
        return out

    def at_map(self, value: Any) -> Any:
        """`{"name": 123}` → `{"u_…": "m_…"}`."""
        if not isinstance(value, dict):
            return None
        return {self.uname(name): self.mid(mid) for name, mid in value.items()}

    def reply(self, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in _REPLY_FIELDS:
                continue
            if key in ("mid", "mid_str"):
                out[key] = self.mid(item)
            elif key == "member":
                out[key] = self.person(item)
            elif key == "content":
                out[key] = self.content(item)
            elif key == "reply_control":
                out[key] = ({k: v for k, v in item.items() if k in _REPLY_CONTROL_FIELDS}
                            if isinstance(item, dict) else item)
            else:
                out[key] = self.value(item)
        return out

    def content(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return self.value(value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in _CONTENT_FIELDS:
                continue
            if key == "members":
                out[key] = [self.person(p) for p in item] if isinstance(item, list) else None
            elif key == "at_name_to_mid":
                out[key] = self.at_map(item)
            else:
                out[key] = self.value(item)
        if isinstance(out.get("message"), str):
            self.contents.append(out)
        return out

    def rename_mentions(self) -> None:
        """`回复 @name :` and `@name` of anyone met in this answer, in every message (one pass
        each, so a pseudonym is never renamed again)."""
        with_at = [c for c in self.contents if "@" in c["message"]]
        for content in with_at:
            for name, _ in _REPLY_PREFIX.findall(content["message"]):
                self.uname(name)
        if not (with_at and self.names):
            return
        names = sorted(self.names, key=len, reverse=True)  # the longest name first: "@ab", not "@a"
        pattern = re.compile(_REPLY_PREFIX.pattern + "|@(" + "|".join(map(re.escape, names)) + ")")

        def rename(m: re.Match[str]) -> str:
            if m.group(1) is not None:
                return f"回复 @{self.names[m.group(1)]}{m.group(2)}"
            return f"@{self.names[m.group(3)]}"

        for content in with_at:
            content["message"] = pattern.sub(rename, content["message"])


def _json_prefix(body: str) -> Any:
    """A JSON text cut short, closed after its last complete element and without the reply it
    was cut in (that reply's members may be what is missing); None when the body does not start
    like JSON or cannot be closed."""
    start = len(body) - len(body.lstrip())
    if body[start : start + 1] not in ("{", "["):
        return None
    closers: list[str] = []
    in_string = escaped = False
    cut: tuple[int, str] | None = None
    for i in range(start, len(body)):
        ch = body[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
            cut = (i + 1, "".join(reversed(closers)))
        elif ch in "}]":
            if not closers:
                return None
            closers.pop()
            if not closers:
                return None  # the whole value ended: the body was not cut short, it is something else
            cut = (i + 1, "".join(reversed(closers)))
        elif ch == ",":
            cut = (i, "".join(reversed(closers)))
    if cut is None:
        return None
    try:
        value = json.loads(body[: cut[0]] + cut[1])
    except ValueError:
        return None
    # The containers left open are the last element of each other, from the top down.
    parent: Any = value
    for _ in range(len(cut[1]) - 1):
        if isinstance(parent, list) and parent:
            child = parent[-1]
        elif isinstance(parent, dict) and parent:
            child = parent[next(reversed(parent))]
        else:
            break
        if isinstance(child, dict) and "rpid" in child:
            if isinstance(parent, list):
                parent.pop()
            else:
                parent.pop(next(reversed(parent)))
            break
        parent = child
    return value
