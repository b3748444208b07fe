"""`emopulse deploy`: the schedule table as Prefect deployments, against the server in
`PREFECT_API_URL`.

It creates (when missing) the process work pool `emopulse`, the global concurrency limit
`duckdb-writer` (one slot) and one deployment per scheduled job (`emopulse-<flow>/<job>`, its
entrypoint `emopulse.flows.service:<flow>`, the absolute home in its parameters, its interval or
cron schedule). A deployment that already matches is left alone, so deploying twice changes
nothing. Jobs scheduled `after` another run inside that job's flow run; `off` jobs are not
deployed (one deployed before is paused).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from .jobs import check_jobs
from .settings import Settings

__all__ = ["POOL", "deploy", "planned_deployments"]

POOL = "emopulse"


def planned_deployments(settings: Settings) -> list[dict[str, Any]]:
    """What `deploy` wants on the server, one dict per scheduled job."""
    schedules = check_jobs(settings.jobs)
    home = str(settings.home.absolute())
    out = []
    for name, job in settings.jobs.items():
        schedule = schedules[name]
        if schedule.kind == "after":
            continue
        api_base = settings.bilibili_api_base
        out.append({"flow": f"emopulse-{job.flow}", "name": name, "entrypoint": f"emopulse.flows.service:{job.flow}",
                    "parameters": {"job": name, "home": home, "api_base": api_base},
                    "schedule": schedule, "paused": schedule.kind == "off"})
    return out


def _schedule_object(schedule: Any, timezone: str) -> Any:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    if schedule.kind == "interval":
        return IntervalSchedule(interval=timedelta(seconds=schedule.seconds))
    if schedule.kind == "cron":
        return CronSchedule(cron=schedule.cron, timezone=timezone)
    return None


def _same_schedules(existing: list[Any], wanted: Any) -> bool:
    if wanted is None:
        return True  # an `off` job: only paused
    if len(existing) != 1:
        return False
    have = existing[0].schedule
    if type(have).__name__ != type(wanted).__name__:
        return False
    if hasattr(wanted, "interval"):
        return have.interval == wanted.interval
    return (have.cron, have.timezone) == (wanted.cron, wanted.timezone)


async def _deploy(settings: Settings, dry_run: bool) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        DeploymentScheduleCreate, GlobalConcurrencyLimitCreate, WorkPoolCreate,
    )
    from prefect.exceptions import ObjectNotFound

    from .service import WRITER_LIMIT, flow_of

    actions: list[str] = []
    say = actions.append
    would = "would " if dry_run else ""
    async with get_client() as client:
        try:
            await client.read_work_pool(POOL)
            say(f"work pool {POOL}: exists")
        except ObjectNotFound:
            say(f"work pool {POOL}: {would}create (process)")
            if not dry_run:
                await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        try:
            limit = await client.read_global_concurrency_limit_by_name(WRITER_LIMIT)
            say(f"concurrency limit {WRITER_LIMIT}: exists ({limit.limit} slot)")
        except ObjectNotFound:
            say(f"concurrency limit {WRITER_LIMIT}: {would}create (1 slot)")
            if not dry_run:
                await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=WRITER_LIMIT, limit=1))
        for plan in planned_deployments(settings):
            label = f"deployment {plan['flow']}/{plan['name']} ({plan['schedule'].describe()})"
            wanted = _schedule_object(plan["schedule"], settings.service_timezone)
            try:
                existing = await client.read_deployment_by_name(f"{plan['flow']}/{plan['name']}")
            except ObjectNotFound:
                existing = None
            if existing is not None and (existing.entrypoint == plan["entrypoint"]
                                         and existing.parameters == plan["parameters"]
                                         and existing.work_pool_name == POOL
                                         and bool(existing.paused) == plan["paused"]
                                         and _same_schedules(existing.schedules or [], wanted)):
                say(f"{label}: unchanged")
                continue
            if plan["paused"] and existing is None:
                say(f"{label}: off, not deployed")
                continue
            say(f"{label}: {would}{'update' if existing else 'create'}")
            if dry_run:
                continue
            job_flow = flow_of(plan["flow"].removeprefix("emopulse-"))
            flow_id = await client.create_flow_from_name(job_flow.name)
            schedules = [DeploymentScheduleCreate(schedule=wanted, active=True)] if wanted is not None else []
            # the server upserts by (flow, name) and replaces the schedules
            await client.create_deployment(
                flow_id=flow_id, name=plan["name"], entrypoint=plan["entrypoint"], work_pool_name=POOL,
                parameters=plan["parameters"], schedules=schedules or None, paused=plan["paused"],
                parameter_openapi_schema=_schema(job_flow), enforce_parameter_schema=False,
                description=f"emopulse job {plan['name']}: {job_flow.__doc__}")
    return actions


def _schema(job_flow: Any) -> dict[str, Any]:
    from prefect.utilities.callables import parameter_schema

    return parameter_schema(job_flow.fn).model_dump()


def deploy(settings: Settings, *, dry_run: bool = False) -> list[str]:
    """Create or update what `planned_deployments` names; one line per thing, saying what was done."""
    import os

    import httpx

    try:
        return asyncio.run(_deploy(settings, dry_run))
    except (httpx.HTTPError, OSError) as exc:
        raise ValueError(f"cannot reach the Prefect API at PREFECT_API_URL={os.environ.get('PREFECT_API_URL')!r}: "
                         f"{type(exc).__name__}: {exc} (is `prefect server start` running?)") from None
