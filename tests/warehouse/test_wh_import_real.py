"""The shared real comment files, imported into a warehouse and cleaned end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from emopulse.ingest.files import read_comment_file
from emopulse.warehouse import (
    Warehouse,
    publish_snapshots,
    query,
    refresh_emoji_stats,
    upsert_comments,
    upsert_emotes,
    upsert_videos,
)
from wh_builders import count

SHARED = Path(__file__).resolve().parents[2] / "../shared/data/bilibili"
pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared data not found at {SHARED} (a fresh clone has none)"
)


def load(wh: Warehouse, name: str) -> None:
    result = read_comment_file(SHARED / name)
    with wh.transaction():
        upsert_videos(wh, result.videos)
        upsert_emotes(wh, result.emotes)
        upsert_comments(wh, result.comments)


def test_seed_and_xycode_files_import_clean_and_publish(wh: Warehouse, home: Path) -> None:
    for name in ("riderich/cleaned_combined.csv", "xycode_comments.csv"):
        load(wh, name)
    counts = {t: count(wh, t) for t in ("comments", "comment_emotes", "videos", "emotes")}
    load(wh, "riderich/cleaned_combined.csv")  # again: nothing new
    assert {t: count(wh, t) for t in counts} == counts
    assert counts["comments"] == 2_642 + 14_523 and counts["videos"] == 14 + 11

    stats = refresh_emoji_stats(wh, min_share=0.01, min_comments=100)
    # the seed kept one emote per comment; keeping every emote gives more rows than its 2,642
    seed = wh.con.execute("SELECT count(*) FROM emoji_comments_keyed WHERE rpid < 0").fetchall()[0][
        0
    ]
    assert seed > 2_642
    assert stats.training_emotes >= 3 and stats.training_rows > 1_000
    top = wh.con.execute("SELECT emoji_alt FROM emoji_counts LIMIT 1").fetchall()[0][0]
    assert top == "[doge]"
    others = wh.con.execute("SELECT share FROM emoji_counts WHERE emoji_alt = 'others'").fetchall()
    assert others and 0 < others[0][0] < 1
    total = wh.con.execute("SELECT sum(share) FROM emoji_counts").fetchall()[0][0]
    assert total == pytest.approx(1.0)

    publish_snapshots(wh, home)
    df = query(home, "SELECT count(*) AS n FROM emoji_training_set")
    assert int(df.n[0]) == stats.training_rows
