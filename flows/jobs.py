"""The service's jobs: the schedule table (`Settings.jobs`) and `run_job`, which runs one job
(plain functions over the existing steps), records it in the run log, and runs the jobs
scheduled `after` it.

Both runners call `run_job`: the embedded one (`flows.embedded`, APScheduler) and the Prefect
flows of the deployments (`flows.service`). A job with nothing to do yet (no model for a task,
no data to train on) ends `skipped`; one that raises ends `failed` with the error, and never
stops the runner.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emopulse.warehouse import WarehouseBusy

from .runlog import CURRENT, JobContext, new_run, record_run
from .settings import Job, Settings

__all__ = ["NothingToDo", "Schedule", "followers", "has_rows", "job_order", "parse_schedule", "run_job",
           "safe_params"]

log = logging.getLogger(__name__)


class NothingToDo(Exception):
    """The job has nothing to do yet; its run ends `skipped` with this message."""


# -- schedules ---------------------------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"every\s+(\d+(?:\.\d+)?)\s*([smhd])", re.I)


@dataclass(frozen=True)
class Schedule:
    kind: str  # interval, cron, after, off
    seconds: float | None = None
    cron: str | None = None
    after: str | None = None

    def describe(self) -> str:
        if self.kind == "interval":
            return f"every {self.seconds:g}s"
        return {"cron": f"cron {self.cron}", "after": f"after {self.after}"}.get(self.kind, "off")


def parse_schedule(text: str, *, job: str = "?") -> Schedule:
    """`every 15m` | `cron 0 3 * * *` | `after crawl` | `off` (see `settings.Job`)."""
    text = text.strip()
    if text.lower() == "off":
        return Schedule("off")
    if m := _EVERY.fullmatch(text):
        seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
        if seconds <= 0:
            raise ValueError(f"job {job}: an interval must be positive, not {text!r}")
        return Schedule("interval", seconds=seconds)
    if text.lower().startswith("cron "):
        from apscheduler.triggers.cron import CronTrigger

        line = text[5:].strip()
        try:
            CronTrigger.from_crontab(line)
        except ValueError as exc:
            raise ValueError(f"job {job}: bad cron line {line!r}: {exc}") from None
        return Schedule("cron", cron=line)
    if text.lower().startswith("after "):
        return Schedule("after", after=text[6:].strip())
    raise ValueError(f"job {job}: schedule {text!r} is none of `every 15m`, `cron 0 3 * * *`, `after crawl`, `off`")


def check_jobs(jobs: dict[str, Job]) -> dict[str, Schedule]:
    """Every job's schedule, parsed; an error names a bad schedule or an `after` of an unknown job."""
    schedules = {name: parse_schedule(job.schedule, job=name) for name, job in jobs.items()}
    for name, schedule in schedules.items():
        if schedule.kind == "after" and schedule.after not in jobs:
            raise ValueError(f"job {name} runs after {schedule.after!r}, which is not a job ({', '.join(jobs)})")
    for name in schedules:  # `after` chains must end at a job with a time of its own
        seen, at = [name], name
        while schedules[at].kind == "after":
            at = schedules[at].after
            if at in seen:
                raise ValueError(f"jobs {' -> '.join([*seen, at])}: a cycle of `after` schedules never starts")
            seen.append(at)
    return schedules


def followers(jobs: dict[str, Job], name: str) -> list[str]:
    """The jobs scheduled `after <name>`, in table order."""
    return [other for other, job in jobs.items()
            if job.schedule.strip().lower().startswith("after ") and job.schedule.strip()[6:].strip() == name]


