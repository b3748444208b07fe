"""The warehouse's errors.

WarehouseError
├── WarehouseBusy        another process holds the writer's lock
├── SnapshotMissing      no snapshot has been published yet: nothing to read
└── ReadOnlyViolation    the read API refused SQL: anything but one SELECT query (or a plain
                         EXPLAIN of one), a refused function, or a file outside the snapshots
"""

from __future__ import annotations

__all__ = ["ReadOnlyViolation", "SnapshotMissing", "WarehouseBusy", "WarehouseError"]


class WarehouseError(Exception):
    """Base of every error the warehouse raises on purpose."""


class WarehouseBusy(WarehouseError):
    """Another process is writing; carries its `pid` and `command` when they are known."""

    def __init__(self, pid: int | None, command: str | None, *, detail: str = "") -> None:
        self.pid = pid
        self.command = command
        held = f"held by PID {pid if pid is not None else '?'}, command {command or '?'}"
        super().__init__(f"warehouse busy ({held})" + (f": {detail}" if detail else ""))


class SnapshotMissing(WarehouseError):
    """Readers found no published snapshot under the home folder."""


class ReadOnlyViolation(WarehouseError):
    """The read API refused SQL that is not a single read-only query; the message names what."""
