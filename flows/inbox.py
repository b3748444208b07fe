"""The inbox flow: MediaCrawler files dropped into `$EMOPULSE_HOME/inbox/xhs/` are imported and
moved to `done/` or `failed/` (with the reason beside them).

A running MediaCrawler (or a cron job copying its `data/xhs/json/` files) feeds the warehouse this
way. `inbox_flow` is one pass; `watch_inbox` runs it every `every_s` seconds in this process (the
temporary Prefect API creates no scheduled runs; against a real server, deploy it with
`inbox_flow.serve(interval=...)`). The work is `posts.process_inbox`, a plain function.

A pass that fails never stops the watch: a busy warehouse (another process writing) or any other
error is logged and the next pass tries again; files stay in the inbox until a pass imports them,
and windows a failed pass did not refresh are refreshed by the next one (`posts` keeps the days
pending in a marker beside the database).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow

from emopulse.warehouse import WarehouseBusy

from . import posts
from .settings import load_settings

__all__ = ["inbox_flow", "watch_inbox"]

log = logging.getLogger(__name__)


@flow(name="inbox", log_prints=True)
def inbox_flow(home: str | None = None, settle_s: float | None = None) -> dict[str, Any]:
    """Import every settled file of the inbox once; return where each went."""
    settings = load_settings(home=Path(home) if home else None)
    return asdict(posts.process_inbox(settings, settle_s=settle_s))


def watch_inbox(home: str | None = None, *, every_s: float, settle_s: float | None = None,
                runs: int | None = None, on_result: Callable[[dict[str, Any]], Any] | None = None,
                on_error: Callable[[BaseException], Any] | None = None,
                run_pass: Callable[..., dict[str, Any]] | None = None,
                sleep: Callable[[float], Any] = time.sleep) -> None:
    """Run `inbox_flow` (or `run_pass`) every `every_s` seconds, `runs` times or until
    interrupted. A pass that raises is logged (a busy warehouse as a warning naming the writer,
    anything else with its traceback), given to `on_error`, and the next pass tries again; only
    KeyboardInterrupt (and SystemExit) end the watch."""
    run_pass = inbox_flow if run_pass is None else run_pass
    done = 0
    while runs is None or done < runs:
        started = time.monotonic()
        try:
            result = run_pass(home=home, settle_s=settle_s)
            if on_result is not None:
                on_result(result)
        except WarehouseBusy as exc:
            log.warning("inbox pass skipped: %s; trying again in %gs", exc, every_s)
            if on_error is not None:
                on_error(exc)
        except Exception as exc:  # noqa: BLE001 - the watch outlives any one failed pass
            log.error("inbox pass failed: %s: %s; trying again in %gs", type(exc).__name__, exc,
                      every_s, exc_info=True)
            if on_error is not None:
                on_error(exc)
        done += 1
        if runs is None or done < runs:
            sleep(max(0.0, every_s - (time.monotonic() - started)))
