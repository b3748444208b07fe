"""Fixtures for the warehouse tests: a fresh warehouse file per test and a
second process that holds the writer (record builders live in `wh_builders.py`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from emopulse.warehouse import Warehouse


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def wh(home: Path) -> Iterator[Warehouse]:
    with Warehouse.open(home / "warehouse.duckdb", command="pytest") as warehouse:
        yield warehouse


HOLDER = textwrap.dedent("""
    import sys
    from emopulse.warehouse import Warehouse
    with Warehouse.open(sys.argv[1], command="emopulse crawl comments BV1test") as wh:
        wh.con.execute("INSERT INTO videos (bvid, status) VALUES ('BVheld', 'ok')")
        print("ready", flush=True)
        sys.stdin.read()  # hold the lock and the connection until told to stop
""")


@pytest.fixture
def holder(home: Path):
    """A separate process holding the writer's lock and an open DuckDB connection."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
