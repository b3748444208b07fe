"""Structured logs of the crawl: every non-zero answer, with its endpoint and video, never a cookie.

The client reports each failed attempt (retried or not) through its `on_error` hook; `ApiErrorLog`
turns it into a log record whose `event` dict is written as one JSON line to
`$EMOPULSE_HOME/logs/crawl.jsonl` (and shown on the console), and lands the answer's raw page.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emopulse.ingest.errors import ApiError, CrawlerError
from emopulse.ingest.records import RawPage

__all__ = ["ApiErrorLog", "JsonLinesHandler", "crawl_log_file", "current_video", "video_context"]

log = logging.getLogger("emopulse.crawl.api")
current_video: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "emopulse_crawl_video", default=None
)
_PARAMS = ("oid", "bvid", "root", "pn", "page", "keyword", "ids", "pagination_str")


@contextmanager
def video_context(bvid: str | None) -> Iterator[None]:
    """Name the video the requests made inside this block are for (per thread)."""
    token = current_video.set(bvid)
    try:
        yield
    finally:
        current_video.reset(token)


class ApiErrorLog:
    """The client's `on_error` hook: log every failed attempt, land its raw answer, count it."""

    def __init__(self, land: Callable[[RawPage, str], None], counted: Callable[[], None]) -> None:
        self._land = land
        self._counted = counted

    def __call__(self, exc: CrawlerError, attempt: int, retrying: bool) -> None:
        raw = exc.raw
        endpoint = getattr(exc, "endpoint", None) or (raw.endpoint if raw else None)
        params = raw.params if raw else {}
        event: dict[str, Any] = {
            "event": "api_error",
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "endpoint": endpoint,
            "video": current_video.get(),
            "code": exc.code if isinstance(exc, ApiError) else (raw.code if raw else None),
            "http_status": raw.http_status if raw else getattr(exc, "http_status", None),
            "error": type(exc).__name__,
            "attempt": attempt + 1,
            "action": "retry" if retrying else "give up",
            "message": str(exc),
            "params": {k: params[k] for k in _PARAMS if k in params},
        }
        level = logging.INFO if retrying else logging.WARNING
        code = event["code"] if event["code"] is not None else event["http_status"]
        log.log(level, "%s %s code=%s video=%s attempt=%d: %s", event["action"], endpoint,
                "-" if code is None else code, event["video"] or "-", attempt + 1, exc,
                extra={"event": event})
        if raw is not None:
            self._land(raw, str(exc))
        self._counted()


class JsonLinesHandler(logging.Handler):
    """Append each record's `event` (or its message) as one JSON line."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None) or {
            "event": "log", "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "message": record.getMessage(),
        }
        try:
            self._file.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
            self._file.flush()
        except (OSError, ValueError):
            self.handleError(record)

    def close(self) -> None:
        self._file.close()
        super().close()


@contextmanager
def crawl_log_file(path: Path) -> Iterator[Path]:
    """Write the crawl's logs (`emopulse.crawl*` and `emopulse.flows.crawl`) to `path` meanwhile."""
    handler = JsonLinesHandler(path)
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in ("emopulse.crawl", "emopulse.flows")]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
