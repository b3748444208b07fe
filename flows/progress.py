"""Progress bars for long work (rich), quiet when output is not a terminal or disabled."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

__all__ = ["Progress"]


class Progress:
    """An overall bar over videos and a line for the video being crawled (pages, comments, emotes)."""

    def __init__(self, *, total: int, enabled: bool = True) -> None:
        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), disable=not enabled, transient=False,
        )
        self._overall = self._bar.add_task("videos", total=total, detail="")
        self._video: int | None = None
        self._counts = {"pages": 0, "comments": 0, "emotes": 0}

    def __enter__(self) -> Progress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start_video(self, bvid: str) -> None:
        self._counts = dict.fromkeys(self._counts, 0)
        self._video = self._bar.add_task(f"  {bvid}", total=None, detail="")

    def advance(self, **counts: int) -> None:
        for key, n in counts.items():
            self._counts[key] += n
        if self._video is not None:
            detail = " ".join(f"{k} {v}" for k, v in self._counts.items())
            self._bar.update(self._video, advance=counts.get("pages", 0), detail=detail)

    def finish_video(self) -> None:
        if self._video is not None:
            self._bar.update(self._video, total=self._counts["pages"], visible=False)
        self._bar.advance(self._overall)
