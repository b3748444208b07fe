"""Post data for the trend forecaster's tests: categories whose shares move, visibly, within 60 days.

`write_trend_posts(folder)` writes the trend dataset's two CSV layouts (`emopulse import mkt`):
posts (`poster_id, post_id, nums_category_img, post_date, post_like, post_collect`, one image
each, full dates) and texts (`poster_id, post_id, summary`) for some posts. Category c's share
follows softmax over categories of `amp * sin(2 pi t / period_c + phase_c)`: slow waves, so a
category that has been rising for 60 days keeps rising for a while, which persistence misses.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np

START = date(2023, 1, 1)


def trend_shares(days: int, categories: int, *, seed: int = 0, amp: float = 1.6) -> np.ndarray:
    """[days, categories] expected shares."""
    rng = np.random.default_rng(seed)
    period = rng.uniform(240, 420, categories)
    phase = rng.uniform(0, 2 * np.pi, categories)
    t = np.arange(days)[:, None]
    logits = amp * np.sin(2 * np.pi * t / period + phase)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def write_trend_posts(folder: Path, *, days: int = 430, categories: int = 10, per_day: int = 30, seed: int = 0,
                      text_share: float = 0.3, start: date = START, first_day: int = 0,
                      name: str = "posts") -> tuple[Path, Path]:
    """The posts CSV and the texts CSV (`<name>.csv`, `<name>_texts.csv`) in `folder`, for days
    `first_day` .. `days - 1` of the curves (post ids count on from the day: a later file adds
    posts, never the same ones)."""
    rng = np.random.default_rng([seed + 1, first_day])
    shares = trend_shares(days, categories, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    posts, texts = ["poster_id,post_id,nums_category_img,post_date,post_like,post_collect"], ["poster_id,post_id,summary"]
    n = first_day * 10_000
    for d in range(first_day, days):
        day = (start + timedelta(days=d)).isoformat()
        for c in rng.choice(categories, size=rng.poisson(per_day), p=shares[d]):
            post_id = f"{n:024x}"
            posts.append(f"u{n % 97},{post_id},{c},{day},{int(rng.integers(0, 500))},{int(rng.integers(0, 100))}")
            if rng.random() < text_share:
                texts.append(f"u{n % 97},{post_id},款式{c} 今日穿搭分享 #ootd")
            n += 1
    posts_csv, texts_csv = folder / f"{name}.csv", folder / f"{name}_texts.csv"
    posts_csv.write_text("\n".join(posts) + "\n", encoding="utf-8")
    texts_csv.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return posts_csv, texts_csv
