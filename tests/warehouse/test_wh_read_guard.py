"""The read API is read-only: every statement that could write, reach outside the snapshots or
change the connection is refused by name, and no file of the published home changes.

One published home (two versions, so the current one holds hard links) serves the whole module;
each case compares the sha256 of every file under it, and the set of files, before and after.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from emopulse.flows.cli import app
from emopulse.warehouse import (
    ReadOnlyViolation,
    Warehouse,
    catalog_path,
    current_version_dir,
    publish_snapshots,
    query,
    upsert_comments,
)
from wh_builders import make_comment

SECRET = "TOPSECRET-7f3a"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`base/home` published twice, and `base/outside` with files no query may read."""
    base = tmp_path_factory.mktemp("guard")
    home = base / "home"
    with Warehouse.open(home / "warehouse.duckdb", command="seed") as wh:
        upsert_comments(wh, [make_comment(1, "好[doge]", mid="1"), make_comment(2, "哈[笑哭]", mid="2")])
        publish_snapshots(wh, home)
        upsert_comments(wh, [make_comment(3, "嗯[doge]", mid="3")])
        publish_snapshots(wh, home)
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n", encoding="utf-8")
    (outside / "secret.csv").write_text(f"word\n{SECRET}\n", encoding="utf-8")
    return base


@pytest.fixture(scope="module")
def home(base: Path) -> Path:
    return base / "home"


def fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path (so added/removed files show too)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def comments_file(version: Path) -> Path:
    """A published file the `comments` view reads (`comments.parquet` or one of its parts)."""
    files = sorted(p for p in version.rglob("*.parquet") if "comments" in (p.stem, p.parent.name))
    assert files, f"no comments file under {version}"
    return files[0]


def fill(sql: str, base: Path) -> str:
    home = base / "home"
    current = current_version_dir(home)
    assert current is not None
    versions = sorted(p for p in (home / "snapshots").iterdir() if p.is_dir())
    assert len(versions) == 2 and versions[-1] == current
    return sql.format(
        home=home, snap=home / "snapshots", cur=current, out=base / "outside",
        target=comments_file(current), old_target=comments_file(versions[0]),
        secret_csv=base / "outside" / "secret.csv", secret_txt=base / "outside" / "secret.txt",
    )


