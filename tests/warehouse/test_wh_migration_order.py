"""Migrations written in parallel may be merged out of order: every unrecorded one still runs."""

from __future__ import annotations

import duckdb
from emopulse.warehouse.migrations import Migration, migrate, schema_version


def test_a_migration_merged_after_a_higher_one_still_runs(tmp_path) -> None:
    def table(name: str) -> Migration:
        return Migration(int(name[1:]), name, lambda con: con.execute(f"CREATE TABLE {name} (x INTEGER)"))

    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    assert migrate(con, [table("t1"), table("t3")]) == [1, 3]
    assert migrate(con, [table("t1"), table("t2"), table("t3")]) == [2]
    assert migrate(con, [table("t1"), table("t2"), table("t3")]) == []
    assert schema_version(con) == 3
    assert {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()} >= {"t1", "t2", "t3"}
