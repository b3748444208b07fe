"""`emopulse up`, the embedded runner, as a real process against the local Bilibili server: jobs
run on second-level schedules; `kill -9` mid-crawl and a restart lose and duplicate nothing, the
killed run is marked failed, and the runs missed while it was down are coalesced into one;
SIGTERM stops it cleanly. `up --once` runs every job once and exits 1 when one failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from emopulse.flows.runlog import RUN_LOG, read_run_log
from emopulse.flows.settings import DEFAULT_JOBS
from emopulse.warehouse import Warehouse

from crawlkit import MAIN, SMALL, server

__all__ = ["server"]  # fixtures

EMOPULSE = str(Path(sys.executable).with_name("emopulse"))
INTERVAL = 2


def _config(path: Path, jobs: dict[str, dict]) -> Path:
    """An emopulse.toml: every default job off, then `jobs` as given."""
    table = {name: {"schedule": "off"} for name in DEFAULT_JOBS} | jobs
    lines = []
    for name, job in table.items():
        lines.append(f"[jobs.{name}]")
        for key, value in job.items():
            if isinstance(value, dict):
                value = "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}"
            else:
                value = json.dumps(value)
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOPULSE_")}
    return {**env, "EMOPULSE_CONFIG": str(config), "EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0",
            "EMOPULSE_CRAWL_BACKOFF_S": "0.001", "EMOPULSE_SERVICE_MISFIRE_GRACE_S": "600"}


def _log(home: Path) -> list[dict]:
    path = home / "service" / RUN_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _final(home: Path) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    for line in _log(home):
        if line.get("kind") == "run":
            runs[line["run_id"]] = line
    return runs


def _until(what: str, check, proc: subprocess.Popen, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        assert proc.poll() is None, f"emopulse up exited with {proc.returncode} while waiting for {what}"
        threading.Event().wait(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _done(home: Path, job: str, runner_pid: int, statuses=("completed",), trigger: str | None = None) -> list[dict]:
    return [r for r in _final(home).values() if r["job"] == job and r["status"] in statuses
            and r["runner"].endswith(f":{runner_pid}") and (trigger is None or r["trigger"].startswith(trigger))]


def test_up_runs_on_schedule_survives_kill_9_mid_crawl_and_catches_up_once(tmp_path, server) -> None:
    video = server.dataset.videos[SMALL]
    home = tmp_path / "home"
    config = _config(tmp_path / "emopulse.toml", {
        "crawl": {"schedule": f"every {INTERVAL}s", "params": {"bvids": [video.bvid], "emotes": False}},
        "clean": {"schedule": "every 3s"},
        "score": {"schedule": "after crawl"},
    })
    command = [EMOPULSE, "up", "--no-dashboard", "--home", str(home), "--api-base", server.url]
    log_file = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - a pipe nobody reads would fill and block it
    first = subprocess.Popen(command, env=_env(config), stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        _until("two scheduled crawls", lambda: len(_done(home, "crawl", first.pid)) >= 2, first)
        _until("a clean", lambda: _done(home, "clean", first.pid), first)
        _until("a score after a crawl", lambda: _done(home, "score", first.pid, ("completed", "skipped"), "after:crawl"),
               first)
        # new comments (two pages of them): the next crawl is killed asking for its second page,
        # once its first page is committed
        for n in range(30):
            server.add_reply(video.aid, f"新评论 {n} [doge]")
        killed = threading.Event()

        def kill(_index, request, when) -> None:
            later_page = json.loads(request.params.get("pagination_str") or "{}").get("offset")
            if request.path == MAIN and when == "received" and later_page and not killed.is_set():
                killed.set()
                os.kill(first.pid, signal.SIGKILL)

        server.watch(kill)
        assert killed.wait(60), "no crawl reached its second page"
        first.wait(30)
        assert first.returncode == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    server.watchers.clear()
    killed_at = time.monotonic()
    running = [r for r in _final(home).values() if r["job"] == "crawl" and r["status"] in ("running", "waiting")]
    assert len(running) == 1  # its last word: the kill left it running
    # down for three intervals and more: those runs are missed
    threading.Event().wait(max(0.0, killed_at + 3 * INTERVAL + 0.5 - time.monotonic()))

    second = subprocess.Popen(command, env=_env(config), stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        catch_up = _until("the catch-up crawl", lambda: _done(home, "crawl", second.pid, trigger="catch-up"), second)
        _until("a scheduled crawl after it", lambda: _done(home, "crawl", second.pid, trigger="schedule"), second)
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
        log_file.close()
    assert second.returncode == 0, (tmp_path / "up.log").read_text()[-2000:]

    (caught,) = catch_up
    missed = int(caught["trigger"].split("(")[1].split()[0])
    assert missed >= 3, caught["trigger"]  # the missed runs, coalesced into this one
    mine = sorted((r for r in _final(home).values() if r["runner"].endswith(f":{second.pid}") and r["job"] == "crawl"),
                  key=lambda r: r["started_at"])
    assert mine[0]["trigger"].startswith("catch-up") and all(r["trigger"] == "schedule" for r in mine[1:])
    assert all(r["status"] in ("completed", "failed", "skipped") for r in _final(home).values()
               if r["runner"].endswith(f":{second.pid}"))  # SIGTERM: every run left its end
    runs, _ = read_run_log(home)
    gone = runs.set_index("run_id").loc[running[0]["run_id"]]
    assert gone["status"] == "failed" and "runner stopped" in gone["error"]

    with Warehouse.open(home / "warehouse.duckdb", command="test: check") as wh:
        rpids = [r for (r,) in wh.con.execute("SELECT rpid FROM comments WHERE bvid = ?", [video.bvid]).fetchall()]
        stored = wh.con.execute("SELECT status FROM runs WHERE run_id = ?", [running[0]["run_id"]]).fetchall()
        jobs = dict(wh.con.execute("SELECT job, next_run_at IS NOT NULL FROM jobs").fetchall())
    assert len(rpids) == len(set(rpids)) == len(server.dataset.videos[SMALL].replies)  # nothing lost, none twice
    assert stored == [("failed",)]  # merged by a writer of the second process
    assert jobs["crawl"] and jobs["clean"] and not jobs["score"]  # a follower has no time of its own


def test_up_once_runs_every_job_once_and_fails_when_one_failed(tmp_path, server) -> None:
    video = server.dataset.videos[SMALL]
    home = tmp_path / "home"
    config = _config(tmp_path / "emopulse.toml", {
        "crawl": {"schedule": "every 15m", "params": {"bvids": [video.bvid], "emotes": False}},
        "clean": {"schedule": "every 1h"}, "score": {"schedule": "after crawl"},
        "retrain-sentiment": {"schedule": "cron 0 4 * * 0"},
        "broken": {"flow": "crawl", "schedule": "every 1h", "params": {"bvid_files": [str(tmp_path / "none.txt")]}},
    })
    done = subprocess.run([EMOPULSE, "up", "--once", "--home", str(home), "--api-base", server.url],
                          env=_env(config), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    got = {(r["job"], r["trigger"]): r["status"] for r in _final(home).values()}
    assert got == {("crawl", "once"): "completed", ("score", "after:crawl"): "skipped", ("clean", "once"): "completed",
                   ("retrain-sentiment", "once"): "skipped", ("broken", "once"): "failed"}
    assert "none.txt" in done.stderr
    status = subprocess.run([EMOPULSE, "status", "--home", str(home)], env=_env(config), capture_output=True,
                            text=True, timeout=120)
    assert status.returncode == 0, status.stderr[-2000:]
    jobs = status.stdout.split("runs")[0]
    assert "broken" in jobs and "failed" in jobs and "every 900s" in jobs and "after crawl" in jobs
    tables = status.stdout.split("tables")[1]
    assert "comments" in tables and str(len(video.replies)) in tables  # rows and last change of each table


def test_sigterm_mid_crawl_stops_after_the_current_page_and_the_next_run_resumes(tmp_path, server) -> None:
    video = server.dataset.videos[SMALL]
    for n in range(400):  # twenty pages of new comments: a long crawl
        server.add_reply(video.aid, f"第{n}条 [doge]")
    video = server.dataset.videos[SMALL]  # the server's own copy now
    home = tmp_path / "home"
    config = _config(tmp_path / "emopulse.toml", {
        "crawl": {"schedule": "every 1h", "params": {"bvids": [video.bvid], "emotes": False}}})
    asked: list[str] = []
    termed = threading.Event()
    log_file = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([EMOPULSE, "up", "--no-dashboard", "--home", str(home), "--api-base", server.url],
                            env=_env(config), stdout=subprocess.DEVNULL, stderr=log_file)

    def watch(_index, request, when) -> None:
        if request.path == MAIN and when == "received":
            asked.append("after" if termed.is_set() else "before")
            if len(asked) == 4 and not termed.is_set():
                proc.send_signal(signal.SIGTERM)
                termed.set()

    server.watch(watch)
    try:
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.watchers.clear()
        log_file.close()
    assert proc.returncode == 0, (tmp_path / "up.log").read_text()[-2000:]
    assert termed.is_set() and asked.count("after") <= 1  # the page being read, then no more
    (run,) = [r for r in _final(home).values() if r["job"] == "crawl"]
    assert run["status"] == "completed" and run["detail"]["stopped_early"]
    with Warehouse.open(home / "warehouse.duckdb", command="test: check") as wh:
        stored = wh.con.execute("SELECT count(*) FROM comments").fetchall()[0][0]
    assert 0 < stored < len(video.replies)  # committed page by page, the rest left for the next run
    resumed = subprocess.run([EMOPULSE, "up", "--once", "--home", str(home), "--api-base", server.url],
                             env=_env(config), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with Warehouse.open(home / "warehouse.duckdb", command="test: check") as wh:
        rpids = [r for (r,) in wh.con.execute("SELECT rpid FROM comments").fetchall()]
    assert len(rpids) == len(set(rpids)) == len(video.replies)
