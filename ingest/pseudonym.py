"""Keyed pseudonyms for commenters: HMAC-SHA256 of `mid` and `uname` instead of the values.

The same user gets the same pseudonym under the same key (so counts per user still work), and
nobody without the key can map a pseudonym back or test a guess. The client applies it to every
answer before anything is parsed or landed, so neither `comments` nor `raw_pages` hold the values.
Only people are renamed: a reply (a dict with `rpid`) and a member or @-mention (a dict with
`uname`); video owners (`owner`, `upper`, search `mid`/`author`) are public and kept.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

__all__ = ["Pseudonymiser"]

_PERSON_FIELD = re.compile(r'"(mid|mid_str|uname)"(\s*:\s*)("(?:[^"\\]|\\.)*"|-?\d+)')


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
        """A copy of a decoded answer with every commenter's `mid`/`mid_str`/`uname` renamed.

        @-mentions listed in `content.members` are renamed in the message text too.
        """
        if isinstance(payload, list):
            return [self.scrub(item) for item in payload]
        if not isinstance(payload, dict):
            return payload
        out = {key: self.scrub(value) for key, value in payload.items()}
        if "rpid" in payload or "uname" in payload:
            for key in ("mid", "mid_str"):
                if out.get(key) not in (None, "", 0):
                    out[key] = self.mid(payload[key])
            if out.get("uname"):
                out["uname"] = self.uname(payload["uname"])
        content = out.get("content")
        if isinstance(content, dict) and isinstance(content.get("message"), str):
            content["message"] = self._rename_mentions(content["message"], payload["content"])
        return out

    def _rename_mentions(self, message: str, content: dict[str, Any]) -> str:
        for member in content.get("members") or []:
            name = member.get("uname") if isinstance(member, dict) else None
            if name:
                message = message.replace(f"@{name}", f"@{self.uname(name)}")
        return message

    def scrub_text(self, body: str) -> str:
        """Best effort for a body that is not JSON (kept for diagnosis): rename every
        `"mid"`/`"mid_str"`/`"uname"` value found in it."""

        def rename(match: re.Match[str]) -> str:
            field, colon, value = match.groups()
            plain = value[1:-1] if value.startswith('"') else value
            hashed = self.uname(plain) if field == "uname" else self.mid(plain)
            return f'"{field}"{colon}"{hashed}"'

        return _PERSON_FIELD.sub(rename, body)
