"""The Prefect flows of the deployments (`emopulse deploy`): one flow per kind of job, each a
thin wrapper of `jobs.run_job`, the code the embedded runner runs too.

Writers take turns twice over: the global concurrency limit `duckdb-writer` (one slot) around
every opening of the warehouse, and the writer's lock. A job waits for both instead of failing;
training holds them only to read its data and to register. A run whose job failed fails in
Prefect too (the UI shows it), after its run record is written.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow

from emopulse.flows.settings import FLOWS, load_settings

__all__ = ["FLOWS", "WRITER_LIMIT", "flow_of"]

WRITER_LIMIT = "duckdb-writer"


def _trigger() -> tuple[str, str]:
    """(`schedule` for a run the server's scheduler created, else `manual`; the runner's name)."""
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    trigger = "manual"
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            if client.read_flow_run(run_id).auto_scheduled:
                trigger = "schedule"
    except Exception:  # noqa: BLE001 - the record says manual; the job runs either way
        pass
    return trigger, f"prefect:{run_id}"


@contextmanager
def _writer_slot(wait_s: float) -> Iterator[None]:
    from prefect.concurrency.sync import concurrency

    with concurrency(WRITER_LIMIT, occupy=1, timeout_seconds=wait_s or None):
        yield


def _run(job: str, home: str, api_base: str | None) -> list[dict[str, Any]]:
    from emopulse.flows.jobs import run_job

    settings = load_settings(home=Path(home), bilibili_api_base=api_base)
    trigger, runner = _trigger()
    runs = run_job(settings, job, trigger=trigger, runner=runner, slot=_writer_slot)
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        raise RuntimeError("; ".join(f"job {r['job']} failed: {r['error']}" for r in failed))
    return [{k: r[k] for k in ("job", "status", "rows_changed", "trigger")} for r in runs]


def _make(kind: str):
    @flow(name=f"emopulse-{kind}", log_prints=True, validate_parameters=True)
    def job_flow(job: str = kind, home: str = "var", api_base: str | None = None) -> list[dict[str, Any]]:
        return _run(job, home, api_base)

    job_flow.__doc__ = f"Run a `{kind}` job of the schedule table (emopulse.flows.jobs), then its followers."
    return job_flow


crawl = _make("crawl")
inbox = _make("inbox")
clean = _make("clean")
windows = _make("windows")
score = _make("score")
forecast = _make("forecast")
retrain = _make("retrain")
gc = _make("gc")


def flow_of(kind: str) -> Any:
    """The flow object of a kind of job (`FLOWS`)."""
    return globals()[kind]
