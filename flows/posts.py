"""Post steps as plain functions of `Settings`: importing post files, the inbox, image clusters,
trend windows. The CLI calls them directly; the inbox flow (`inbox.py`) wraps `process_inbox`.

Each holds the warehouse for its own duration, brings the windows up to date for the days it
touched, and publishes snapshots of what it changed on the way out (`steps.writer`).
"""

from __future__ import annotations

import logging
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
from .steps import writer

__all__ = [
    "InboxSummary",
    "PostImportSummary",
    "cluster_images",
    "import_posts",
    "inbox_dir",
    "pending_inbox_files",
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


def _import_file(wh: Warehouse, read: Callable[[Path], PostBatch], path: Path) -> tuple[PostImportSummary, set[date]]:
    """Read and load one file; any failure of the file is returned, never raised."""
    summary = PostImportSummary(str(path))
    try:
        batch = read(path)
        loaded = load_posts(wh, batch)
    except WarehouseError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
        summary.error = str(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
        log.error("%s", summary.error)
        return summary, set()
    summary.layout, summary.rows = batch.layout, batch.rows
    summary.posts, summary.images, summary.metrics = loaded.posts, loaded.images, loaded.metrics
    summary.texts, summary.comments = loaded.texts, loaded.comments
    summary.rejected_rows = len(batch.skipped)
    summary.rejected = [str(e) for e in batch.skipped[:10]]
    summary.dates, summary.notes = dict(batch.dates), list(batch.notes)
    for problem in batch.skipped[:10]:
        log.warning("rejected %s", problem)
    return summary, set(loaded.days)


def import_posts(settings: Settings, paths: Iterable[Path], *, kind: Kind,
                 images_dir: Path | None = None) -> dict[str, Any]:
    """Import MediaCrawler (`xhs`) or trend-dataset (`mkt`) files (or folders of them), then
    update the windows for the days they touched. A refused file is reported, the rest load."""
    files = _files(kind, paths)
    if not files:
        raise FileNotFoundError(f"no {kind} files found in {[str(p) for p in paths]}")
    read = _reader(kind, images_dir)
    summaries, days = [], set()
    with writer(settings, f"import {kind}") as wh:
        for path in files:
            summary, touched = _import_file(wh, read, path)
            summaries.append(summary)
            days |= touched
        windows = refresh_windows(wh, days) if days else None
    return {"files": [asdict(s) for s in summaries], "windows": asdict(windows) if windows else None}


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
    `<name>.rejected.txt` beside it) or `failed/` (the reason in `<name>.reason.txt`)."""
    folder = inbox_dir(settings)
    settle = settings.inbox_settle_s if settle_s is None else settle_s
    ready, waiting = pending_inbox_files(folder, settle)
    summary = InboxSummary(str(folder), waiting=[p.name for p in waiting])
    if not ready:
        return summary
    read = _reader("xhs", None)
    days: set[date] = set()
    with writer(settings, "inbox") as wh:
        for path in ready:
            result, touched = _import_file(wh, read, path)
            days |= touched
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
        if days:
            summary.windows = asdict(refresh_windows(wh, days))
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
        save_clusters(wh, ENCODER_NAME, clustering.ids.tolist(), clustering.centroids, clustering.sizes().tolist())
        days = set_categories(wh, keys, clustering.labels.tolist(), cluster_source(ENCODER_NAME))
        windows = refresh_windows(wh, days) if days else None
    return {"encoder": ENCODER_NAME, "embedded": len(todo) - len(unreadable), "unreadable": len(unreadable),
            "images": len(keys), "k": k, "kept_ids": previous is not None,
            "windows": asdict(windows) if windows else None}


def rebuild_windows(settings: Settings) -> dict[str, Any]:
    """Recompute `daily_category_stats` and `trend_windows` from scratch."""
    with writer(settings, "windows") as wh:
        return asdict(refresh_windows(wh))
