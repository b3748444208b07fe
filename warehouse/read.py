"""The read API: SQL over the published snapshots, never the writer's database.

`open_catalog` attaches `catalog.duckdb` read-only to an in-memory connection and then locks it
down: only files under `snapshots/` can be read (and the attached catalog file, which DuckDB always
allows; its spill folder is a private empty one), nothing else (no other file, no network, no
extensions, no Python objects), and the configuration cannot be changed back. The snapshot folder itself stays
reachable, so `query` runs only what DuckDB's own parser classifies as one query:

* exactly one statement (`duckdb.extract_statements`), of type SELECT, that `json_serialize_sql`
  (which serialises SELECT statements only) also reads as one SELECT; or `EXPLAIN` of such a
  query, with at most a `(FORMAT ...)` option, never `EXPLAIN ANALYZE` (it runs its statement);
* no table function outside a list of readers, generators and metadata functions, and no scalar
  function with side effects (`nextval`, `setseed`, `write_log`, `sleep_ms`, ...) or `getenv`.

Anything else raises `ReadOnlyViolation` naming what was refused, before the statement runs; a
file outside the snapshots that DuckDB's sandbox refuses while the query runs is reported the same
way.
"""

from __future__ import annotations

import atexit
import functools
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from .exceptions import ReadOnlyViolation, SnapshotMissing
from .snapshots import catalog_path, current_version_dir, snapshots_dir

__all__ = ["ResultFormat", "check_query", "format_result", "open_catalog", "query"]

ResultFormat = Literal["table", "csv", "json"]

# Table functions a query may call: file readers (DuckDB's sandbox keeps them inside the snapshot
# folder), generators and catalog metadata. Anything else (checkpoint, enable_logging, query,
# json_execute_serialized_sql, *_external_resource, arrow/pandas scans, ...) is refused.
READ_TABLE_FUNCTIONS = frozenset({
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
    "parquet_kv_metadata", "parquet_full_metadata", "parquet_bloom_probe",
    "read_csv", "read_csv_auto", "sniff_csv", "read_json", "read_json_auto", "read_ndjson",
    "read_ndjson_auto", "read_json_objects", "read_json_objects_auto", "read_ndjson_objects",
    "read_text", "read_blob", "glob",
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies",
    "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_optimizers",
    "duckdb_schemas", "duckdb_sequences", "duckdb_settings", "duckdb_tables", "duckdb_types",
    "duckdb_views", "duckdb_memory", "duckdb_temporary_files", "duckdb_variables",
    "pragma_table_info", "pragma_show", "pragma_version", "pragma_platform",
    "pragma_database_size", "pragma_storage_info", "pragma_metadata_info", "pragma_collations",
    "pg_timezone_names", "icu_calendar_names", "test_all_types",
})

# Scalar functions refused: those DuckDB marks as having side effects beyond returning a fresh
# value (random() and uuid() stay allowed), and getenv (only the DuckDB shell has it today).
REFUSED_SCALAR_FUNCTIONS = frozenset({
    "getenv", "nextval", "setval", "currval", "setseed", "sleep_ms", "pg_sleep", "write_log",
})

