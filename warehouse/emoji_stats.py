"""Emote statistics over `emoji_comments`: the counts table and the training set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from .schema import EMOJI_COMMENTS_COLUMNS
from .writer import Warehouse, connection_of

__all__ = ["EmojiStats", "OTHERS", "export_emoji_counts", "refresh_emoji_stats"]

OTHERS = "others"  # emoji_alt and emoji_name of the row that folds the rare emotes

_COUNTS_SQL = f"""
INSERT INTO emoji_counts
WITH per_emote AS (
    SELECT emoji_alt, mode(emoji_name) AS emoji_name, count(*) AS n
    FROM emoji_comments GROUP BY emoji_alt
), shares AS (
    SELECT *, n / sum(n) OVER () AS share FROM per_emote
)
SELECT emoji_alt, emoji_name, n, share FROM (
    SELECT emoji_alt, emoji_name, n, share FROM shares WHERE share >= $min_share
    UNION ALL
    SELECT '{OTHERS}', '{OTHERS}', sum(n), sum(share) FROM shares
    WHERE share < $min_share HAVING count(*) > 0
)
ORDER BY emoji_alt = '{OTHERS}', n DESC, emoji_alt
"""

_TRAINING_SQL = f"""
INSERT INTO emoji_training_set
SELECT rpid, {", ".join(EMOJI_COMMENTS_COLUMNS)} FROM emoji_comments_keyed
WHERE emoji_alt IN (
    SELECT emoji_alt FROM emoji_comments GROUP BY emoji_alt HAVING count(*) > $min_comments
)
ORDER BY emoji_alt, rpid
"""


@dataclass(frozen=True, slots=True)
class EmojiStats:
    """What a refresh produced."""

    emoji_comments: int  # deduplicated (comment, emote) rows
    emotes: int  # distinct emotes among them
    training_rows: int
    training_emotes: int
    training_comments: int  # distinct rpids in the training set


def refresh_emoji_stats(
    wh: Warehouse, *, min_share: float = 0.01, min_comments: int = 300
) -> EmojiStats:
    """Rebuild `emoji_counts` (emotes with share < `min_share` folded into `others`) and
    `emoji_training_set` (rows of emotes with more than `min_comments` rows), in one transaction."""
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share must be within [0, 1], not {min_share}")
    if min_comments < 0:
        raise ValueError(f"min_comments must be >= 0, not {min_comments}")
    with wh.transaction() as con:
        con.execute("DELETE FROM emoji_counts")
        con.execute(_COUNTS_SQL, {"min_share": min_share})
        con.execute("DELETE FROM emoji_training_set")
        con.execute(_TRAINING_SQL, {"min_comments": min_comments})
        row = con.execute(
            "SELECT (SELECT count(*) FROM emoji_comments), "
            "(SELECT count(DISTINCT emoji_alt) FROM emoji_comments), "
            "count(*), count(DISTINCT emoji_alt), count(DISTINCT rpid) FROM emoji_training_set"
        ).fetchall()[0]
    wh.mark_changed("emoji_counts", "emoji_training_set")
    return EmojiStats(*row)


def export_emoji_counts(
    wh_or_con: Warehouse | duckdb.DuckDBPyConnection, out_csv: str | Path
) -> Path:
    """Write `emoji_counts` (largest first, `others` last) to a UTF-8 CSV with a header."""
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    df = (
        connection_of(wh_or_con)
        .sql(f"SELECT * FROM emoji_counts ORDER BY emoji_alt = '{OTHERS}', count DESC, emoji_alt")
        .df()
    )
    df.to_csv(out, index=False)
    return out
