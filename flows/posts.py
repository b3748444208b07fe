"""Post steps as plain functions of `Settings`: importing post files, the inbox, image clusters,
trend windows. The CLI calls them directly; the inbox flow (`inbox.py`) wraps `process_inbox`.

Each holds the warehouse for its own duration, brings the windows up to date for the days it
touched, and publishes snapshots of what it changed on the way out (`steps.writer`).

Windows never stay stale after a crash: the publication days a load touched are written to a
marker beside the database (`warehouse.duckdb.windows-pending.json`) before the load commits,
and the marker is removed only once the windows of those days are refreshed. Whichever post
command refreshes windows next (the next inbox pass, an import, `emopulse windows`) refreshes the
pending days too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from emopulse.ingest.posts import PostBatch
from emopulse.warehouse import Warehouse, WarehouseError
from emopulse.warehouse.posts import load_posts
from emopulse.warehouse.windows import refresh_windows

from .settings import Settings
from .steps import refresh_forecasts, writer

__all__ = [
    "InboxSummary",
    "PendingWindowsError",
    "PostImportSummary",
    "cluster_images",
    "import_posts",
    "inbox_dir",
    "pending_inbox_files",
    "pending_windows_path",
    "process_inbox",
    "rebuild_windows",
]

log = logging.getLogger(__name__)

Kind = Literal["xhs", "mkt"]


@dataclass
class PostImportSummary:
    """What one file gave; `error` set when the file as a whole was refused."""

    path: str
    layout: str | None = None
    rows: int = 0
    posts: int = 0
    images: int = 0
    metrics: int = 0
    texts: int = 0
    comments: int = 0
    rejected_rows: int = 0
    rejected: list[str] = field(default_factory=list)  # the first few, "file:line: why"
    dates: dict[str, int] = field(default_factory=dict)  # how publication days were resolved
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def _reader(kind: Kind, images_dir: Path | None) -> Callable[[Path], PostBatch]:
    if kind == "xhs":
        from emopulse.ingest.xhs import read_xhs

        return lambda path: read_xhs(path, images_dir=images_dir)
    from emopulse.ingest.mkt import read_mkt

    return read_mkt


def _files(kind: Kind, paths: Iterable[Path]) -> list[Path]:
    from emopulse.ingest.xhs import xhs_files

    out = []
    for path in map(Path, paths):
        if kind == "mkt" and path.is_dir():
            out += sorted(path.glob("*.csv"))
        elif kind == "xhs":
            out += xhs_files(path)
        elif not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        else:
            out.append(path)
    return out


class PendingWindowsError(RuntimeError):
    """The marker of windows still to refresh could not be written: nothing was committed."""


def pending_windows_path(settings: Settings) -> Path:
    """`warehouse.duckdb.windows-pending.json`: days whose windows a command has yet to refresh."""
    return settings.database.with_name(settings.database.name + ".windows-pending.json")


def _read_pending(path: Path) -> set[date] | None:
    """The days left to refresh (empty: none); None for every window (or an unreadable marker)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    try:
        days = json.loads(text)["days"]
        return None if days is None else {date.fromisoformat(d) for d in days}
    except (ValueError, KeyError, TypeError):
        log.warning("%s is unreadable: every window will be rebuilt", path)
        return None


def _write_pending(path: Path, days: set[date] | None) -> None:
    """Record `days` (None: every window) atomically and durably, or raise `PendingWindowsError`."""
    text = json.dumps({"days": None if days is None else sorted(d.isoformat() for d in days)})
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise PendingWindowsError(f"cannot record the windows to refresh in {path}: {exc}") from exc


