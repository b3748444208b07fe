"""`bench/serving.py` and `bench/gpu.py` run end to end on a tiny encoder and a small comment file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from emote_fixtures import synthetic_emote_rows

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def comment_file(tmp_path_factory) -> Path:
    rows = synthetic_emote_rows(160, seed=3)
    rows["bvid"] = "BV1xx411c7mD"
    rows["mid"], rows["uname"], rows["ctime_iso"] = rows["rpid"].astype(str), "u", "2024-01-01T00:00:00+00:00"
    path = tmp_path_factory.mktemp("bench-data") / "cleaned_combined.csv"
    rows[["bvid", "emoji_alt", "emoji_name", "message", "sentence", "mid", "uname", "ctime_iso"]].to_csv(path, index=False)
    return path


def test_the_serving_bench_prints_every_mode_side_by_side(capsys, tiny_encoder, comment_file) -> None:
    bench = _load("serving")
    assert bench.main(["--encoder", str(tiny_encoder), "--data", str(comment_file), "--texts", "40", "--single", "6",
                       "--train", "80", "--labels", "4", "--max-len", "32"]) == 0
    out = capsys.readouterr().out
    for mode in ("torch eager", "onnx fp32 unsorted", "onnx fp32 sorted", "onnx int8 sorted"):
        assert f"| {mode} | 1 |" in out and f"| {mode} | 64 |" in out
    assert "| onnx fp32 unsorted | 64 | " in out and "| 1.00x | 1.000 | 1.000 |" in out  # the reference row
    assert "target: int8 sorted at batch 64" in out


def test_the_gpu_bench_skips_without_a_gpu_and_runs_its_checks_on_the_cpu(capsys, tiny_encoder) -> None:
    bench = _load("gpu")
    assert bench.main(["--encoder", str(tiny_encoder)]) == 0
    out = capsys.readouterr().out
    assert "SKIPPED: no GPU here" in out or "parity on CUDAExecutionProvider" in out
    assert bench.main(["--cpu", "--encoder", str(tiny_encoder), "--records", "32", "--train-batch", "4"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "parity on CPUExecutionProvider" in line]
    assert len(lines) == 5 and all("one training step" in line and "records/s" in line for line in lines)
