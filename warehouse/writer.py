"""The writer: one process at a time holds `Warehouse`, the read-write DuckDB connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .exceptions import WarehouseBusy
from .lock import WriterLock, lock_path_for
from .migrations import migrate

__all__ = ["Warehouse", "connection_of"]


class Warehouse:
    """An open, migrated, locked warehouse. Build it with `Warehouse.open(...)`.

    `changed` collects the tables written since the last `publish_snapshots`, so a command can
    publish exactly what it touched.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, db_path: Path, command: str) -> None:
        self.con = con
        self.db_path = db_path
        self.command = command
        self.changed: set[str] = set()
        self._depth = 0

    @classmethod
    @contextmanager
    def open(cls, db_path: str | Path, *, command: str, wait_s: float = 0.0,
             on_wait: Callable[[WarehouseBusy], None] | None = None,
             cancel: threading.Event | None = None) -> Iterator[Warehouse]:
        """Make the folder, take the writer's lock (or raise `WarehouseBusy`, at once or after
        waiting `wait_s` for it: `lock.WriterLock`), connect, migrate."""
        db_path = Path(db_path).absolute()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with WriterLock(lock_path_for(db_path), command=command, wait_s=wait_s, on_wait=on_wait, cancel=cancel):
            try:
                con = duckdb.connect(str(db_path))
            except duckdb.IOException as exc:  # a process ignoring the lock holds the file
                raise WarehouseBusy(None, None, detail=str(exc).splitlines()[0]) from exc
            try:
                con.execute("SET TimeZone = 'UTC'")
                migrate(con)
                yield cls(con, db_path, command)
            finally:
                con.close()

    @property
    def home(self) -> Path:
        """The folder holding the database (and, by convention, the snapshots)."""
        return self.db_path.parent

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self.con
        except BaseException:
            self._depth = 0
            self.con.execute("ROLLBACK")
            raise
        self._depth = 0
        self.con.execute("COMMIT")

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def mark_changed(self, *tables: str) -> None:
        self.changed.update(tables)


def connection_of(wh_or_con: Warehouse | duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """The connection behind a `Warehouse`, or the connection itself (e.g. a catalog reader)."""
    return wh_or_con.con if isinstance(wh_or_con, Warehouse) else wh_or_con
