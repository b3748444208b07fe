"""The inbox flow: MediaCrawler files dropped into `$EMOPULSE_HOME/inbox/xhs/` are imported and
moved to `done/` or `failed/` (with the reason beside them).

A running MediaCrawler (or a cron job copying its `data/xhs/json/` files) feeds the warehouse this
way. `inbox_flow` is one pass; `watch_inbox` runs it every `every_s` seconds in this process (the
temporary Prefect API creates no scheduled runs; against a real server, deploy it with
`inbox_flow.serve(interval=...)`). The work is `posts.process_inbox`, a plain function.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow

from . import posts
from .settings import load_settings

__all__ = ["inbox_flow", "watch_inbox"]


@flow(name="inbox", log_prints=True)
def inbox_flow(home: str | None = None, settle_s: float | None = None) -> dict[str, Any]:
    """Import every settled file of the inbox once; return where each went."""
    settings = load_settings(home=Path(home) if home else None)
    return asdict(posts.process_inbox(settings, settle_s=settle_s))


def watch_inbox(home: str | None = None, *, every_s: float, settle_s: float | None = None,
                runs: int | None = None, on_result: Any = None) -> None:
    """Run `inbox_flow` every `every_s` seconds (`runs` times, or until interrupted)."""
    done = 0
    while runs is None or done < runs:
        started = time.monotonic()
        result = inbox_flow(home=home, settle_s=settle_s)
        if on_result is not None:
            on_result(result)
        done += 1
        if runs is None or done < runs:
            time.sleep(max(0.0, every_s - (time.monotonic() - started)))
