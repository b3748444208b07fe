"""Schema and migrations."""

from __future__ import annotations

import duckdb
from emopulse.warehouse import TABLES, Warehouse, migrate, schema_version
from emopulse.warehouse.migrations import MIGRATIONS


def test_migrations_twice_are_a_no_op(wh: Warehouse) -> None:
    assert schema_version(wh.con) == MIGRATIONS[-1].version
    assert migrate(wh.con) == []
    rows = wh.con.execute("SELECT count(*) FROM schema_version").fetchall()[0][0]
    assert rows == len(MIGRATIONS)


def test_reopening_keeps_data_and_version(home) -> None:
    with Warehouse.open(home / "warehouse.duckdb", command="first") as wh:
        wh.con.execute("INSERT INTO videos (bvid, status) VALUES ('BV1', 'ok')")
    with Warehouse.open(home / "warehouse.duckdb", command="again") as again:
        assert again.con.execute("SELECT bvid FROM videos").fetchall() == [("BV1",)]
        assert again.con.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] == len(MIGRATIONS)


def test_every_table_has_its_declared_primary_key(wh: Warehouse) -> None:
    for spec in TABLES.values():
        cols = wh.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [spec.name],
        ).fetchall()
        assert [c for (c,) in cols] == list(spec.columns), spec.name
        keys = wh.con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [spec.name],
        ).fetchall()
        assert [tuple(k) for (k,) in keys] == ([spec.primary_key] if spec.primary_key else [])


def test_a_fresh_connection_migrates_from_zero(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    assert schema_version(con) == 0
    assert migrate(con) == [m.version for m in MIGRATIONS]
    assert migrate(con) == []


def test_migration_6_adds_sentiment_pairs_to_a_version_5_warehouse(tmp_path) -> None:
    import duckdb
    import pytest

    from emopulse.warehouse.migrations import MIGRATIONS, migrate, schema_version

    con = duckdb.connect(str(tmp_path / "v5.duckdb"))
    migrate(con, [m for m in MIGRATIONS if m.version <= 5])
    con.execute("DROP TABLE sentiment_pairs")  # migration 1 builds today's tables: make it a true v5
    assert schema_version(con) == 5
    assert migrate(con) == [6, 7, 8, 9, 10]
    con.execute("INSERT INTO sentiment_pairs (source, guid, label) VALUES ('s', '1', 'positive')")
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO sentiment_pairs (source, guid, label) VALUES ('s', '1', 'negative')")


def test_migration_7_adds_captions_text_only_and_daily_sentiment_to_a_version_6_warehouse(tmp_path) -> None:
    import duckdb

    from emopulse.warehouse.migrations import MIGRATIONS, migrate, schema_version

    con = duckdb.connect(str(tmp_path / "v6.duckdb"))
    migrate(con, [m for m in MIGRATIONS if m.version <= 6])
    con.execute("DROP TABLE captions")  # migration 1 builds today's tables: make it a true v6
    con.execute("ALTER TABLE predictions DROP COLUMN text_only")
    con.execute("INSERT INTO models (model_id, task, version) VALUES ('s1', 'sentiment', 1)")
    con.execute("INSERT INTO comments (rpid, ctime) VALUES (7, 1764547200)")
    con.execute("INSERT INTO predictions (model_id, entity_kind, entity_id, label, score, rank) VALUES "
                "('s1', 'comment', '7', 'positive', 0.9, 1), ('s1', 'comment', '7', 'neutral', 0.1, 2)")
    assert schema_version(con) == 6
    assert migrate(con) == [7, 8, 9, 10]
    assert con.execute("SELECT entity_id, label, text_only FROM predictions ORDER BY rank").fetchall() == [
        ("7", "positive", None), ("7", "neutral", None)]  # carried over, not known to be text-only
    assert con.execute("SELECT day::VARCHAR, entity_kind, label, n, share FROM daily_sentiment").fetchall() == [
        ("2025-12-01", "comment", "positive", 1, 1.0)]
    con.execute("INSERT INTO captions (image_sha256, captioner, prompt_sha256, caption) VALUES ('a', 'c', 'p', 'x')")
    assert migrate(con) == []


def test_migration_9_adds_trend_forecasts_and_their_outcomes_to_a_version_8_warehouse(tmp_path) -> None:
    import duckdb
    import pytest

    from emopulse.warehouse.migrations import MIGRATIONS, migrate, schema_version

    con = duckdb.connect(str(tmp_path / "v8.duckdb"))
    migrate(con, [m for m in MIGRATIONS if m.version <= 8])
    con.execute("DROP TABLE trend_forecasts")  # migration 1 builds today's tables: make it a true v8
    assert schema_version(con) == 8
    assert migrate(con) == [9, 10]
    con.execute("INSERT INTO trend_windows (window_end, category, target_month, label_share, label_trend) VALUES "
                "('2024-01-31', 3, '2024-03-01', 0.2, 1), ('2024-02-29', 3, '2024-04-01', NULL, NULL)")
    con.execute("INSERT INTO trend_forecasts (model_id, category, window_end, target_month, share, share_lo, share_hi, "
                "trend) VALUES ('t1', 3, '2024-01-31', '2024-03-01', 0.15, 0.1, 0.3, 1), "
                "('t1', 3, '2024-02-29', '2024-04-01', 0.1, 0.05, 0.2, 0)")
    rows = con.execute("SELECT window_end::VARCHAR, actual_share, round(abs_error, 4), in_interval, trend_hit "
                       "FROM trend_forecast_outcomes").fetchall()
    assert rows == [("2024-01-31", 0.2, 0.05, True, True)]  # the open window has no outcome yet
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO trend_forecasts (model_id, category, window_end) VALUES ('t1', 3, '2024-01-31')")


def test_migration_10_makes_the_latest_model_of_each_task_its_champion(tmp_path) -> None:
    import duckdb

    from emopulse.warehouse.migrations import MIGRATIONS, migrate, schema_version

    con = duckdb.connect(str(tmp_path / "v9.duckdb"))
    migrate(con, [m for m in MIGRATIONS if m.version <= 9])
    for name in ("runs", "jobs", "frozen_sets", "model_decisions"):  # migration 1 builds today's tables
        con.execute(f"DROP TABLE {name}")
    con.execute("ALTER TABLE models DROP COLUMN status")
    assert schema_version(con) == 9
    con.execute("INSERT INTO models (model_id, task, version) VALUES ('e1', 'emoji', 1), ('e2', 'emoji', 2), "
                "('s1', 'sentiment', 1)")
    assert migrate(con) == [10]
    status = dict(con.execute("SELECT model_id, status FROM models").fetchall())
    assert status == {"e1": "retired", "e2": "champion", "s1": "champion"}  # what scoring used until now
    con.execute("INSERT INTO runs (run_id, job, status) VALUES ('r', 'crawl', 'completed')")
    con.execute("INSERT INTO frozen_sets (task, key_kind, key) VALUES ('emoji', 'video', 'BV1')")
    assert migrate(con) == []
