"""A small synthetic emote dataset that a bag of n-grams can learn (each emote has its own phrase)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

PHRASES = {"[笑哭]": "哈哈哈", "[doge]": "狗头保命", "[大哭]": "呜呜太感动", "[打call]": "加油冲鸭",
           "[吃瓜]": "围观吃瓜", "[星星眼]": "好漂亮啊"}
WEIGHTS = [0.35, 0.2, 0.15, 0.1, 0.1, 0.1]
FILLER = list("的了是在我有这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里")


def synthetic_rows(n_comments: int = 400, *, seed: int = 0) -> pd.DataFrame:
    """(comment, emote) rows shaped like `emoji_training_set`; about 10% of comments carry two emotes."""
    rng = np.random.default_rng(seed)
    emotes = list(PHRASES)
    rows = []
    for rpid in range(1, n_comments + 1):
        main = emotes[rng.choice(len(emotes), p=WEIGHTS)]
        chosen = [main] + ([emotes[rng.integers(len(emotes))]] if rng.random() < 0.1 else [])
        chosen = list(dict.fromkeys(chosen))
        filler = "".join(rng.choice(FILLER, size=rng.integers(2, 8)))
        sentence = filler + PHRASES[main]
        message = sentence + main + main + "".join(chosen[1:])
        for emote in chosen:
            rows.append({"rpid": rpid, "bvid": f"BV{rpid % 12:02d}", "emoji_alt": emote,
                         "emoji_name": emote.strip("[]"), "message": message, "sentence": sentence})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return synthetic_rows()
