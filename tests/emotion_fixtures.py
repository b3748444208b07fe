"""Synthetic texts in GoEmotions' layout (importable, like sentiment_fixtures): `labels.txt` with
the 28 GoEmotions names and `train.tsv` / `dev.tsv` (/ `test.tsv`) rows `text \t ids \t id`. Each
emotion has its own cue words (Latin letters, so the tiny character encoder reads them), a text
carries one or two emotions' cues among filler, so a model that reads the cues beats chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

EMOTIONS = ("admiration amusement anger annoyance approval caring confusion curiosity desire disappointment "
            "disapproval disgust embarrassment excitement fear gratitude grief joy love nervousness optimism pride "
            "realization relief remorse sadness surprise neutral").split()
FILLER = ("the", "a", "so", "and", "it", "was", "this", "really")


def write_goemotions(root: Path, *, train: int = 240, dev: int = 90, test: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.txt").write_text("\n".join(EMOTIONS) + "\n", encoding="utf-8")
    counter = 0
    for split, n in (("train", train), ("dev", dev), ("test", test)):
        if not n:
            continue
        lines = []
        for _ in range(n):
            k = 1 if rng.random() < 0.75 else 2
            ids = sorted(rng.choice(len(EMOTIONS), size=k, replace=False).tolist())
            words = [*rng.choice(FILLER, size=3)]
            for j in ids:
                words.insert(int(rng.integers(len(words) + 1)), EMOTIONS[j][:5])
            counter += 1
            lines.append(f"{' '.join(words)}\t{','.join(map(str, ids))}\tt{counter:05d}")
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def goemotions_frame(root: Path, *, source: str = "synthetic") -> tuple[pd.DataFrame, list[str]]:
    """The texts of `write_goemotions` as `emotion_texts` rows, and the label names (no warehouse)."""
    labels = (root / "labels.txt").read_text(encoding="utf-8").split()
    rows = []
    for split in ("train", "dev", "test"):
        path = root / f"{split}.tsv"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            text, ids, text_id = line.split("\t")
            rows.append({"source": source, "split": split, "text_id": text_id, "text": text,
                         "labels": [labels[int(i)] for i in ids.split(",")]})
    return pd.DataFrame(rows), labels
