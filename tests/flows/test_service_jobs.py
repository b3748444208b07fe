"""The schedule table and `run_job`: schedules parse (bad ones are named), a run is recorded in
the run log and merged into `runs`/`jobs` by the next writer, a job with nothing to do is
`skipped`, one that fails is `failed`, and a job that finds the writer busy waits its turn."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from emopulse.flows.jobs import check_jobs, job_order, parse_schedule, run_job, safe_params
from emopulse.flows.runlog import RUN_LOG, merge_run_log, read_run_log
from emopulse.flows.settings import DEFAULT_JOBS, load_settings
from emopulse.warehouse import Warehouse, query
from emopulse.warehouse.lock import WriterLock, lock_path_for

from crawlkit import SMALL, make_settings, server

__all__ = ["make_settings", "server"]  # fixtures

OFF = {name: {"schedule": "off"} for name in DEFAULT_JOBS}


def test_schedules_parse_and_bad_ones_are_named() -> None:
    assert parse_schedule("every 15m").seconds == 900 and parse_schedule("every 2s").seconds == 2
    assert parse_schedule("cron 30 3 * * *").cron == "30 3 * * *"
    assert parse_schedule("after crawl").after == "crawl" and parse_schedule("off").kind == "off"
    with pytest.raises(ValueError, match="job x: schedule 'sometimes'"):
        parse_schedule("sometimes", job="x")
    with pytest.raises(ValueError, match="bad cron line"):
        parse_schedule("cron 61 * * * *", job="x")
    settings = load_settings(jobs={"late": {"flow": "score", "schedule": "after nothing"}})
    with pytest.raises(ValueError, match="runs after 'nothing', which is not a job"):
        check_jobs(settings.jobs)


def test_the_table_keeps_its_defaults_when_one_job_changes() -> None:
    settings = load_settings(jobs={"crawl": {"schedule": "every 1m"}})
    assert settings.jobs["crawl"].schedule == "every 1m" and settings.jobs["crawl"].flow == "crawl"
    assert set(settings.jobs) == set(DEFAULT_JOBS)
    order = job_order(settings.jobs)
    assert order.index("score") == order.index("crawl") + 1  # score follows each crawl
    assert order.index("forecast") == order.index("windows") + 1
    assert safe_params({"api_key": "s3cret", "task": "emoji"}) == {"api_key": "***", "task": "emoji"}


def _runs(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "service" / RUN_LOG).read_text().splitlines()]


def test_a_job_run_is_logged_then_merged_into_runs_by_the_next_writer(make_settings, server) -> None:
    bvid = server.dataset.videos[SMALL].bvid
    settings = make_settings(jobs={**OFF, "crawl": {"schedule": "every 1h", "params": {"bvids": [bvid], "emotes": False}},
                                   "score": {"schedule": "after crawl"}})
    runs = run_job(settings, "crawl", trigger="schedule")
    assert [(r["job"], r["trigger"], r["status"]) for r in runs] == [
        ("crawl", "schedule", "completed"), ("score", "after:crawl", "skipped")]
    assert runs[0]["rows_changed"] >= 175 and "no model registered" in runs[1]["detail"]["reason"]
    lines = _runs(settings.home)
    assert [line["status"] for line in lines if line["run_id"] == runs[0]["run_id"]] == ["running", "completed"]
    # score's writer merged (and published) what was logged before it: the crawl's end, its own start ...
    stored = query(settings.home, "SELECT job, status FROM runs ORDER BY started_at")
    assert stored.values.tolist() == [["crawl", "completed"], ["score", "running"]]
    # ... and the next writer merges the rest; merging again changes nothing
    with Warehouse.open(settings.database, command="test") as wh:
        assert merge_run_log(wh, settings.home) == 1
        assert merge_run_log(wh, settings.home) == 0
        got = wh.con.execute("SELECT job, trigger, status, rows_changed > 0 FROM runs ORDER BY started_at").fetchall()
    assert got == [("crawl", "schedule", "completed", True), ("score", "after:crawl", "skipped", False)]


def test_a_failed_job_is_recorded_and_does_not_raise(make_settings, tmp_path) -> None:
    settings = make_settings(jobs={**OFF, "crawl": {"schedule": "every 1h",
                                                    "params": {"bvid_files": [str(tmp_path / "missing.txt")]}}})
    (run,) = run_job(settings, "crawl")
    assert run["status"] == "failed" and "missing.txt" in run["error"] and run["finished_at"]
    runs, _ = read_run_log(settings.home)
    assert runs.set_index("run_id").loc[run["run_id"], "status"] == "failed"


def test_a_job_that_finds_the_writer_busy_waits_its_turn(make_settings, server) -> None:
    bvid = server.dataset.videos[SMALL].bvid
    settings = make_settings(service_writer_wait_s=60.0,
                             jobs={**OFF, "crawl": {"schedule": "every 1h", "params": {"bvids": [bvid], "emotes": False}}})
    settings.home.mkdir(parents=True)
    lock = WriterLock(lock_path_for(settings.database), command="test: someone else writes")
    lock.acquire()
    done: list[dict] = []
    worker = threading.Thread(target=lambda: done.extend(run_job(settings, "crawl")))
    worker.start()
    try:
        waiting = threading.Event()
        for _ in range(400):  # until the job says it waits (its record is in the log, no writer needed)
            log = settings.home / "service" / RUN_LOG
            if log.exists() and any(r["status"] == "waiting" for r in _runs(settings.home)):
                waiting.set()
                break
            threading.Event().wait(0.05)
        assert waiting.is_set() and not done
        (record,) = [r for r in _runs(settings.home) if r["status"] == "waiting"]
        assert "someone else writes" in record["error"]
    finally:
        lock.release()
    worker.join(60)
    assert [r["status"] for r in done] == ["completed"] and done[0]["rows_changed"] >= 175
    statuses = [r["status"] for r in _runs(settings.home) if r["run_id"] == done[0]["run_id"]]
    assert statuses == ["running", "waiting", "running", "completed"]  # running again once the writer was its


def test_a_command_fails_at_once_on_a_busy_writer_unless_told_to_wait(make_settings) -> None:
    from emopulse.flows import steps
    from emopulse.warehouse import WarehouseBusy

    settings = make_settings()
    settings.home.mkdir(parents=True)
    with WriterLock(lock_path_for(settings.database), command="test: holder"):
        with pytest.raises(WarehouseBusy, match="test: holder"):
            steps.publish(settings)
        waited = make_settings(writer_wait_s=0.3)
        with pytest.raises(WarehouseBusy):
            steps.publish(waited)
