"""Prefect flows: thin wiring of the steps in `steps.py`, with retries where the network is.

`pipeline` runs crawl → clean → train (export, parity, register) → score (the new model, then the
latest model of every other task, so a registered sentiment model scores the new posts and comments
too; one that fails is logged, not fatal) → publish once.
Parameters are plain values (never the settings object, so no secret reaches Prefect's API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from . import steps
from .settings import Settings, load_settings

__all__ = ["clean_flow", "crawl_flow", "pipeline", "score_flow", "train_flow"]


def _transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only errors that say retrying may help (timeouts, 5xx, rate limits, risk control)."""
    exc = state.result(raise_on_failure=False)
    return bool(getattr(exc, "transient", False))


def _settings(home: str | None, api_base: str | None = None, throttle_s: float | None = None) -> Settings:
    return load_settings(home=Path(home) if home else None, bilibili_api_base=api_base, crawl_throttle_s=throttle_s)


@task(name="crawl", retries=3, retry_delay_seconds=[10, 60, 300], retry_condition_fn=_transient_only, cache_policy=NO_CACHE)
def crawl_task(settings: Settings, **options: Any) -> dict[str, Any]:
    return steps.crawl(settings, **options)


@task(name="clean", cache_policy=NO_CACHE)
def clean_task(settings: Settings, min_comments: int | None) -> dict[str, Any]:
    return steps.clean(settings, min_comments=min_comments)


@task(name="train", cache_policy=NO_CACHE)
def train_task(settings: Settings, epochs: int | None, seed: int, profile: str = "cpu",
               min_comments: int | None = None) -> Any:
    return steps.train_emoji(settings, profile=profile, epochs=epochs, seed=seed, min_comments=min_comments,
                             progress=False)


@task(name="export", cache_policy=NO_CACHE)
def export_task(settings: Settings, result: Any) -> dict[str, Any]:
    return steps.export_model(settings, result)


@task(name="score", cache_policy=NO_CACHE)
def score_task(settings: Settings, model_id: str | None = None) -> dict[str, Any]:
    return steps.score(settings, model_id=model_id)


@task(name="score-other-tasks", cache_policy=NO_CACHE)
def score_others_task(settings: Settings, done_task: str) -> dict[str, Any]:
    return steps.score_other_tasks(settings, done_task)


@task(name="publish", cache_policy=NO_CACHE)
def publish_task(settings: Settings) -> str:
    return str(steps.publish(settings))


@flow(name="crawl", log_prints=True)
def crawl_flow(home: str | None = None, api_base: str | None = None, bvids: list[str] | None = None,
               popular_pages: int = 1, min_reply: int = 0, throttle_s: float | None = None) -> dict[str, Any]:
    settings = _settings(home, api_base, throttle_s)
    return crawl_task(settings, bvids=bvids or [], popular_pages=popular_pages, min_reply=min_reply, emotes=True,
                      show_progress=False)


@flow(name="clean")
def clean_flow(home: str | None = None, min_comments: int | None = None) -> dict[str, Any]:
    return clean_task(_settings(home), min_comments)


@flow(name="train")
def train_flow(home: str | None = None, epochs: int | None = None, seed: int = 0,
               profile: str = "cpu", min_comments: int | None = None) -> dict[str, Any]:
    """Train, then export to ONNX and register."""
    settings = _settings(home)
    return export_task(settings, train_task(settings, epochs, seed, profile, min_comments))


@flow(name="score")
def score_flow(home: str | None = None, model_id: str | None = None) -> dict[str, Any]:
    return score_task(_settings(home), model_id)


@flow(name="pipeline", log_prints=True)
def pipeline(home: str | None = None, api_base: str | None = None, bvids: list[str] | None = None,
             popular_pages: int = 1, min_reply: int = 0, min_comments: int | None = None,
             epochs: int | None = None, seed: int = 0, throttle_s: float | None = None,
             profile: str = "cpu") -> dict[str, Any]:
    """Crawl, clean, train, export (ONNX, parity, registry), score, publish: the whole route once."""
    settings = _settings(home, api_base, throttle_s)
    crawled = crawl_task(settings, bvids=bvids or [], popular_pages=popular_pages, min_reply=min_reply,
                         emotes=True, show_progress=False)
    stats = clean_task(settings, min_comments)
    model = export_task(settings, train_task(settings, epochs, seed, profile, min_comments))
    scored = score_task(settings, model["model_id"])
    others = score_others_task(settings, model["task"])  # e.g. a registered sentiment model on the new posts
    snapshot = publish_task(settings)
    return {"crawl": crawled, "stats": stats, "model": model, "score": scored, "score_other_tasks": others,
            "snapshot": snapshot}

