"""`bench/ingest.py` runs, and its three loaders agree (on one small video, to stay quick)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"


def test_the_ingest_bench_runs_and_its_loaders_leave_the_same_tables(capsys):
    spec = importlib.util.spec_from_file_location("bench_ingest", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--videos", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "all three loaders left the same tables" in out
    for name in ("ours, live", "ours, bulk", "row by row"):
        assert name in out and "comments/s" in out
