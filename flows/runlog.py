"""The service's run log: every job run (and the schedule as the runner sees it) as JSON lines
under `<home>/service/`, merged into the `runs` and `jobs` tables by the next writer.

A job appends without the writer's lock, so a job that waits for the writer still leaves its
record (`waiting`), and a killed runner's last word (`running`) is there for the next merge,
which marks runs of a runner that is gone as `failed`. Each line is the whole row as it stands;
the last line of a run wins, so merging twice changes nothing. A byte offset beside the log says
what was merged already.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from emopulse.warehouse import Warehouse
from emopulse.warehouse.merge import merge_rows

__all__ = ["CURRENT", "JobContext", "RUN_LOG", "new_run", "merge_run_log", "read_run_log", "record_job", "record_run", "runner_alive",
           "this_runner"]

RUN_LOG = "runs.jsonl"
DIED = "the runner stopped before the run finished (killed?)"
_RUN_FIELDS = ("run_id", "job", "trigger", "params", "started_at", "finished_at", "status", "rows_changed", "error",
               "runner", "detail")
_JOB_FIELDS = ("job", "flow", "schedule", "params", "next_run_at", "last_status", "last_run_at")


@dataclass
class JobContext:
    """What the steps see of the scheduled job they run in: how long to wait for the writer, whom
    to tell when the wait begins, and the runner's stop event (ends a wait; a crawl stops after
    its current page)."""

    wait_s: float
    on_wait: Callable[..., None] | None = None
    stop: threading.Event | None = None
    slot: Callable[[float], Any] | None = None  # Prefect: the `duckdb-writer` slot, taken around the lock
    on_open: Callable[[], None] | None = None  # the writer is ours (after a wait, the run runs again)


CURRENT: ContextVar[JobContext | None] = ContextVar("emopulse_job", default=None)


_SECRET = re.compile(r"key|secret|token|password|passwd|sessdata|cookie|auth", re.I)
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]+):[^/@\s]+@")


def redact(value: Any, key: str = "") -> Any:
    """`value` as it may be recorded: values under secret-sounding names (at any depth) become
    `***`, and passwords in URLs (`https://user:pw@host`) `user:***@`."""
    if key and _SECRET.search(key):
        return "***"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:***@", value)
    return value


def service_dir(home: Path) -> Path:
    folder = Path(home) / "service"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _now() -> str:
    return datetime.now(UTC).isoformat()


def this_runner() -> str:
    """`embedded:<host>:<pid>`: which process runs a job (a Prefect flow run names its id instead)."""
    return f"embedded:{socket.gethostname()}:{os.getpid()}"


def runner_alive(runner: str | None) -> bool | None:
    """Whether the process named by an embedded runner still lives (None: cannot tell here)."""
    if not runner or not runner.startswith("embedded:"):
        return None
    _, host, pid = runner.split(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _append(home: Path, record: dict[str, Any]) -> None:
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    fd = os.open(service_dir(home) / RUN_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))  # one write of one line: appends never interleave
    finally:
        os.close(fd)


def new_run(job: str, *, trigger: str, params: dict[str, Any], runner: str | None = None) -> dict[str, Any]:
    return {"run_id": uuid.uuid4().hex, "job": job, "trigger": trigger, "params": params, "started_at": _now(),
            "finished_at": None, "status": "running", "rows_changed": None, "error": None,
            "runner": runner or this_runner(), "detail": None}


def record_run(home: Path, run: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Update `run` with `changes` (a final status sets `finished_at`) and append it to the log."""
    run.update(changes)
    if run["status"] in ("completed", "failed", "skipped") and not run.get("finished_at"):
        run["finished_at"] = _now()
    _append(home, {"kind": "run", **{k: redact(run.get(k)) if k in ("params", "error") else run.get(k)
                                      for k in _RUN_FIELDS}})
    return run


UNSET: Any = object()  # record_job: leave the field as it is


def record_job(home: Path, *, job: str, flow: str, schedule: str, params: dict[str, Any],
               next_run_at: datetime | None = UNSET, last_status: str | None = UNSET,
               last_run_at: str | None = UNSET) -> None:
    """The job's row as the runner sees it; fields left UNSET keep their value, None clears it."""
    record = {"kind": "job", "job": job, "flow": flow, "schedule": schedule, "params": redact(params)}
    for name, value in (("next_run_at", next_run_at), ("last_status", last_status), ("last_run_at", last_run_at)):
        if value is not UNSET:
            record[name] = value.isoformat() if isinstance(value, datetime) else value
    _append(home, record)


