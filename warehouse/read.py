"""The read API: SQL over the published snapshots, never the writer's database.

`open_catalog` attaches `catalog.duckdb` read-only to an in-memory connection and then locks it
down: only files under `snapshots/` can be read, nothing else (no other file, no network), and the
configuration cannot be changed back. `query` also refuses anything but SELECT/EXPLAIN, because
the snapshot folder itself stays reachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from .exceptions import ReadOnlyViolation, SnapshotMissing
from .snapshots import catalog_path, current_version_dir, snapshots_dir

__all__ = ["ResultFormat", "format_result", "open_catalog", "query"]

ResultFormat = Literal["table", "csv", "json"]

_READ_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_catalog(home: str | Path) -> duckdb.DuckDBPyConnection:
    """A locked-down read-only connection whose default catalog is the published snapshot."""
    catalog = catalog_path(Path(home))
    if not catalog.exists() or current_version_dir(Path(home)) is None:
        raise SnapshotMissing(
            f"no snapshot published under {Path(home).absolute()} yet: run a command that writes "
            "the warehouse (a crawl or an import) first"
        )
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {_quote(str(catalog))} AS cat (READ_ONLY)")
        con.execute("USE cat")
        # the folder the views point at, as the writer spelled it (symlinks and all)
        folder = Path(con.execute("SELECT folder FROM snapshot_info").fetchall()[0][0])
        allowed = [str(snapshots_dir(Path(home))) + "/", str(folder.parent) + "/"]
        con.execute(f"SET allowed_directories = [{', '.join(map(_quote, dict.fromkeys(allowed)))}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def query(home: str | Path, sql: str) -> pd.DataFrame:
    """Run read-only SQL (SELECT/EXPLAIN; several statements: the last one's result)."""
    statements = duckdb.extract_statements(sql)
    if not statements:
        raise ReadOnlyViolation("no SQL statement given")
    for statement in statements:
        if statement.type not in _READ_STATEMENTS:
            raise ReadOnlyViolation(
                f"only SELECT and EXPLAIN may run on the catalog, not {statement.type.name}"
            )
    con = open_catalog(home)
    try:
        for statement in statements[:-1]:
            con.execute(statement).fetchall()
        return con.execute(statements[-1]).df()
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
