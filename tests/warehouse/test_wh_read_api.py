"""The read API: SQL over the catalog only, locked down, usable while a writer works."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from emopulse.warehouse import (
    ReadOnlyViolation,
    SnapshotMissing,
    Warehouse,
    format_result,
    open_catalog,
    publish_snapshots,
    query,
    upsert_comments,
)
from wh_builders import make_comment


@pytest.fixture
def published(home: Path) -> Path:
    with Warehouse.open(home / "warehouse.duckdb", command="seed") as wh:
        upsert_comments(
            wh, [make_comment(1, "好[doge]", mid="1"), make_comment(2, "哈[笑哭]", mid="2")]
        )
        publish_snapshots(wh, home)
    return home


def test_no_snapshot_yet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotMissing, match="no snapshot published"):
        query(tmp_path, "SELECT 1")


def test_sql_works_while_another_process_writes(published: Path, holder) -> None:
    df = query(published, "SELECT rpid, sentence FROM comments ORDER BY rpid")
    assert df.to_dict("records") == [{"rpid": 1, "sentence": "好"}, {"rpid": 2, "sentence": "哈"}]


def test_files_outside_the_snapshots_are_refused(published: Path, tmp_path: Path) -> None:
    with pytest.raises(ReadOnlyViolation, match="only files under"):
        query(published, "SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(ReadOnlyViolation, match="only files under"):
        query(published, f"SELECT * FROM '{published / 'warehouse.duckdb'}'")
    con = open_catalog(published)
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        con.execute(f"ATTACH '{published / 'warehouse.duckdb'}' AS w")
    with pytest.raises(duckdb.Error):
        con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'")
    assert con.execute("SELECT count(*) FROM emoji_comments").fetchall() == [(2,)]


def test_only_reading_statements_run(published: Path) -> None:
    for sql in [
        "COPY comments TO 'x.csv'",
        "CREATE TABLE t AS SELECT 1",
        "SET threads = 1",
        "SELECT 1; DELETE FROM comments",
        "",
    ]:
        with pytest.raises(ReadOnlyViolation):
            query(published, sql)
    with pytest.raises(ReadOnlyViolation, match="2 statements"):
        query(published, "SELECT 1 AS a; SELECT 2 AS b")


def test_formats(published: Path) -> None:
    df = query(published, "SELECT emoji_alt, emoji_name FROM emoji_comments ORDER BY emoji_alt")
    assert format_result(df, "csv") == "emoji_alt,emoji_name\n[doge],doge\n[笑哭],笑哭\n"
    assert json.loads(format_result(df, "json")) == [
        {"emoji_alt": "[doge]", "emoji_name": "doge"},
        {"emoji_alt": "[笑哭]", "emoji_name": "笑哭"},
    ]
    table = format_result(df, "table")
    assert "[笑哭]" in table and "(2 rows)" in table
    assert format_result(df.iloc[:0], "json").strip() == "[]"
    with pytest.raises(ValueError):
        format_result(df, "xml")  # type: ignore[arg-type]


def test_a_home_reached_through_a_symlink_reads_too(published: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(published, target_is_directory=True)
    assert query(link, "SELECT count(*) AS n FROM comments").n[0] == 2