_EXPLAIN_OPTIONS = {"analyze", "analyse", "format"}
_ANALYZE = {"analyze", "analyse"}
_WORD = re.compile(r"[A-Za-z]+")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@functools.cache
def _spill_dir() -> Path:
    """This process's own folder for DuckDB's spill files.

    DuckDB always lets a connection read its temp directory, by default `.tmp` under the working
    directory, whatever lies there; a private empty folder keeps that a folder of spill files.
    """
    folder = Path(tempfile.mkdtemp(prefix="emopulse-read-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def open_catalog(home: str | Path) -> duckdb.DuckDBPyConnection:
    """A locked-down read-only connection whose default catalog is the published snapshot.

    The sandbox limits what files can be touched; it does not stop writing under `snapshots/`.
    Run SQL from outside through `query` (or `check_query` first), which refuses everything but
    a single query.
    """
    catalog = catalog_path(Path(home))
    if not catalog.exists() or current_version_dir(Path(home)) is None:
        raise SnapshotMissing(
            f"no snapshot published under {Path(home).absolute()} yet: run a command that writes "
            "the warehouse (a crawl or an import) first"
        )
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET temp_directory = {_quote(str(_spill_dir()))}")
        con.execute(f"ATTACH {_quote(str(catalog))} AS cat (READ_ONLY)")
        con.execute("USE cat")
        # the folder the views point at, as the writer spelled it (symlinks and all)
        folder = Path(con.execute("SELECT folder FROM snapshot_info").fetchall()[0][0])
        allowed = [str(snapshots_dir(Path(home))) + "/", str(folder.parent) + "/"]
        con.execute(f"SET allowed_directories = [{', '.join(map(_quote, dict.fromkeys(allowed)))}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET python_enable_replacements = false")  # no scans of the caller's objects
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _refuse(what: str) -> ReadOnlyViolation:
    return ReadOnlyViolation(f"only a single SELECT query may run on the catalog, not {what}")


_STATEMENT_NAMES = {
    "VARIABLE_SET": "SET VARIABLE",
    "CREATE_FUNC": "CREATE MACRO",
    "MULTI": "several statements",
}


def _statement_name(statement: duckdb.Statement) -> str:
    """What a statement is, as its first keyword and DuckDB's type: `COPY`, `INSTALL (LOAD)`."""
    kind = _STATEMENT_NAMES.get(statement.type.name, statement.type.name.replace("_", " "))
    try:
        tokens = _tokens(statement.query)
    except Exception:  # noqa: BLE001 - a name for a message only
        tokens = []
    first = tokens[0][2].upper() if tokens and tokens[0][3] == duckdb.token_type.keyword else ""
    return kind if not first or kind.startswith(first) else f"{first} ({kind})"


def _one_statement(
    con: duckdb.DuckDBPyConnection, sql: str, *, inside: str = ""
) -> duckdb.Statement:
    """The one statement in `sql`, as the parser of the connection that would run it reads it."""
    statements = con.extract_statements(sql)
    if not statements:
        raise ReadOnlyViolation(f"no SQL statement given{inside}")
    if len(statements) > 1:
        kinds = ", ".join(_statement_name(s) for s in statements)
        raise ReadOnlyViolation(
            f"only a single SELECT query may run on the catalog, not {len(statements)} "
            f"statements ({kinds}){inside}"
        )
    return statements[0]


def _tokens(sql: str) -> list[tuple[int, int, str, duckdb.token_type]]:
    """DuckDB's own tokens of `sql` (comments left out): (start byte, end byte, text, type)."""
    raw = sql.encode()
    found = duckdb.tokenize(sql)
    out = []
    for i, (start, kind) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(raw)
        if kind != duckdb.token_type.comment:
            out.append((start, end, raw[start:end].decode().strip(), kind))
    return out


def _explained_query(sql: str) -> tuple[str, str]:
    """For an EXPLAIN statement, the EXPLAIN prefix to run and the statement it explains."""
    tokens = _tokens(sql)
    if not tokens or tokens[0][2].lower() != "explain":
        raise ReadOnlyViolation("EXPLAIN could not be read: it does not start with EXPLAIN")
    i, fmt = 1, None
    if i < len(tokens) and tokens[i][2].lower() in _ANALYZE:
        raise ReadOnlyViolation(
            "EXPLAIN ANALYZE is refused: it runs the statement it explains (use EXPLAIN alone)"
        )
    if (
        i + 1 < len(tokens)
        and tokens[i][2] == "("
        and tokens[i + 1][2].lower() in _EXPLAIN_OPTIONS
    ):
        options: list[list[str]] = [[]]
        i += 1
        while i < len(tokens) and tokens[i][2] != ")":
            if tokens[i][2] == ",":
                options.append([])
            else:
                options[-1].append(tokens[i][2])
            i += 1
        if i == len(tokens):
            raise ReadOnlyViolation("EXPLAIN options are not closed with ')'")
        i += 1
        for option in options:
            words = [w.lower() for w in option]
            if _ANALYZE & set(words):
                raise ReadOnlyViolation(
                    "EXPLAIN (ANALYZE) is refused: it runs the statement it explains "
                    "(use EXPLAIN alone)"
                )
            value = option[1].strip("'\"") if len(option) == 2 else ""
            if words[:1] != ["format"] or not _WORD.fullmatch(value) or fmt is not None:
                raise ReadOnlyViolation(
                    f"EXPLAIN option {' '.join(option) or '(empty)'!r} is refused: "
                    "only one FORMAT option may be given"
                )
            fmt = value.lower()
    if i == len(tokens):
        raise ReadOnlyViolation("EXPLAIN of nothing: EXPLAIN needs a SELECT query")
    inner = sql.encode()[tokens[i][0]:].decode()
    return (f"EXPLAIN (FORMAT {fmt}) " if fmt else "EXPLAIN "), inner


def _functions(tree: Any) -> Iterator[tuple[str, str]]:
    """Every function a parsed statement calls: ("table" | "scalar", lower-cased name)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "TABLE_FUNCTION":
                fn = node.get("function")
                if not isinstance(fn, dict) or not isinstance(fn.get("function_name"), str):
                    yield "table", "?"
                    continue
                yield "table", fn["function_name"].lower()
                stack.extend(v for k, v in fn.items() if k != "function_name")
                stack.extend(v for k, v in node.items() if k != "function")
                continue
            name = node.get("function_name")
            if isinstance(name, str):
                yield "scalar", name.lower()
            stack.extend(node.values())


def _check_select(con: duckdb.DuckDBPyConnection, sql: str, *, inside: str = "") -> None:
    """Refuse `sql` unless it is one SELECT that calls only reading functions."""
    statement = _one_statement(con, sql, inside=inside)
    if statement.type != duckdb.StatementType.SELECT:
        raise _refuse(_statement_name(statement) + inside)
    parsed = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if parsed.get("error") or len(parsed.get("statements", [])) != 1:
        reason = parsed.get("error_message") or "DuckDB does not read it as one SELECT"
        raise ReadOnlyViolation(f"only a single SELECT query may run on the catalog{inside}: {reason}")
    for kind, name in _functions(parsed["statements"][0]):
        if kind == "table" and name not in READ_TABLE_FUNCTIONS:
            raise ReadOnlyViolation(
                f"table function {name}() is refused on the catalog{inside}: only file readers "
                "under the snapshots, generators and metadata functions may be called"
            )
        if kind == "scalar" and name in REFUSED_SCALAR_FUNCTIONS:
            raise ReadOnlyViolation(
                f"function {name}() is refused on the catalog{inside}: it has side effects or "
                "reads outside the snapshots"
            )


def check_query(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The SQL to run for `sql` on a catalog connection, or `ReadOnlyViolation` if it may not run.

    `con` (from `open_catalog`) only parses here; nothing of `sql` runs.
    """
    statement = _one_statement(con, sql)
    if statement.type == duckdb.StatementType.SELECT:
        _check_select(con, statement.query)
        return statement.query
    if statement.type == duckdb.StatementType.EXPLAIN:
        prefix, inner = _explained_query(statement.query)
        try:
            _check_select(con, inner, inside=" inside EXPLAIN")
        except (duckdb.ParserException, duckdb.InvalidInputException) as exc:
            raise ReadOnlyViolation(
                "EXPLAIN may only show the plan of a single SELECT query: "
                + str(exc).splitlines()[0]
            ) from exc
        text = prefix + inner
        rebuilt = _one_statement(con, text)  # what runs is our EXPLAIN of the checked query
        if rebuilt.type != duckdb.StatementType.EXPLAIN:
            raise _refuse(_statement_name(rebuilt))
        return text
    raise _refuse(_statement_name(statement))


def query(home: str | Path, sql: str) -> pd.DataFrame:
    """Run one read-only query (SELECT, or EXPLAIN of one) on the snapshot catalog.

    Anything else is refused with `ReadOnlyViolation` before it runs (see the module docstring).
    """
    con = open_catalog(home)
    try:
        text = check_query(con, sql)
        try:
            return con.execute(text).df()
        except duckdb.PermissionException as exc:
            raise ReadOnlyViolation(
                f"only files under {snapshots_dir(Path(home))}/ can be read by a query on the "
                f"catalog: {str(exc).splitlines()[0]}"
            ) from exc
    finally:
        con.close()


def format_result(df: pd.DataFrame, fmt: ResultFormat = "table") -> str:
    """Render a result: `table` for people, `csv` (header, rows) or `json` (array of objects)."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", force_ascii=False, date_format="iso") + "\n"
    if fmt == "table":
        if df.empty:
            return " ".join(map(str, df.columns)) + "\n(0 rows)\n"
        return df.to_string(index=False) + f"\n({len(df)} rows)\n"
    raise ValueError(f"format must be 'table', 'csv' or 'json', not {fmt!r}")
