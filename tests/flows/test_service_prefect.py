"""The production way, for real: `prefect server start` on 127.0.0.1, `emopulse deploy` (twice:
the second changes nothing), `prefect worker start --pool emopulse`, and a run the server's
scheduler created (auto-scheduled, not `run_deployment`) of a short-interval crawl deployment
completes against the local Bilibili server, its score job after it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from crawlkit import TINY, server
from test_service_embedded import _config, _env, _final

__all__ = ["server"]  # fixtures

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, procs: list[subprocess.Popen], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[:3]} exited with {proc.returncode} while waiting for {what}"
        threading.Event().wait(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_scheduled_deployment_runs_on_a_real_prefect_server(tmp_path, server) -> None:
    video = server.dataset.videos[TINY]
    home = tmp_path / "home"
    config = _config(tmp_path / "emopulse.toml", {
        "crawl": {"schedule": "every 5s", "params": {"bvids": [video.bvid], "emotes": False}},
        "score": {"schedule": "after crawl"},
        "clean": {"schedule": "every 1h"},
    })
    api = f"http://127.0.0.1:{_free_port()}/api"
    env = {**_env(config), "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_WORKER_PREFETCH_SECONDS": "5", "PREFECT_LOGGING_LEVEL": "WARNING"}
    logs = open(tmp_path / "prefect.log", "wb")  # noqa: SIM115 - both processes log here
    port = api.rsplit(":", 1)[1].split("/")[0]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port,
                                       "--analytics-off", "--no-ui"], env=env, stdout=logs, stderr=logs))
        _wait("the Prefect server", lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, procs, 150)

        deploy = [str(BIN / "emopulse"), "deploy", "--home", str(home), "--api-base", server.url]
        first = subprocess.run(deploy, env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "work pool emopulse: create (process)" in first.stdout
        assert "concurrency limit duckdb-writer: create (1 slot)" in first.stdout
        assert "deployment emopulse-crawl/crawl (every 5s): create" in first.stdout
        assert "deployment emopulse-clean/clean (every 3600s): create" in first.stdout
        assert "emopulse-score" not in first.stdout  # a follower runs inside its job's flow run
        again = subprocess.run(deploy, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr[-3000:]
        lines = again.stdout.strip().splitlines()
        assert all(line.endswith((": exists", ": exists (1 slot)", ": unchanged", "not deployed")) for line in lines), lines
        changed = _config(tmp_path / "changed.toml", {
            "crawl": {"schedule": "every 7s", "params": {"bvids": [video.bvid], "emotes": False}},
            "score": {"schedule": "after crawl"}, "clean": {"schedule": "every 1h"}})
        dry = subprocess.run([*deploy, "--dry-run"], env={**env, "EMOPULSE_CONFIG": str(changed)},
                             capture_output=True, text=True, timeout=120)
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert "deployment emopulse-crawl/crawl (every 7s): would update" in dry.stdout, dry.stdout
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
        assert sorted(d["name"] for d in deployments) == ["clean", "crawl"]
        crawl = next(d for d in deployments if d["name"] == "crawl")
        assert crawl["parameters"] == {"job": "crawl", "home": str(home.absolute()), "api_base": server.url}
        assert len(crawl["schedules"]) == 1 and crawl["schedules"][0]["schedule"]["interval"] == 5.0

        procs.append(subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "emopulse", "--type",
                                       "process"], env=env, stdout=logs, stderr=logs))

        def completed() -> list[dict]:
            runs = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
                "flow_runs": {"deployment_id": {"any_": [crawl["id"]]}, "state": {"type": {"any_": ["COMPLETED"]}}},
            }).json()
            return [r for r in runs if r["auto_scheduled"]]

        runs = _wait("an auto-scheduled crawl run to complete", completed, procs, 180)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()
    crawled = []
    for run in runs:  # each flow run: its crawl, then the score after it (no model yet: skipped)
        mine = [r for r in _final(home).values() if r["runner"] == f"prefect:{run['id']}"]
        assert {(r["job"], r["trigger"], r["status"]) for r in mine} == {
            ("crawl", "schedule", "completed"), ("score", "after:crawl", "skipped")}
        crawled += [r["rows_changed"] for r in mine if r["job"] == "crawl"]
    # runs may overlap (one waits for the writer): one of them stored the video's comments
    assert max(crawled) >= len(video.replies)
