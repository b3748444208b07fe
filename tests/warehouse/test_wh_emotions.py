"""Migration 8: `emotion_texts`, `emotion_labels` and the `daily_emotions` view, in real DuckDB files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from emopulse.warehouse import Warehouse, catalog_path, migrate, publish_snapshots, schema_version
from emopulse.warehouse.merge import merge_rows
from emopulse.warehouse.migrations import MIGRATIONS

DAY = 1764547200  # 2025-12-01 00:00 UTC


def test_a_version_7_warehouse_with_data_migrates_to_8_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v7.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, [m for m in MIGRATIONS if m.version <= 7])
    for name in ("emotion_texts", "emotion_labels"):  # migration 1 builds today's tables: make it a true v7
        con.execute(f"DROP TABLE {name}")
    con.execute("INSERT INTO comments (rpid, bvid, message, ctime) VALUES (7, 'BV1', 'hi', ?)", [DAY])
    con.execute("INSERT INTO sentiment_pairs (source, guid, label) VALUES ('s', '1', 'positive')")
    con.execute("INSERT INTO models (model_id, task, version) VALUES ('e1', 'emotions', 1)")
    con.execute("INSERT INTO predictions (model_id, entity_kind, entity_id, label, score, rank) "
                "VALUES ('e1', 'comment', '7', 'joy', 0.5, 1)")
    assert schema_version(con) == 7
    con.close()

    with Warehouse.open(path, command="pytest") as wh:  # opening migrates
        assert schema_version(wh.con) >= 8
        assert wh.con.execute("SELECT rpid, message FROM comments").fetchall() == [(7, "hi")]
        assert wh.con.execute("SELECT source, guid, label FROM sentiment_pairs").fetchall() == [("s", "1", "positive")]
        assert wh.con.execute("SELECT day::VARCHAR, entity_kind, emotion, mean_energy, n FROM daily_emotions"
                              ).fetchall() == [("2025-12-01", "comment", "joy", 5.0, 1)]
        wh.con.execute("INSERT INTO emotion_texts (source, split, text_id, labels) VALUES ('g', 'train', 'a', ['joy'])")
        with pytest.raises(duckdb.ConstraintException):  # keyed by (source, split, text_id)
            wh.con.execute("INSERT INTO emotion_texts (source, split, text_id) VALUES ('g', 'train', 'a')")
        wh.con.execute("INSERT INTO emotion_labels (source, label_id, name) VALUES ('g', 0, 'joy')")
        with pytest.raises(duckdb.ConstraintException):  # keyed by (source, label_id)
            wh.con.execute("INSERT INTO emotion_labels (source, label_id, name) VALUES ('g', 0, 'anger')")
        assert migrate(wh.con) == []


def test_merge_rows_upserts_a_list_column(wh: Warehouse) -> None:
    merge_rows(wh, "emotion_texts", {"source": ["g", "g"], "split": ["train", "dev"], "text_id": ["a", "a"],
                                     "labels": [["anger", "joy"], ("neutral",)], "line": [1, 1]})
    merge_rows(wh, "emotion_texts", {"source": ["g", "g"], "split": ["train", "dev"], "text_id": ["a", "a"],
                                     "labels": [["joy"], None], "line": [3, 2]})  # NULL keeps the list
    assert wh.con.execute("SELECT split, labels, line FROM emotion_texts ORDER BY split").fetchall() == [
        ("dev", ["neutral"], 2), ("train", ["joy"], 3)]


def test_daily_emotions_averages_the_latest_emotions_model_per_day_kind_and_emotion(wh: Warehouse,
                                                                                   home: Path) -> None:
    con = wh.con
    con.execute("INSERT INTO models (model_id, task, version) VALUES "
                "('e1', 'emotions', 1), ('e2', 'emotions', 2), ('s9', 'sentiment', 9)")
    con.execute("INSERT INTO comments (rpid, ctime) VALUES (7, ?), (8, ?), (9, ?)",
                [DAY, DAY + 86399, DAY - 1800])  # 9: 23:30 UTC the day before (07:30 in Shanghai)
    con.execute("INSERT INTO posts (post_id, published_date) VALUES ('p1', '2025-12-02'), ('p2', NULL)")
    con.execute("""INSERT INTO predictions (model_id, entity_kind, entity_id, label, score, rank) VALUES
        ('e2', 'comment', '7', 'joy', 0.8, 1), ('e2', 'comment', '7', 'anger', 0.1, 2),
        ('e2', 'comment', '8', 'joy', 0.4, 1), ('e2', 'comment', '8', 'anger', 0.3, 2),
        ('e2', 'comment', '9', 'joy', 0.5, 1),
        ('e2', 'post', 'p1', 'anger', 0.9, 1), ('e2', 'post', 'p1', 'joy', 0.2, 2),
        ('e2', 'post', 'p2', 'joy', 1.0, 1),        -- no date: left out
        ('e2', 'comment', '404', 'joy', 1.0, 1),    -- no such comment: left out
        ('e2', 'text', '7', 'joy', 1.0, 1),         -- neither a comment nor a post
        ('e1', 'comment', '7', 'joy', 0.0, 1), ('e1', 'post', 'p1', 'sadness', 1.0, 1),  -- an older model
        ('s9', 'comment', '7', 'positive', 1.0, 1)  -- another task
    """)
    expected = [("2025-11-30", "comment", "joy", 5.0, 1),
                ("2025-12-01", "comment", "anger", 2.0, 2),  # (0.1 + 0.3) / 2 * 10
                ("2025-12-01", "comment", "joy", 6.0, 2),  # (0.8 + 0.4) / 2 * 10
                ("2025-12-02", "post", "anger", 9.0, 1),
                ("2025-12-02", "post", "joy", 2.0, 1)]
    query = ("SELECT day::VARCHAR, entity_kind, emotion, round(mean_energy, 9), n FROM daily_emotions "
             "ORDER BY day, entity_kind, emotion")
    assert con.execute(query).fetchall() == expected
    wh.mark_changed("predictions")
    publish_snapshots(wh, home)
    with duckdb.connect(str(catalog_path(home)), read_only=True) as catalog:  # readers get the same view
        assert catalog.execute(query).fetchall() == expected
