"""`emopulse up`: the service in one process, without a Prefect server.

APScheduler 3 runs the schedule table (`Settings.jobs`) through `jobs.run_job`, the same code the
Prefect deployments run: coalesced runs, one instance per job, a misfire grace time, and a
persistent job store (`<home>/service/scheduler.sqlite`), so after a restart a job whose runs
were missed while the process was down runs once (`trigger` catch-up, with how many were
missed). The dashboard is served beside the jobs. SIGTERM or Ctrl-C stops it cleanly: no new
run starts, a running crawl stops after the page it is committing, other steps finish, and
every run leaves its record.

`--once` runs every job once in the table's order (followers right after their job), serves
no dashboard, and exits 1 when any job failed.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .jobs import Schedule, check_jobs, job_order, run_job
from .runlog import UNSET, record_job, this_runner
from .settings import Settings

__all__ = ["run_once", "serve_embedded"]

log = logging.getLogger(__name__)
STORE = "scheduler.sqlite"

# The running service (APScheduler's persistent store keeps a function reference and the job's
# name, never the settings, so stored jobs stay valid across restarts and hold no secret).
_SERVICE: _Service | None = None


def run_once(settings: Settings, *, on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every scheduled job once, in order; their run records (the schedule table is recorded
    too, with no next run: nothing is scheduled)."""
    schedules = check_jobs(settings.jobs)
    runs: list[dict[str, Any]] = []
    done: set[str] = set()
    for name in job_order(settings.jobs):
        if name in done:
            continue
        for run in run_job(settings, name, trigger="once", on_done=on_done):
            runs.append(run)
            done.add(run["job"])
    last = {run["job"]: run for run in runs}
    for name, job in settings.jobs.items():
        run = last.get(name)
        record_job(settings.home, job=name, flow=job.flow, schedule=schedules[name].describe(), params=job.params,
                   next_run_at=None, last_status=run["status"] if run else None,
                   last_run_at=run.get("finished_at") if run else None)
    return runs


