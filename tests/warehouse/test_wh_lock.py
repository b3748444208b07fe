"""One writer at a time, across real processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from emopulse.warehouse import Warehouse, WarehouseBusy


def test_second_writer_fails_at_once_naming_the_holder(holder, home: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(WarehouseBusy) as caught:
        with Warehouse.open(home / "warehouse.duckdb", command="emopulse import comments x"):
            pass
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert message.startswith(f"warehouse busy (held by PID {holder.pid}, command ")
    assert "emopulse crawl comments BV1test" in message
    assert caught.value.pid == holder.pid


def test_lock_frees_itself_when_the_holder_is_killed(holder, home: Path) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    with Warehouse.open(home / "warehouse.duckdb", command="after") as wh:
        # the holder's autocommitted row survived its death
        assert wh.con.execute("SELECT bvid FROM videos").fetchall() == [("BVheld",)]
    assert (home / "warehouse.duckdb.lock").read_text() == ""  # released cleanly


def test_same_process_second_open_is_refused_too(wh: Warehouse, home: Path) -> None:
    with pytest.raises(WarehouseBusy, match=f"held by PID {os.getpid()}, command pytest"):
        with Warehouse.open(home / "warehouse.duckdb", command="second"):
            pass
