"""Migration 5: today's top-k `predictions` rows carried over into the long table."""

from __future__ import annotations

import duckdb
from emopulse.warehouse import TABLES, migrate

OLD_PREDICTIONS = """
CREATE TABLE predictions (
  model_id VARCHAR, task VARCHAR, entity_id VARCHAR, rank INTEGER, label VARCHAR, score DOUBLE,
  scored_at TIMESTAMPTZ, PRIMARY KEY (model_id, entity_id, rank)
)"""


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                      "ORDER BY ordinal_position", [name]).fetchall()]


def test_old_top_k_rows_become_comment_rows_of_the_long_table(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    migrate(con)
    con.execute("DROP TABLE predictions")  # as a database of issue 8 was
    con.execute(OLD_PREDICTIONS)
    con.execute("ALTER TABLE models DROP COLUMN files")
    con.execute("ALTER TABLE models DROP COLUMN status")  # migration 10's
    con.execute("DELETE FROM schema_version WHERE version IN (5, 10)")
    con.execute("""INSERT INTO predictions VALUES
        ('m1', 'emoji', '101', 1, '[doge]', 0.6, '2025-01-02 03:04:05+00'),
        ('m1', 'emoji', '101', 2, '[笑哭]', 0.3, '2025-01-02 03:04:05+00'),
        ('m1', 'emoji', '102', 1, '[笑哭]', 0.5, '2025-01-02 03:04:06+00'),
        ('m1', 'emoji', '102', 2, '[笑哭]', 0.4, '2025-01-02 03:04:06+00'),
        ('m2', 'emoji', '101', 1, '[大哭]', 0.9, NULL)""")  # 102: a label twice (the old key allowed it)
    con.execute("INSERT INTO models (model_id, task, version) VALUES ('m1', 'emoji', 1)")
    assert migrate(con) == [5, 10] and migrate(con) == []
    assert _columns(con, "predictions") == list(TABLES["predictions"].columns)
    assert _columns(con, "models") == list(TABLES["models"].columns)
    rows = con.execute("SELECT model_id, entity_kind, entity_id, label, score, rank, strftime(scored_at, '%S') "
                       "FROM predictions ORDER BY model_id, entity_id, rank").fetchall()
    assert rows == [("m1", "comment", "101", "[doge]", 0.6, 1, "05"), ("m1", "comment", "101", "[笑哭]", 0.3, 2, "05"),
                    ("m1", "comment", "102", "[笑哭]", 0.5, 1, "06"), ("m2", "comment", "101", "[大哭]", 0.9, 1, None)]
    keys = con.execute("SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = 'predictions' "
                       "AND constraint_type = 'PRIMARY KEY'").fetchall()
    assert [tuple(k) for (k,) in keys] == [("model_id", "entity_kind", "entity_id", "label")]
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'predictions_v4'"
                       ).fetchall() == [(0,)]
    assert con.execute("SELECT model_id, files FROM models").fetchall() == [("m1", None)]


def test_on_a_fresh_database_migration_5_leaves_the_long_table_as_it_is(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    migrate(con)
    con.execute("INSERT INTO predictions (model_id, entity_kind, entity_id, label, score, rank) "
                "VALUES ('m', 'post', 'p1', 'positive', 0.7, 1)")
    con.execute("DELETE FROM schema_version WHERE version = 5")
    assert migrate(con) == [5]
    assert con.execute("SELECT entity_kind, label FROM predictions").fetchall() == [("post", "positive")]