class _Windows:
    """The days whose windows the running command must refresh, mirrored in the marker file;
    it starts with the days a crashed or failed command left there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = pending_windows_path(settings)
        self.days: set[date] | None = _read_pending(self.path)  # None: every window

    def add(self, days: Iterable[date]) -> None:
        """Call inside the transaction that loads posts of `days`, before it commits."""
        if self.days is None:
            return
        new = set(days) - self.days
        if new:
            _write_pending(self.path, self.days | new)
            self.days |= new

    def refresh(self, wh: Warehouse, *, forecast: bool = True) -> dict[str, Any] | None:
        """Refresh the pending days (every window when None), then remove the marker; then (with
        `forecast`) the trend forecasts, when a trend model is registered (`forecasts` in the result)."""
        windows = None
        if self.days is None or self.days:
            windows = asdict(refresh_windows(wh, self.days))
        self.path.unlink(missing_ok=True)
        self.days = set()
        if forecast and windows is not None and (windows["windows_written"] or windows["labels_updated"]):
            forecasts = refresh_forecasts(wh, self.settings)
            if forecasts is not None:
                windows["forecasts"] = forecasts
        return windows


def _import_file(wh: Warehouse, read: Callable[[Path], PostBatch], path: Path,
                 windows: _Windows) -> PostImportSummary:
    """Read and load one file; any failure of the file is returned, never raised (a warehouse
    failure or a marker that cannot be written is raised: the file is not to blame)."""
    summary = PostImportSummary(str(path))
    try:
        batch = read(path)
        with wh.transaction():
            loaded = load_posts(wh, batch)
            windows.add(loaded.days)
    except (WarehouseError, PendingWindowsError):
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
        summary.error = str(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
        log.error("%s", summary.error)
        return summary
    summary.layout, summary.rows = batch.layout, batch.rows
    summary.posts, summary.images, summary.metrics = loaded.posts, loaded.images, loaded.metrics
    summary.texts, summary.comments = loaded.texts, loaded.comments
    summary.rejected_rows = len(batch.skipped)
    summary.rejected = [str(e) for e in batch.skipped[:10]]
    summary.dates, summary.notes = dict(batch.dates), list(batch.notes)
    for problem in batch.skipped[:10]:
        log.warning("rejected %s", problem)
    return summary


def import_posts(settings: Settings, paths: Iterable[Path], *, kind: Kind,
                 images_dir: Path | None = None) -> dict[str, Any]:
    """Import MediaCrawler (`xhs`) or trend-dataset (`mkt`) files (or folders of them), then
    update the windows for the days they touched. A refused file is reported, the rest load."""
    files = _files(kind, paths)
    if not files:
        raise FileNotFoundError(f"no {kind} files found in {[str(p) for p in paths]}")
    read = _reader(kind, images_dir)
    summaries = []
    with writer(settings, f"import {kind}") as wh:
        windows = _Windows(settings)
        for path in files:
            summaries.append(_import_file(wh, read, path, windows))
        refreshed = windows.refresh(wh)
    return {"files": [asdict(s) for s in summaries], "windows": refreshed}


# ----------------------------------------------------------------------------- the inbox

@dataclass
class InboxSummary:
    """One pass over the inbox: each file and where it went."""

    inbox: str
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # file -> reason
    waiting: list[str] = field(default_factory=list)  # too fresh: maybe still being written
    imports: list[dict[str, Any]] = field(default_factory=list)
    windows: dict[str, Any] | None = None


def inbox_dir(settings: Settings) -> Path:
    """`$EMOPULSE_HOME/inbox/xhs/`, with its `done/` and `failed/` folders."""
    folder = settings.home / "inbox" / "xhs"
    for sub in (folder / "done", folder / "failed"):
        sub.mkdir(parents=True, exist_ok=True)
    return folder


def pending_inbox_files(folder: Path, settle_s: float) -> tuple[list[Path], list[Path]]:
    """(files ready to import, files modified in the last `settle_s` seconds), oldest first."""
    from emopulse.ingest.xhs import SUFFIXES

    now = time.time()
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    ready = [p for p in files if now - p.stat().st_mtime >= settle_s]
    return ready, [p for p in files if p not in ready]


def _move(path: Path, folder: Path) -> Path:
    """Move `path` into `folder`, never over an earlier file of the same name."""
    target, n = folder / path.name, 1
    while target.exists():
        target, n = folder / f"{path.stem}.{n}{path.suffix}", n + 1
    shutil.move(str(path), target)
    return target


def process_inbox(settings: Settings, *, settle_s: float | None = None) -> InboxSummary:
    """Import every settled file in the inbox, moving each to `done/` (rejected rows listed in
    `<name>.rejected.txt` beside it) or `failed/` (the reason in `<name>.reason.txt`), then
    refresh the windows of the days loaded, and of any days an earlier pass left pending.

    Raises `WarehouseBusy` (before touching any file) when another process is writing.
    """
    folder = inbox_dir(settings)
    settle = settings.inbox_settle_s if settle_s is None else settle_s
    ready, waiting = pending_inbox_files(folder, settle)
    summary = InboxSummary(str(folder), waiting=[p.name for p in waiting])
    if not ready and not pending_windows_path(settings).exists():
        return summary
    read = _reader("xhs", None)
    with writer(settings, "inbox") as wh:
        windows = _Windows(settings)
        for path in ready:
            result = _import_file(wh, read, path, windows)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            if result.error:
                moved = _move(path, folder / "failed")
                moved.with_name(moved.name + ".reason.txt").write_text(
                    f"{stamp} not imported: {result.error}\n", encoding="utf-8")
                summary.failed[path.name] = result.error
            else:
                moved = _move(path, folder / "done")
                if result.rejected_rows:
                    moved.with_name(moved.name + ".rejected.txt").write_text(
                        f"{stamp} imported; {result.rejected_rows} rows rejected:\n"
                        + "".join(f"{line}\n" for line in result.rejected), encoding="utf-8")
                summary.done.append(path.name)
            result.path = str(moved)
            summary.imports.append(asdict(result))
        summary.windows = windows.refresh(wh)
    return summary


# ----------------------------------------------------------------------------- images, windows

def cluster_images(settings: Settings, *, k: int | None = None, seed: int = 0,
                   weights: Path | None = None) -> dict[str, Any]:
    """Embed local post images not yet embedded (EfficientNet-Lite0), cluster all embeddings
    (k-means, ids matched to the previous centroids), set the images' categories, update windows."""
    from emopulse.training.clusters import cluster_stably
    from emopulse.training.encoders.image import ENCODER_NAME, ImageEncoder
    from emopulse.warehouse.images import (
        cluster_source, images_to_embed, read_clusters, read_embeddings, save_clusters, save_embeddings,
        set_categories,
    )

    k = settings.image_clusters if k is None else k
    with writer(settings, "cluster images") as wh:
        todo = images_to_embed(wh, ENCODER_NAME)
        unreadable: list[str] = []
        if len(todo):
            encoder = ImageEncoder.pretrained(weights or settings.image_encoder_weights)
            vectors, kept, unreadable = encoder.embed_files(todo.local_path.tolist())
            save_embeddings(wh, ENCODER_NAME, todo.iloc[kept], vectors)
            for problem in unreadable[:10]:
                log.warning("unreadable image %s", problem)
        keys, embeddings = read_embeddings(wh, ENCODER_NAME)
        if len(keys) < k:
            raise ValueError(f"{k} image clusters need at least {k} embedded images; the warehouse has "
                             f"{len(keys)} (import MediaCrawler files with their images/ folder, or lower --k)")
        previous = read_clusters(wh, ENCODER_NAME)
        clustering = cluster_stably(embeddings, k, previous=previous, seed=seed)
        pending = _Windows(settings)
        with wh.transaction():
            save_clusters(wh, ENCODER_NAME, clustering.ids.tolist(), clustering.centroids, clustering.sizes().tolist())
            pending.add(set_categories(wh, keys, clustering.labels.tolist(), cluster_source(ENCODER_NAME)))
        windows = pending.refresh(wh)
    return {"encoder": ENCODER_NAME, "embedded": len(todo) - len(unreadable), "unreadable": len(unreadable),
            "images": len(keys), "k": k, "kept_ids": previous is not None,
            "windows": windows}


def rebuild_windows(settings: Settings, *, forecast: bool = True) -> dict[str, Any]:
    """Recompute `daily_category_stats` and `trend_windows` from scratch (no day left pending),
    then (with `forecast`) the trend forecasts."""
    with writer(settings, "windows") as wh:
        windows = _Windows(settings)
        windows.days = None
        return windows.refresh(wh, forecast=forecast) or {}