def _read(home: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    path = Path(home) / "service" / RUN_LOG
    if not path.is_file():
        return [], 0
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a line being written is merged next time
    records = []
    for line in data[:end].splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a torn line of a killed writer: the run's earlier lines stand
    return records, offset + end


def _latest(records: list[dict[str, Any]]) -> tuple[dict[str, dict], dict[str, dict]]:
    runs: dict[str, dict] = {}
    jobs: dict[str, dict] = {}
    for record in records:
        if record.get("kind") == "run":
            runs[record["run_id"]] = record
        elif record.get("kind") == "job":  # a job line carries the fields it changes
            jobs[record["job"]] = {**jobs.get(record["job"], {}), **record}
    for run in runs.values():  # a runner that died mid-run never wrote its end
        if run["status"] in ("running", "waiting") and runner_alive(run.get("runner")) is False:
            run.update(status="failed", finished_at=run.get("finished_at") or _now(), error=DIED)
    return runs, jobs


def read_run_log(home: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run and job in the log as the tables would hold them (for `emopulse status`)."""
    runs, jobs = _latest(_read(home)[0])
    return (pd.DataFrame([{k: r.get(k) for k in _RUN_FIELDS} for r in runs.values()], columns=list(_RUN_FIELDS)),
            pd.DataFrame([{k: j.get(k) for k in _JOB_FIELDS} for j in jobs.values()], columns=list(_JOB_FIELDS)))


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def merge_run_log(wh: Warehouse, home: Path) -> int:
    """Merge what the log gained since the last merge into `runs` and `jobs`; also fail the
    stored runs of runners that are gone. Returns the rows merged."""
    offset_file = service_dir(home) / (RUN_LOG + ".offset")
    try:
        offset = int(offset_file.read_text())
    except (OSError, ValueError):
        offset = 0
    records, end = _read(home, offset)
    runs, jobs = _latest(records)
    known = {run_id for run_id in runs}
    stale = wh.con.execute("SELECT run_id, runner FROM runs WHERE status IN ('running', 'waiting')").fetchall()
    n = 0
    with wh.transaction():
        if runs:  # each line is the whole row: it replaces the stored one (a cleared error stays cleared)
            frame = pd.DataFrame([{k: r.get(k) for k in _RUN_FIELDS} for r in runs.values()])
            frame["params"], frame["detail"] = frame["params"].map(_json), frame["detail"].map(_json)
            frame["rows_changed"] = frame["rows_changed"].astype("Int64")
            frame = _times(frame, "started_at", "finished_at")
            wh.con.execute("DELETE FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [list(runs)])
            n += merge_rows(wh, "runs", frame)
        if jobs:  # a job line carries the fields it changed: laid over the stored row
            stored = wh.con.execute("SELECT job, flow, schedule, params::VARCHAR, next_run_at, last_status, last_run_at "
                                    "FROM jobs WHERE job IN (SELECT unnest(?::VARCHAR[]))", [list(jobs)]).fetchall()
            rows = {r[0]: dict(zip(_JOB_FIELDS, r)) for r in stored}
            for row in rows.values():
                row["params"] = json.loads(row["params"]) if row["params"] else None
                for column in ("next_run_at", "last_run_at"):
                    row[column] = row[column].isoformat() if row[column] is not None else None
            full = [{**{k: None for k in _JOB_FIELDS}, **rows.get(name, {}),
                     **{k: v for k, v in line.items() if k in _JOB_FIELDS}} for name, line in jobs.items()]
            frame = pd.DataFrame(full, columns=list(_JOB_FIELDS))
            frame["params"] = frame["params"].map(_json)
            wh.con.execute("DELETE FROM jobs WHERE job IN (SELECT unnest(?::VARCHAR[]))", [list(jobs)])
            n += merge_rows(wh, "jobs", _times(frame, "next_run_at", "last_run_at"))
        for run_id, runner in stale:
            if run_id not in known and runner_alive(runner) is False:
                wh.con.execute("UPDATE runs SET status = 'failed', finished_at = now(), error = ? WHERE run_id = ?",
                               [DIED, run_id])
                n += 1
    if n:
        wh.mark_changed("runs", "jobs")
    offset_file.write_text(str(end))
    return n