def job_order(jobs: dict[str, Job]) -> list[str]:
    """Every enabled job, each right after the job it follows (what `up --once` runs)."""
    out: list[str] = []

    def visit(name: str) -> None:
        out.append(name)
        for follower in followers(jobs, name):
            if follower not in out:
                visit(follower)

    for name, job in jobs.items():
        schedule = job.schedule.strip().lower()
        if not schedule.startswith("after ") and schedule != "off":
            visit(name)
    return out


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as recorded (`runlog.redact`): secrets replaced."""
    from .runlog import redact

    return redact(params)


# -- the jobs ------------------------------------------------------------------------------------
JobResult = tuple[int, dict[str, Any]]  # rows changed, what the job said


def _crawl(settings: Settings, params: dict[str, Any]) -> JobResult:
    from . import steps

    bvids: list[str] = list(params.get("bvids") or [])
    for path in params.get("bvid_files") or settings.crawl_bvid_files:
        bvids += steps.read_bvids(Path(path))
    keywords: list[str] = list(params.get("keywords") or [])
    for path in params.get("keyword_files") or settings.crawl_keyword_files:
        keywords += steps.read_keywords(Path(path))
    popular = int(params.get("popular_pages", settings.crawl_popular_pages))
    if not (bvids or keywords or popular):
        popular = 1  # no source configured: one page of the popular list
    result = steps.crawl(settings, bvids=bvids, popular_pages=popular, keywords=keywords,
                         min_reply=int(params.get("min_reply", 0)), search_pages=int(params.get("search_pages", 1)),
                         emotes=bool(params.get("emotes", True)), show_progress=False)
    return int(result.get("comments", 0)) + int(result.get("comment_emotes", 0)), result


def _inbox(settings: Settings, params: dict[str, Any]) -> JobResult:
    from . import posts

    summary = posts.process_inbox(settings, settle_s=params.get("settle_s"))
    if not summary.done and not summary.failed and summary.windows is None:
        raise NothingToDo(f"no settled file in {summary.inbox}" + (f" ({len(summary.waiting)} still being written)"
                                                                    if summary.waiting else ""))
    rows = sum(int(i.get(k, 0) or 0) for i in summary.imports for k in ("posts", "images", "metrics", "texts"))
    return rows, asdict(summary)


def has_rows(settings: Settings, sql: str) -> bool:
    """Whether the published snapshot answers `sql` with a positive count (no writer needed)."""
    from emopulse.warehouse import SnapshotMissing, query

    try:
        return bool(query(settings.home, sql).iat[0, 0])
    except SnapshotMissing:
        return False


def _clean(settings: Settings, params: dict[str, Any]) -> JobResult:
    from . import steps

    if not has_rows(settings, "SELECT count(*) FROM comment_emotes"):
        raise NothingToDo("no comments with emotes yet: crawl or import comments")
    stats = steps.clean(settings, min_share=params.get("min_share"), min_comments=params.get("min_comments"))
    return int(stats["emoji_comments"]) + int(stats["training_rows"]), stats


def _windows(settings: Settings, params: dict[str, Any]) -> JobResult:
    from . import posts

    if not has_rows(settings, "SELECT count(*) FROM posts"):
        raise NothingToDo("no posts yet: import some (`emopulse import xhs`, the inbox)")
    result = posts.rebuild_windows(settings, forecast=False)  # the `forecast` job follows
    return int(result.get("days_changed", 0)) + int(result.get("windows_written", 0)), result


def _score(settings: Settings, params: dict[str, Any]) -> JobResult:
    from . import steps

    try:
        result = steps.score(settings, task=params.get("task"))
    except LookupError as exc:
        raise NothingToDo(str(exc)) from None
    return int(result.get("rows", 0)) + sum(int(f.get("rows", 0)) for f in result.get("forecasts", [])), result


def _forecast(settings: Settings, params: dict[str, Any]) -> JobResult:
    from . import steps

    if not has_rows(settings, "SELECT count(*) FROM models WHERE task = 'trend'"):
        raise NothingToDo("no trend model yet: `emopulse train trend`")
    result = steps.forecast_trends(settings)
    return int(result.get("rows", 0)), result


def _retrain(settings: Settings, params: dict[str, Any]) -> JobResult:
    from . import gate

    task = params.get("task")
    if not task:
        raise ValueError("a retrain job needs params.task (emoji, sentiment, emotions or trend)")
    result = gate.retrain(settings, task=task, profile=params.get("profile") or settings.retrain_profile,
                          epochs=params.get("epochs"))
    return 1, result


def _gc(settings: Settings, params: dict[str, Any]) -> JobResult:
    from .gc import collect

    result = collect(settings)
    return int(result.get("rows_removed", 0)), result


JOBS: dict[str, Callable[[Settings, dict[str, Any]], JobResult]] = {
    "crawl": _crawl, "inbox": _inbox, "clean": _clean, "windows": _windows, "score": _score,
    "forecast": _forecast, "retrain": _retrain, "gc": _gc,
}


def run_job(settings: Settings, name: str, *, trigger: str = "manual", runner: str | None = None,
            stop: threading.Event | None = None, follow: bool = True,
            on_done: Callable[[dict[str, Any]], None] | None = None,
            slot: Callable[[float], Any] | None = None) -> list[dict[str, Any]]:
    """Run job `name` of the schedule table (then, with `follow`, the jobs scheduled after it),
    each recorded in the run log; return their run records (never raises for a failed job)."""
    if name not in settings.jobs:
        raise LookupError(f"no job {name!r} in the schedule table: {', '.join(settings.jobs)}")
    job = settings.jobs[name]
    run = new_run(name, trigger=trigger, params=safe_params(job.params), runner=runner)
    home = settings.home

    def waiting(busy: Exception) -> None:
        log.info("job %s waits for the writer (%s)", name, busy)
        record_run(home, run, status="waiting", error=f"waiting: {busy}")

    def running_again() -> None:
        if run["status"] == "waiting":
            record_run(home, run, status="running", error=None)

    record_run(home, run)
    token = CURRENT.set(JobContext(wait_s=settings.service_writer_wait_s, on_wait=waiting, stop=stop, slot=slot,
                                   on_open=running_again))
    try:
        rows, detail = JOBS[job.flow](settings, dict(job.params))
    except NothingToDo as exc:
        record_run(home, run, status="skipped", rows_changed=0, error=None, detail={"reason": str(exc)})
        log.info("job %s: skipped: %s", name, exc)
    except WarehouseBusy as exc:
        if stop is not None and stop.is_set():  # the runner stopped while this job waited its turn
            record_run(home, run, status="skipped", rows_changed=0, error=None,
                       detail={"reason": f"the runner stopped before the writer was free ({exc})"})
        else:
            record_run(home, run, status="failed", error=f"{type(exc).__name__}: {exc}")
            log.warning("job %s failed: %s", name, exc)
    except Exception as exc:  # noqa: BLE001 - recorded; the runner goes on
        record_run(home, run, status="failed", error=f"{type(exc).__name__}: {exc}")
        log.warning("job %s failed: %s: %s", name, type(exc).__name__, exc)
    else:
        if stop is not None and stop.is_set():  # the runner is stopping: a crawl ended after its current page
            detail = {**detail, "stopped_early": True}
        record_run(home, run, status="completed", rows_changed=rows, error=None, detail=detail)
        log.info("job %s: completed (%d rows changed)", name, rows)
    finally:
        CURRENT.reset(token)
    if on_done is not None:
        on_done(run)
    out = [run]
    if follow and run["status"] == "completed" and not (stop is not None and stop.is_set()):
        for follower in followers(settings.jobs, name):
            out += run_job(settings, follower, trigger=f"after:{name}", runner=runner, stop=stop, on_done=on_done,
                           slot=slot)
    return out
