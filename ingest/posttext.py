"""Xiaohongshu text: hashtags, emote tokens and emoji pulled out, the rest cleaned for models.

A note's description looks like `"今天穿这个[笑哭R] 好看吗😍 #ootd[话题]# #穿搭[话题]#"`: topics are
`#name[话题]#` (or plain `#name` in other exports), emotes are `[name]` tokens (Xiaohongshu's own end
in `R`), and Unicode emoji sit in the text. `clean_text` removes all three, links included, and
tidies whitespace, like `sentence` does for Bilibili comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .posts import PostText

__all__ = [
    "EMOJI",
    "HASHTAG",
    "XHS_EMOTE",
    "clean_text",
    "extract_emotes",
    "extract_hashtags",
    "post_text",
]

HASHTAG = re.compile(r"#([^#\s\[\]]+)(?:\[话题\])?#?")
XHS_EMOTE = re.compile(r"\[([^\[\]\s#]{1,16})\]")
_NOT_EMOTES = {"话题"}  # the topic marker in `#name[话题]#`
_URL = re.compile(r"https?://\S+")

# Emoji: a pictograph with optional variation selector / skin tone, joined by ZWJ; keycaps; flags.
_PICTO = (
    "[\U0001f300-\U0001faff\u2600-\u27bf\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa"
    "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u2194-\u2199\u21a9\u21aa\u25aa\u25ab\u25b6\u25c0"
    "\u25fb-\u25fe\u3030\u303d\u3297\u3299\u00a9\u00ae\u203c\u2049\u2122\u2139\u24c2]"
)
_MODS = "[\ufe0f\U0001f3fb-\U0001f3ff]*"
EMOJI = re.compile(
    rf"[\U0001f1e6-\U0001f1ff]{{2}}|[0-9#*]\ufe0f?\u20e3|{_PICTO}{_MODS}(?:\u200d{_PICTO}{_MODS})*"
)
# One pass finds every token in order: hashtag spans, emote tokens, emoji.
_TOKENS = re.compile(rf"(?P<tag>{HASHTAG.pattern})|(?P<emote>{XHS_EMOTE.pattern})|(?P<emoji>{EMOJI.pattern})")


def extract_hashtags(text: str) -> list[str]:
    """Topic names in order of first appearance, without `#` or `[话题]`, each once."""
    return list(dict.fromkeys(m.group(1) for m in HASHTAG.finditer(text or "")))


def extract_emotes(text: str) -> list[str]:
    """`[xxx]` emote tokens and Unicode emoji, in order, with repeats (hashtags skipped)."""
    out = []
    for m in _TOKENS.finditer(text or ""):
        if m["emote"] and m["emote"][1:-1] not in _NOT_EMOTES:
            out.append(m["emote"])
        elif m["emoji"]:
            out.append(m["emoji"])
    return out


def clean_text(text: str) -> str:
    """`text` without links, hashtags, emote tokens and emoji; whitespace collapsed."""
    text = _URL.sub(" ", text or "")
    return " ".join(_TOKENS.sub(" ", text).split())


def post_text(
    post_id: str, *parts: str | None, tags: Iterable[str] = ()
) -> PostText:
    """The `PostText` of a post from its title/description (in that order) and listed tags.

    A description that repeats the title (MediaCrawler falls back to the description's start)
    counts once.
    """
    pieces = [p for p in parts if p and p.strip()]
    if len(pieces) >= 2 and pieces[1].startswith(pieces[0]):
        pieces = pieces[1:]
    raw = "\n".join(pieces)
    hashtags = list(dict.fromkeys([*extract_hashtags(raw), *(t.strip() for t in tags if t.strip())]))
    cleaned = " ".join(c for c in (clean_text(p) for p in pieces) if c)
    return PostText(post_id, cleaned, tuple(hashtags), tuple(extract_emotes(raw)))