def unguarded(home: Path, sql: str) -> list[dict]:
    """What plain DuckDB answers over the same catalog, without any of the read API's locks."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{catalog_path(home)}' AS cat (READ_ONLY)")
        con.execute("USE cat")
        return con.execute(sql).df().to_dict("records")
    finally:
        con.close()


COPY_ONE = "COPY (SELECT 1 AS x) TO '{target}'"
COPY_PARTS = "COPY (SELECT 1 AS x) TO '{cur}' (FORMAT parquet, PARTITION_BY (x), OVERWRITE)"
NOT = "only a single SELECT query may run on the catalog, not "
ANALYZE = r"EXPLAIN (\(ANALYZE\) |ANALYZE )is refused: it runs the statement it explains"
OUTSIDE = r"only files under .*/snapshots/ can be read by a query on the catalog: .*Cannot access"
TABLE_FN = "table function {}\\(\\) is refused on the catalog"
SCALAR_FN = "function {}\\(\\) is refused on the catalog: it has side effects or reads outside"

REFUSED = [
    # writing files
    ("copy-to-current", COPY_ONE, NOT + "COPY"),
    ("copy-partitioned-overwrite", COPY_PARTS, NOT + "COPY"),
    ("copy-outside", "COPY comments TO '{out}/dump.csv'", NOT + "COPY"),
    ("copy-from", "COPY comments FROM '{secret_csv}'", NOT + "COPY"),
    ("explain-analyze-copy", "EXPLAIN ANALYZE " + COPY_ONE, ANALYZE),
    ("explain-analyze-copy-partitioned", "EXPLAIN ANALYZE " + COPY_PARTS, ANALYZE),
    ("explain-analyse-spelling", "EXPLAIN ANALYSE " + COPY_ONE, ANALYZE),
    ("explain-comment-analyze", "explain /* x */ analyze " + COPY_ONE, ANALYZE),
    ("explain-option-analyze", "EXPLAIN (ANALYZE) " + COPY_ONE, ANALYZE),
    ("explain-format-and-analyze", "EXPLAIN (FORMAT json, ANALYZE true) " + COPY_ONE, ANALYZE),
    ("explain-analyze-false", "EXPLAIN (ANALYZE false) SELECT 1", ANALYZE),
    ("explain-analyze-select", "EXPLAIN ANALYZE SELECT count(*) FROM comments", ANALYZE),
    ("explain-copy", "EXPLAIN " + COPY_ONE, NOT + "COPY inside EXPLAIN"),
    ("explain-format-create", "EXPLAIN (FORMAT json) CREATE TABLE t AS SELECT 1", NOT + "CREATE inside EXPLAIN"),
    ("export-database", "EXPORT DATABASE '{cur}/export'", NOT + "EXPORT"),
    ("export-outside", "EXPORT DATABASE '{out}/export' (FORMAT parquet)", NOT + "EXPORT"),
    # other databases, extensions, settings
    ("attach-writer", "ATTACH '{home}/warehouse.duckdb' AS w", NOT + "ATTACH"),
    ("attach-new-file", "ATTACH '{cur}/new.duckdb' AS n", NOT + "ATTACH"),
    ("detach", "DETACH cat", NOT + "DETACH"),
    ("install", "INSTALL httpfs", NOT + r"INSTALL \(LOAD\)"),
    ("load", "LOAD json", NOT + "LOAD"),
    ("set-external-access", "SET enable_external_access = true", NOT + "SET"),
    ("set-threads", "SET threads = 1", NOT + "SET"),
    ("reset", "RESET threads", NOT + r"RESET \(SET\)"),
    ("set-variable", "SET VARIABLE v = 1", NOT + "SET"),
    ("use", "USE memory", NOT + r"USE \(SET\)"),
    ("pragma", "PRAGMA enable_profiling", NOT + "PRAGMA"),
    ("pragma-table-info", "PRAGMA table_info('comments')", NOT + "PRAGMA"),
    ("call-checkpoint", "CALL checkpoint()", NOT + "CALL"),
    ("call-logging", "CALL enable_logging(storage = 'file', storage_path = '{cur}/log')", NOT + "CALL"),
    ("begin", "BEGIN TRANSACTION", NOT + r"BEGIN \(TRANSACTION\)"),
    ("checkpoint", "CHECKPOINT", NOT),
    # creating and changing things
    ("create-table", "CREATE TABLE t AS SELECT 1 AS x", NOT + "CREATE"),
    ("create-temp-table", "CREATE TEMP TABLE t AS SELECT 1 AS x", NOT + "CREATE"),
    ("create-view", "CREATE VIEW v AS SELECT 1 AS x", NOT + "CREATE"),
    ("replace-view", "CREATE OR REPLACE VIEW comments AS SELECT 1 AS x", NOT + "CREATE"),
    ("create-macro", "CREATE MACRO m(x) AS x + 1", NOT + "CREATE"),
    ("create-table-macro", "CREATE MACRO tm() AS TABLE SELECT 1", NOT + "CREATE"),
    ("create-secret", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", NOT + "CREATE"),
    ("create-persistent-secret", "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", NOT + "CREATE"),
    ("insert", "INSERT INTO comments (rpid) VALUES (99)", NOT + "INSERT"),
    ("update", "UPDATE comments SET message = 'x'", NOT + "UPDATE"),
    ("delete", "DELETE FROM comments", NOT + "DELETE"),
    ("cte-delete", "WITH x AS (SELECT 1) DELETE FROM comments", NOT + r"WITH \(DELETE\)"),
    ("drop-view", "DROP VIEW comments", NOT + "DROP"),
    ("drop-table", "DROP TABLE IF EXISTS comments", NOT + "DROP"),
    ("pivot-without-in", "PIVOT comments ON rpid USING count(*)", NOT + r"PIVOT \(several statements\)"),
    # more than one statement
    ("select-then-copy", "SELECT 1; " + COPY_ONE, NOT + r"2 statements \(SELECT, COPY\)"),
    ("two-selects", "SELECT 1 AS a; SELECT 2 AS b", NOT + r"2 statements \(SELECT, SELECT\)"),
    ("select-then-drop-semicolon-in-comment", "SELECT 1 /* ; */ ; DROP VIEW comments", NOT + "2 statements"),
    ("explain-then-copy", "EXPLAIN SELECT 1; " + COPY_ONE, NOT + "2 statements"),
    # statements hidden behind comments
    ("block-comment-then-copy", "/* SELECT 1 */ " + COPY_ONE, NOT + "COPY"),
    ("line-comment-then-delete", "-- SELECT * FROM comments\nDELETE FROM comments", NOT + "DELETE"),
    ("select-comment-copy", "SELECT 1 --\n; " + COPY_ONE, NOT + "2 statements"),
    ("comment-then-explain-analyze", "/* EXPLAIN SELECT 1 */ EXPLAIN ANALYZE " + COPY_ONE, ANALYZE),
    ("nested-comment-copy", "/* a /* b */ SELECT */ " + COPY_ONE, NOT + "COPY"),
    # reading outside the snapshots
    ("read-csv-outside", "SELECT * FROM read_csv('{secret_csv}')", OUTSIDE),
    ("read-csv-replacement-scan", "SELECT * FROM '{secret_csv}'", OUTSIDE),
    ("read-text-outside", "SELECT * FROM read_text('{secret_txt}')", OUTSIDE),
    ("read-blob-outside", "SELECT * FROM read_blob('{secret_txt}')", OUTSIDE),
    ("read-text-dotdot", "SELECT content FROM read_text('{snap}/../../outside/secret.txt')", OUTSIDE),
    ("read-json-outside", "SELECT * FROM read_json_objects('{secret_txt}')", OUTSIDE),
    ("glob-outside", "SELECT * FROM glob('{out}/*')", OUTSIDE),
    ("glob-root", "SELECT * FROM glob('/*')", OUTSIDE),
    ("read-parquet-writer-db", "SELECT * FROM read_parquet('{home}/warehouse.duckdb')", OUTSIDE),
    ("read-writer-wal", "SELECT * FROM read_blob('{home}/warehouse.duckdb.wal')", OUTSIDE),
    ("sniff-outside", "SELECT * FROM sniff_csv('{secret_csv}')", OUTSIDE),
    ("http", "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')", OUTSIDE),
    ("getenv", "SELECT getenv('HOME')", SCALAR_FN.format("getenv")),
    ("getenv-in-lambda", "SELECT list_transform(['HOME'], x -> getenv(x))", SCALAR_FN.format("getenv")),
    # functions that write, change state or run hidden SQL
    ("fn-checkpoint", "SELECT * FROM checkpoint()", TABLE_FN.format("checkpoint")),
    ("fn-enable-logging", "SELECT * FROM enable_logging(storage_path = '{cur}/log')", TABLE_FN.format("enable_logging")),
    ("fn-quoted-name", 'SELECT * FROM "Enable_Logging"()', TABLE_FN.format("enable_logging")),
    ("fn-query", "SELECT * FROM query('SELECT 1')", TABLE_FN.format("query")),
    ("fn-serialized-sql", "SELECT * FROM system.main.json_execute_serialized_sql('x')", TABLE_FN.format("json_execute_serialized_sql")),
    ("fn-nested-table-fn", "SELECT * FROM comments WHERE rpid IN (SELECT * FROM force_checkpoint())", TABLE_FN.format("force_checkpoint")),
    ("fn-nextval", "SELECT nextval('s')", SCALAR_FN.format("nextval")),
    ("fn-write-log", "SELECT write_log('x')", SCALAR_FN.format("write_log")),
    ("fn-setseed", "SELECT setseed(0.5)", SCALAR_FN.format("setseed")),
    ("empty", "-- nothing here", "no SQL statement given"),
]


@pytest.mark.parametrize(("sql", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_by_name_and_nothing_changes(base: Path, home: Path, sql: str, message: str) -> None:
    before = fingerprint(base)
    with pytest.raises(ReadOnlyViolation, match=message) as refused:
        query(home, fill(sql, base))
    assert SECRET not in str(refused.value)
    assert fingerprint(base) == before


ALLOWED = [
    ("select", "SELECT rpid FROM comments ORDER BY rpid", [{"rpid": 1}, {"rpid": 2}, {"rpid": 3}]),
    ("with-select", "WITH c AS (SELECT rpid FROM comments WHERE rpid > 1) SELECT count(*) AS n FROM c", [{"n": 2}]),
    ("over-a-view", "SELECT emoji_alt, count(*) AS n FROM emoji_comments GROUP BY 1 ORDER BY 1",
     [{"emoji_alt": "[doge]", "n": 2}, {"emoji_alt": "[笑哭]", "n": 1}]),
    ("from-first", "FROM comments SELECT count(*) AS n", [{"n": 3}]),
    ("comments-and-semicolon", "/* how many */ SELECT count(*) AS n FROM comments; -- done", [{"n": 3}]),
    # files under the snapshots: the same answer as plain DuckDB gives
    ("read-parquet-current", "SELECT count(*) AS n, max(rpid) AS top FROM read_parquet('{target}')", None),
    ("read-parquet-old-version", "SELECT count(*) AS n FROM '{old_target}'", None),
    ("parquet-metadata", "SELECT count(*) AS n FROM parquet_metadata('{target}')", None),
    ("glob-snapshots", "SELECT count(*) AS n FROM glob('{snap}/*/manifest.json')", [{"n": 2}]),
    ("read-text-snapshots", "SELECT content FROM read_text('{snap}/CURRENT')", None),
    ("pivot-with-in", "SELECT * FROM (SELECT rpid FROM comments) PIVOT (count(*) FOR rpid IN (1, 2))",
     [{"1": 1, "2": 1}]),
    ("fresh-values", "SELECT random() < 1 AS r, uuid() IS NOT NULL AS u", [{"r": True, "u": True}]),
]


@pytest.mark.parametrize(("sql", "rows"), [c[1:] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_ordinary_queries_still_work(base: Path, home: Path, sql: str, rows: list[dict] | None) -> None:
    before = fingerprint(base)
    got = query(home, fill(sql, base)).to_dict("records")
    assert got == (unguarded(home, fill(sql, base)) if rows is None else rows)
    assert got and all(v is not None for v in got[0].values())
    assert fingerprint(base) == before


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN SELECT * FROM comments",
        "EXPLAIN (FORMAT json) SELECT count(*) FROM emoji_comments",
        "explain (format 'json') select 1",
        'EXPLAIN (FORMAT "yaml") SELECT 1',
        "EXPLAIN /* 计划 */ (SELECT 1) UNION (SELECT 2)",
    ],
)
def test_explain_of_a_query_shows_the_plan_without_running_it(base: Path, home: Path, sql: str) -> None:
    before = fingerprint(base)
    df = query(home, sql)
    assert list(df.explain_key) == ["physical_plan"]  # not "analyzed_plan": nothing ran
    assert fingerprint(base) == before


@pytest.mark.parametrize("sql", ["DESCRIBE comments", "SUMMARIZE comments", "SHOW TABLES"])
def test_describe_and_show_are_queries(home: Path, sql: str) -> None:
    assert len(query(home, sql)) > 0


def test_the_attached_catalog_file_is_the_one_file_outside_the_snapshots_duckdb_allows(
    base: Path, home: Path
) -> None:
    """DuckDB always lets a connection read the database files it has attached (`catalog.duckdb`
    and its `.wal` names); it holds only the view definitions readers see anyway."""
    before = fingerprint(base)
    df = query(home, fill("SELECT size FROM read_blob('{home}/catalog.duckdb')", base))
    assert df["size"].tolist() == [(home / "catalog.duckdb").stat().st_size]
    with pytest.raises(ReadOnlyViolation, match=NOT + "COPY"):
        query(home, fill("COPY (SELECT 1) TO '{home}/catalog.duckdb.wal'", base))
    assert fingerprint(base) == before


def test_the_working_directorys_tmp_folder_is_not_readable(
    base: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB always allows its temp directory, `.tmp` under the working directory by default."""
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text(SECRET, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for path in (".tmp/secret.txt", str(tmp_path / ".tmp" / "secret.txt")):
        with pytest.raises(ReadOnlyViolation, match=OUTSIDE) as refused:
            query(home, f"SELECT content FROM read_text('{path}')")
        assert SECRET not in str(refused.value)


def test_the_cli_prints_the_refusal_and_exits_non_zero(base: Path, home: Path) -> None:
    before = fingerprint(base)
    result = CliRunner().invoke(app, ["sql", fill("EXPLAIN ANALYZE " + COPY_PARTS, base), "--home", str(home)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "error: EXPLAIN ANALYZE is refused: it runs the statement it explains" in said
    assert "Traceback" not in result.output
    assert fingerprint(base) == before
    after = CliRunner().invoke(app, ["sql", "SELECT count(*) AS n FROM comments", "--home", str(home), "--format", "csv"])
    assert after.exit_code == 0 and after.stdout == "n\n3\n"


@pytest.mark.parametrize("sql, said", [
    ("SELEC 1", "ParserException"),
    ("SELECT no_such_column FROM comments", "BinderException"),
])
def test_the_cli_names_an_sql_error_in_one_line_without_a_traceback(home: Path, sql: str, said: str) -> None:
    result = CliRunner().invoke(app, ["sql", sql, "--home", str(home)])
    assert result.exit_code == 1
    assert f"error: {said}" in result.output and "Traceback" not in result.output