def _trigger(schedule: Schedule, timezone: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if schedule.kind == "interval":
        return IntervalTrigger(seconds=schedule.seconds, timezone=timezone)
    return CronTrigger.from_crontab(schedule.cron, timezone=timezone)


def _missed(job: Any, now: datetime) -> tuple[int, datetime | None]:
    """How many fire times of a stored job lie between its next run time and `now`, and the
    last of them (the one a coalesced catch-up stands for)."""
    n, when, last = 0, job.next_run_time, None
    while when is not None and when <= now and n < 100_000:
        n, last = n + 1, when
        when = job.trigger.get_next_fire_time(when, when + timedelta(microseconds=1))
    return n, last


def _same_trigger(a: Any, b: Any) -> bool:
    """The same schedule (str() leaves the time zone out)."""
    return str(a) == str(b) and str(getattr(a, "timezone", "")) == str(getattr(b, "timezone", ""))


def scheduled(name: str) -> None:
    """What APScheduler calls (a module-level function: the job store keeps its import path)."""
    if _SERVICE is not None:
        _SERVICE.run(name)


class _Service:
    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings, self.stop = settings, stop
        self.schedules = check_jobs(settings.jobs)
        self.catch_up: dict[str, int] = {}
        self.published: dict[str, datetime | None] = {}
        self.scheduler: Any = None

    def run(self, name: str) -> None:
        if self.stop.is_set():
            return
        missed = self.catch_up.pop(name, 0)
        trigger = f"catch-up ({missed} missed)" if missed else "schedule"
        run_job(self.settings, name, trigger=trigger, stop=self.stop, on_done=self.done)

    def done(self, run: dict[str, Any]) -> None:
        """A run ended (called on the job's thread: never ask the scheduler here, whose shutdown
        holds its lock while it waits for this thread)."""
        self.publish_job(run["job"], UNSET, last_status=run["status"], last_run_at=run.get("finished_at"))

    def publish_job(self, name: str, next_run_at: Any, **last: Any) -> None:
        job = self.settings.jobs[name]
        record_job(self.settings.home, job=name, flow=job.flow, schedule=self.schedules[name].describe(),
                   params=job.params, next_run_at=next_run_at, **last)

    def publish_next_runs(self) -> None:
        """Record each job's next run time when it changed (from the main thread)."""
        for job in self.scheduler.get_jobs():
            if self.published.get(job.id) != job.next_run_time:
                self.published[job.id] = job.next_run_time
                self.publish_job(job.id, job.next_run_time)

    def start(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        folder = self.settings.home / "service"
        folder.mkdir(parents=True, exist_ok=True)
        store = SQLAlchemyJobStore(url=f"sqlite:///{(folder / STORE).absolute()}")
        self.scheduler = BackgroundScheduler(
            jobstores={"default": store}, executors={"default": ThreadPoolExecutor(self.settings.service_threads)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(self.settings.service_misfire_grace_s)},
            timezone=self.settings.service_timezone)
        self.scheduler.start(paused=True)  # stored jobs are compared before anything runs
        now = datetime.now(UTC)
        timed = {n: s for n, s in self.schedules.items() if s.kind in ("interval", "cron")}
        for job in self.scheduler.get_jobs():
            if job.id not in timed:
                job.remove()  # dropped from the table, or now a follower
        for name, schedule in timed.items():
            trigger = _trigger(schedule, self.settings.service_timezone)
            stored = self.scheduler.get_job(name)
            if stored is not None and _same_trigger(stored.trigger, trigger):
                missed, last = _missed(stored, now)  # the process was down: these runs did not happen
                if missed:
                    late = (now - last).total_seconds()  # APScheduler coalesces them into the last one
                    if late <= self.settings.service_misfire_grace_s:
                        self.catch_up[name] = missed
                        log.info("job %s: %d run(s) missed while down; it runs once now", name, missed)
                    else:
                        log.info("job %s: %d run(s) missed, the last %.0f s ago (beyond the grace time): "
                                 "it waits for its next time", name, missed, late)
                continue
            # new or changed: an interval job runs now, then every interval; a cron job at its next time
            first = {"next_run_time": datetime.now(UTC)} if self.schedules[name].kind == "interval" else {}
            self.scheduler.add_job(scheduled, trigger, args=[name], id=name, name=name, replace_existing=True, **first)
        self.scheduler.resume()
        for name in self.schedules:
            self.publish_job(name, None)
        self.publish_next_runs()

    def shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)  # the running jobs finish their step (a crawl its page)
            for name in self.schedules:  # nothing runs next while the runner is gone
                self.publish_job(name, None)


def _dashboard(settings: Settings) -> subprocess.Popen | None:
    import os

    from .serve import dashboard_command

    env = {**os.environ, "EMOPULSE_HOME": str(Path(settings.home).absolute())}
    logs = Path(settings.home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        with open(logs / "dashboard.log", "ab") as out:
            proc = subprocess.Popen(dashboard_command(port=settings.dashboard_port), env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
    except OSError as exc:
        log.warning("the dashboard did not start: %s", exc)
        return None
    log.info("dashboard: http://127.0.0.1:%d (its log: %s)", settings.dashboard_port, logs / "dashboard.log")
    return proc


def serve_embedded(settings: Settings, *, dashboard: bool = True, stop: threading.Event | None = None) -> int:
    """Run the schedule until SIGTERM/SIGINT (or `stop`); 0 after a clean stop."""
    global _SERVICE
    stop = stop or threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s: stopping after the running steps (a crawl after its current page)",
                 signal.Signals(signum).name)
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    from emopulse.warehouse import WarehouseBusy
    from emopulse.warehouse.lock import WriterLock

    folder = settings.home / "service"
    folder.mkdir(parents=True, exist_ok=True)
    one = WriterLock(folder / "up.lock", command="emopulse up")
    try:
        one.acquire()
    except WarehouseBusy as busy:
        raise ValueError(f"another `emopulse up` already runs on {settings.home.absolute()} (PID {busy.pid}): "
                         "one runner per home") from None
    service = _Service(settings, stop)
    _SERVICE = service
    proc = None
    try:
        service.start()
        log.info("emopulse up: %d jobs (%s), runner %s", len(settings.jobs), ", ".join(
            f"{n}: {s.describe()}" for n, s in service.schedules.items()), this_runner())
        proc = _dashboard(settings) if dashboard else None
        while not stop.wait(1.0):
            service.publish_next_runs()
    finally:
        service.shutdown()
        _SERVICE = None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        one.release()
    log.info("emopulse up: stopped")
    return 0
