"""The pipeline's steps as plain functions of `Settings`: the CLI calls them directly, the
Prefect tasks in `pipeline.py` wrap them. Each writing step holds the warehouse for its own
duration and publishes snapshots of what it changed before it lets go.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emopulse.warehouse import (
    Warehouse, publish_snapshots, refresh_emoji_stats, upsert_comments, upsert_emotes, upsert_videos,
)

from .settings import Settings

__all__ = [
    "ImportSummary", "clean", "crawl", "import_comments", "publish", "read_bvids", "read_keywords",
    "score", "train_emoji", "export_model", "writer",
]

log = logging.getLogger(__name__)


@contextmanager
def writer(settings: Settings, command: str) -> Iterator[Warehouse]:
    """The warehouse for one writing command; snapshots of what it changed are published on the
    way out, also when the command fails after committing something."""
    with Warehouse.open(settings.database, command=command) as wh:
        try:
            yield wh
        finally:
            if wh.changed and not wh.in_transaction:
                publish_snapshots(wh, settings.home)


def client_for(settings: Settings):
    """A polite Bilibili client configured from settings (the secret stays in the cookie jar)."""
    from emopulse.ingest.client import BilibiliClient

    sessdata = settings.bilibili_sessdata.get_secret_value() if settings.bilibili_sessdata else None
    return BilibiliClient(
        settings.bilibili_api_base, sessdata=sessdata, throttle_s=settings.crawl_throttle_s,
        jitter_s=settings.crawl_jitter_s, backoff_s=settings.crawl_backoff_s,
        max_retries=settings.crawl_max_retries, timeout_s=settings.crawl_timeout_s,
    )


def read_bvids(path: Path) -> list[str]:
    """BV ids from a file: one a line, or a CSV with a `bvid` column (a BOM is tolerated)."""
    import csv

    text = path.read_text(encoding="utf-8-sig")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if lines and "bvid" in lines[0].split(","):
        return [row["bvid"].strip() for row in csv.DictReader(lines) if row.get("bvid", "").strip()]
    return lines


def read_keywords(path: Path) -> list[str]:
    """Keywords from a UTF-8 file, one a line, `#` starting a comment."""
    out = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def crawl(
    settings: Settings, *, bvids: Iterable[str] = (), popular_pages: int = 0, min_reply: int = 0,
    keywords: Iterable[str] = (), order: str = "pubdate", search_pages: int = 1,
    discover_only: bool = False, emotes: bool = False, show_progress: bool = True,
) -> dict[str, Any]:
    """Discover videos (popular list, keyword search) and crawl their comments and the given ones."""
    from . import crawl as c

    with writer(settings, "crawl") as wh, client_for(settings) as client:
        found = list(bvids)
        if emotes:
            c.crawl_emotes(wh, client)
        if popular_pages:
            found += c.discover_popular(wh, client, max_pages=popular_pages, min_reply=min_reply)
        keywords = list(keywords)
        if keywords:
            found += c.discover_search(wh, client, keywords, order=order, max_pages=search_pages)
        if discover_only:
            return {"discovered": len(set(found))}
        summary = c.crawl_videos(wh, client, found, show_progress=show_progress)
    return asdict(summary)


@dataclass
class ImportSummary:
    path: str
    layout: str
    comments: int
    comment_emotes: int
    skipped_rows: int


def import_comments(settings: Settings, paths: Iterable[Path], *, encoding: str | None = None) -> list[ImportSummary]:
    """Comment files (the known CSV layouts) into `comments`, `comment_emotes` and `emotes`."""
    from emopulse.ingest.files import read_comment_file

    out = []
    with writer(settings, "import comments") as wh:
        for path in paths:
            result = read_comment_file(path, encoding=encoding)
            with wh.transaction():
                upsert_videos(wh, result.videos)
                upsert_emotes(wh, result.emotes)
                n_comments, n_emotes = upsert_comments(wh, result.comments)
            out.append(ImportSummary(str(path), result.layout, n_comments, n_emotes, len(result.skipped)))
            for problem in result.skipped[:10]:
                log.warning("%s", problem)
    return out


def clean(settings: Settings, *, min_share: float | None = None, min_comments: int | None = None) -> dict[str, Any]:
    """Refresh `emoji_counts` and `emoji_training_set` with the given (or configured) thresholds."""
    with writer(settings, "clean") as wh:
        stats = refresh_emoji_stats(
            wh, min_share=settings.emoji_min_share if min_share is None else min_share,
            min_comments=settings.emoji_min_comments if min_comments is None else min_comments,
        )
    return asdict(stats)


def train_emoji(settings: Settings, *, epochs: int | None = None, seed: int = 0, progress: bool = True):
    """Train the emote classifier on `emoji_training_set` (split by comment) and evaluate it."""
    from emopulse.training import read_emoji_training_set, train_emoji_classifier

    with Warehouse.open(settings.database, command="train emoji") as wh:
        rows = read_emoji_training_set(wh)
    if rows.empty:
        raise ValueError("emoji_training_set is empty: import or crawl comments, then run `emopulse clean` "
                         "with a --min-comments that leaves some emotes")
    return train_emoji_classifier(rows, out_dir=settings.home / "runs" / "emoji", epochs=epochs, seed=seed,
                                  progress=progress)


def export_model(settings: Settings, result) -> dict[str, Any]:
    """Export a trained model to ONNX (parity checked against torch) and register it with its
    metrics and sha256."""
    from emopulse.serving import export_and_register

    with writer(settings, "export emoji") as wh:
        record = export_and_register(wh, result, artifacts_root=settings.home)
    return asdict(record)


def score(settings: Settings, *, model_id: str | None = None, device: str = "auto") -> dict[str, Any]:
    """Score comments with the latest (or given) emoji model into `predictions` (ONNX Runtime)."""
    from emopulse.serving import score_comments

    with writer(settings, "score") as wh:
        return asdict(score_comments(wh, model=model_id, device=device))


def publish(settings: Settings) -> Path:
    """Publish a complete snapshot set now (every table)."""
    with Warehouse.open(settings.database, command="publish") as wh:
        from emopulse.warehouse import PUBLISHED

        return publish_snapshots(wh, settings.home, tables=PUBLISHED)
