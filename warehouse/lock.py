"""The single-writer lock: an `fcntl.flock` on a file beside the database.

The kernel drops a flock when its process dies (even by SIGKILL), so a crash never leaves a stale
lock. The file records the holder's PID and command for the "warehouse busy" message; it is never
deleted (deleting a locked file lets two processes lock two different files).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .exceptions import WarehouseBusy

__all__ = ["WriterLock", "lock_path_for"]


def lock_path_for(db_path: Path) -> Path:
    """`warehouse.duckdb` -> `warehouse.duckdb.lock`."""
    return db_path.with_name(db_path.name + ".lock")


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace")
    fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    pid = fields.get("pid")
    return (int(pid) if pid and pid.isdigit() else None), fields.get("command")


class WriterLock:
    """An exclusive lock. `acquire` raises `WarehouseBusy` at once when it is held, or, with
    `wait_s`, after waiting that long for it (calling `on_wait(busy)` once when the wait begins;
    `cancel`, when set, ends the wait early with `WarehouseBusy`)."""

    def __init__(self, path: Path, *, command: str, wait_s: float = 0.0,
                 on_wait: Callable[[WarehouseBusy], None] | None = None,
                 cancel: threading.Event | None = None, poll_s: float = 0.25) -> None:
        self.path = Path(path)
        self.command = command
        self.wait_s, self.on_wait, self.cancel, self.poll_s = wait_s, on_wait, cancel, poll_s
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        deadline = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid, command = _read_holder(fd)
                busy = WarehouseBusy(pid, command)
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.wait_s
                    if self.wait_s > 0 and self.on_wait is not None:
                        self.on_wait(busy)
                if now >= deadline or (self.cancel is not None and self.cancel.is_set()):
                    os.close(fd)
                    raise busy from None
                # a flock cannot time out: poll (the cancel event doubles as the sleep)
                (self.cancel or threading.Event()).wait(min(self.poll_s, deadline - now))
        os.ftruncate(fd, 0)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        command = " ".join(self.command.split())
        os.pwrite(fd, f"pid {os.getpid()}\ncommand {command}\nsince {since}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
