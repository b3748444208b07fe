"""Synthetic image + text pairs in the multimodal seed's layout (importable, like emote_fixtures):
each class has its own words (Chinese and English) and its own image colour, with noise, so a
model that reads either input beats the majority class."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

WORDS = {"positive": ["哈哈哈", "加油冲鸭", "好漂亮啊"], "neutral": ["围观吃瓜", "的了是"],
         "negative": ["呜呜太感动", "狗头保命"]}
COLOURS = {"positive": (230, 40, 40), "neutral": (128, 128, 128), "negative": (30, 40, 220)}
SHARES = {"positive": 0.5, "neutral": 0.2, "negative": 0.3}


def write_pairs(root: Path, n: int = 60, *, seed: int = 0, unlabelled: int = 4) -> Path:
    """`root/train.txt`, `root/test_without_label.txt` and `root/data/<guid>.jpg|txt`: `n`
    labelled pairs (about one in six with the wrong class's words: an image is needed to get it
    right) and `unlabelled` more."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    labels = list(SHARES)
    lines, unlabelled_lines = ["guid,tag"], ["guid,tag"]
    for i in range(n + unlabelled):
        guid = str(1000 + i)
        label = labels[rng.choice(3, p=list(SHARES.values()))]
        said = labels[rng.integers(3)] if rng.random() < 1 / 6 else label
        text = " ".join([*rng.choice(WORDS[said], size=2), "sample text", f"#{i}"])  # every text its own
        (data / f"{guid}.txt").write_text(text, encoding="utf-8")
        base = np.array(COLOURS[label], dtype=np.int16)
        pixels = np.clip(base + rng.integers(-25, 26, (40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(data / f"{guid}.jpg", format="JPEG", quality=90)
        (lines if i < n else unlabelled_lines).append(f"{guid},{label if i < n else 'null'}")
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "test_without_label.txt").write_text("\n".join(unlabelled_lines) + "\n", encoding="utf-8")
    return root


def pairs_frame(root: Path, *, source: str = "synthetic") -> pd.DataFrame:
    """The labelled pairs of `write_pairs` as `sentiment_pairs` rows (without a warehouse)."""
    rows = []
    for line in (root / "train.txt").read_text(encoding="utf-8").splitlines()[1:]:
        guid, label = line.split(",")
        image = root / "data" / f"{guid}.jpg"
        rows.append({"source": source, "guid": guid, "text": (root / "data" / f"{guid}.txt").read_text("utf-8"),
                     "image_path": str(image), "image_sha256": hashlib.sha256(image.read_bytes()).hexdigest(),
                     "label": label})
    return pd.DataFrame(rows)
