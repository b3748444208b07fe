"""Progress bars for long crawls (rich) and the summary printed at the end.

An overall bar counts videos and shows the running totals (pages, comments, emotes, errors); each
video being crawled gets a line of its own (several with `--concurrency`). Quiet when disabled
or when output is not a terminal. Safe to use from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress as RichProgress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.console import Console
from rich.table import Table

__all__ = ["COUNTERS", "Progress", "VideoBar", "summary_table"]

COUNTERS = ("pages", "comments", "emotes", "errors")


def _detail(counts: Mapping[str, int]) -> str:
    return " · ".join(f"{k} {v:,}" for k, v in counts.items())


class VideoBar:
    """The line of one video: pages, comments and emotes crawled so far."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task
        self.counts = dict.fromkeys(COUNTERS, 0)

    def advance(self, **counts: int) -> None:
        for key, n in counts.items():
            self.counts[key] += n
        self._progress._update(self, counts)


class Progress:
    """Use as a context manager; `video(bvid)` opens a video's line, `error()` counts a failure."""

    def __init__(self, *, total: int, enabled: bool = True) -> None:
        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), disable=not enabled,
            console=Console(stderr=True),  # stdout stays for the command's result
        )
        self.totals = dict.fromkeys(COUNTERS, 0)
        self._overall = self._bar.add_task("videos", total=total, detail=_detail(self.totals))
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    @contextmanager
    def video(self, bvid: str) -> Iterator[VideoBar]:
        task = self._bar.add_task(f"  {bvid}", total=None, detail="")
        bar = VideoBar(self, task)
        try:
            yield bar
        finally:
            self._bar.update(task, total=bar.counts["pages"], visible=False)
            self._bar.advance(self._overall)

    def error(self) -> None:
        self._update(None, {"errors": 1})

    def _update(self, bar: VideoBar | None, counts: Mapping[str, int]) -> None:
        with self._lock:
            for key, n in counts.items():
                self.totals[key] += n
            self._bar.update(self._overall, detail=_detail(self.totals))
            if bar is not None:
                self._bar.update(bar._task, advance=counts.get("pages", 0),
                                 detail=_detail({k: v for k, v in bar.counts.items() if v}))


def summary_table(summary: Mapping[str, Any], *, title: str = "crawl summary") -> Table:
    """The closing summary of a crawl as a two-column table."""
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        if isinstance(value, Mapping):
            value = "\n".join(f"{k}: {v}" for k, v in list(value.items())[:20]) or "-"
        elif isinstance(value, list):
            value = "\n".join(map(str, value[:20])) or "-"
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    return table


def runs_table(runs: list[Mapping[str, Any]], *, title: str = "runs") -> Table:
    """One line per job run: job, trigger, status, rows changed, and the error or why it was skipped."""
    table = Table(title=title)
    for column in ("job", "trigger", "status", "rows", "note"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for run in runs:
        note = run.get("error") or ((run.get("detail") or {}).get("reason") if run["status"] == "skipped" else "")
        table.add_row(run["job"], run["trigger"], run["status"], "" if run.get("rows_changed") is None
                      else str(run["rows_changed"]), note or "")
    return table
