"""A small trained emoji_bow model (session-wide) and a synthetic dataset to train and score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emopulse.training.emoji_bow.train import TrainConfig, TrainResult, train_emoji_classifier

PHRASES = {"[笑哭]": "哈哈哈", "[doge]": "狗头保命", "[大哭]": "呜呜太感动", "[打call]": "加油冲鸭",
           "[吃瓜]": "围观吃瓜", "[星星眼]": "好漂亮啊"}


def synthetic_rows(n_comments: int = 240, *, seed: int = 0) -> pd.DataFrame:
    """One `emoji_training_set` row per comment: filler characters, then its emote's phrase."""
    rng = np.random.default_rng(seed)
    emotes = list(PHRASES)
    rows = []
    for rpid in range(1, n_comments + 1):
        emote = emotes[rng.integers(len(emotes))]
        sentence = "".join(rng.choice(list("的了是在我有这个们中来上大为和"), size=3)) + PHRASES[emote]
        rows.append({"rpid": rpid, "bvid": f"BV{rpid % 7}", "emoji_alt": emote, "emoji_name": emote.strip("[]"),
                     "message": sentence + emote, "sentence": sentence})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return synthetic_rows()


@pytest.fixture(scope="session")
def trained(tmp_path_factory, rows: pd.DataFrame) -> TrainResult:
    config = TrainConfig(epochs=4, buckets=1 << 12, dim=16, lr=1e-2)
    return train_emoji_classifier(rows, out_dir=tmp_path_factory.mktemp("train"), config=config, progress=False)
