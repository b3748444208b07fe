from __future__ import annotations

import numpy as np
from PIL import Image

from emopulse.training import emote_images
from emopulse.training.emote_images import IMAGE_SIZE, build_emote_images, render_name, unicode_twins


def test_twins_come_from_our_table_the_seed_map_and_the_emoji_package(tmp_path) -> None:
    seed_map = tmp_path / "map.csv"
    seed_map.write_text("emoji,codepoints,name,img_url,detail_url,kind\n😂笑哭了,U+1F602,[喜极而泣],,,mapped\n😁嘻嘻,U+1F601,[呲牙],,,mapped\n"
                        ",,[妙啊],,,vendor_only\n", encoding="utf-8")
    twins = unicode_twins(["[喜极而泣]", "[笑哭]", "[呲牙]", "[妙啊]", "[滑稽]", "[OK]", "[没有这个]"], map_file=seed_map)
    assert twins["[喜极而泣]"] == twins["[笑哭]"] == "😂"   # our table (and the seed's map)
    assert twins["[呲牙]"] == "😁"                           # the seed's map
    assert twins["[妙啊]"] is None and twins["[滑稽]"] is None  # no Unicode twin, on purpose
    assert twins["[OK]"] == "👌"                              # the emoji package's Chinese names
    assert twins["[没有这个]"] is None
    assert unicode_twins(["[呲牙]"])["[呲牙]"] is None  # without the seed's map


def test_every_emote_has_images_and_twins_still_differ(tmp_path) -> None:
    own = tmp_path / "1001.png"
    Image.new("RGBA", (40, 20), (255, 0, 0, 255)).save(own)
    images = build_emote_images(["[笑哭]", "[喜极而泣]", "[妙啊]"], bilibili_images={"[喜极而泣]": own})
    assert images.images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3) and images.images.dtype == np.uint8
    by_emote = [set(np.flatnonzero(images.owner == i)) for i in range(3)]
    assert all(by_emote)
    sources = [{images.source[j] for j in rows} for rows in by_emote]
    assert "twemoji" in sources[0] and "openmoji" in sources[0] and "name" in sources[0]
    assert sources[1] >= {"bilibili", "name"} and sources[2] == {"name"}  # [妙啊]: only its name
    # the two 😂 emotes share their Unicode drawings but not their sets of images
    mean = [images.images[sorted(rows)].astype(float).mean(axis=0) for rows in by_emote]
    assert np.abs(mean[0] - mean[1]).max() > 10
    coverage = images.coverage()
    assert coverage["name"] == {"emotes": 3, "share": 1.0} and coverage["bilibili"]["emotes"] == 1
    assert coverage["twemoji"]["emotes"] == coverage["openmoji"]["emotes"] == 2
    assert coverage["noto"]["emotes"] == (2 if emote_images.NOTO_EMOJI_FONT.is_file() else 0)


def test_a_missing_or_broken_bilibili_image_is_skipped(tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    images = build_emote_images(["[妙啊]"], bilibili_images={"[妙啊]": broken})
    assert images.source == ["name"]


def test_name_rendering_without_a_cjk_font_is_a_pattern_of_the_name(monkeypatch) -> None:
    monkeypatch.setattr(emote_images, "CJK_FONTS", ())
    a, b = np.asarray(render_name("[妙啊]")), np.asarray(render_name("[滑稽]"))
    assert (a != 255).any() and not np.array_equal(a, b)
    assert np.array_equal(a, np.asarray(render_name("[妙啊]")))  # deterministic
