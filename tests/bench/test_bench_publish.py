"""`bench/publish.py` runs and checks what it published (on small warehouses, to stay quick)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "publish.py"


def test_the_publish_bench_runs_and_prints_its_table(capsys):
    spec = importlib.util.spec_from_file_location("bench_publish", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--sizes", "2000,6000", "--pages", "2", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "| 2,000 |" in out and "| 6,000 |" in out and "target: incremental" in out
