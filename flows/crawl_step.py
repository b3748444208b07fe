"""The crawl step: settings become a client, a warehouse and options; then discovery, comments,
the emote catalog and its images, and a summary. `steps.crawl` is this function."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emopulse.ingest.client import BilibiliClient
from emopulse.ingest.pseudonym import Pseudonymiser
from emopulse.ingest.records import Video
from emopulse.ingest.window import day_start
from emopulse.warehouse.snapshots import PublishEvery

from .runlog import CURRENT
from .settings import Settings

__all__ = ["client_for", "crawl", "pseudonymiser_for", "read_bvids", "read_keywords"]

BVID = re.compile(r"BV1[0-9A-Za-z]{9}")


def pseudonymiser_for(settings: Settings) -> Pseudonymiser | None:
    """The keyed hash for commenters when `EMOPULSE_PSEUDONYMISE=1` (the key is required)."""
    if not settings.pseudonymise:
        return None
    if settings.pseudonymise_key is None or not settings.pseudonymise_key.get_secret_value():
        raise ValueError("EMOPULSE_PSEUDONYMISE=1 needs a secret key in EMOPULSE_PSEUDONYMISE_KEY "
                         "(keep it outside the data you share)")
    return Pseudonymiser(settings.pseudonymise_key.get_secret_value())


def client_for(settings: Settings) -> BilibiliClient:
    """A polite Bilibili client configured from settings (the secrets stay in the client)."""
    sessdata = settings.bilibili_sessdata.get_secret_value() if settings.bilibili_sessdata else None
    return BilibiliClient(
        settings.bilibili_api_base, sessdata=sessdata, throttle_s=settings.crawl_throttle_s,
        jitter_s=settings.crawl_jitter_s, backoff_s=settings.crawl_backoff_s,
        max_retries=settings.crawl_max_retries, timeout_s=settings.crawl_timeout_s,
        breaker_streak=settings.crawl_breaker_streak, pseudonymiser=pseudonymiser_for(settings),
    )


def read_bvids(path: Path) -> list[str]:
    """BV ids from a UTF-8 file: one a line (`#` comments), or a CSV with a `bvid` column.

    A BOM is tolerated; anything that is not a BV id is refused naming the file and line.
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    rows = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    rows = [(n, line) for n, line in rows if line and not line.startswith("#")]
    if rows and "bvid" in next(csv.reader([rows[0][1]])):
        reader = csv.DictReader(line for _, line in rows)
        rows = [(n, (row.get("bvid") or "").strip()) for (n, _), row in zip(rows[1:], reader)]
        rows = [(n, bvid) for n, bvid in rows if bvid]
    bad = [f"line {n}: {value!r}" for n, value in rows if not BVID.fullmatch(value)]
    if bad:
        raise ValueError(f"{path}: not BV ids (like BV1xx411c7mD): {', '.join(bad[:5])}"
                         + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    return list(dict.fromkeys(value for _, value in rows))


def read_keywords(path: Path) -> list[str]:
    """Keywords from a UTF-8 file, one a line, `#` starting a comment."""
    out = []
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    if not out:
        raise ValueError(f"{path}: no keywords in it (one a line, # starts a comment)")
    return out


def crawl(
    settings: Settings, *, bvids: Iterable[str] = (), popular_pages: int = 0, min_reply: int = 0,
    keywords: Iterable[str] = (), order: str = "pubdate", search_pages: int = 1,
    discover_only: bool = False, emotes: bool = False, images: bool = True,
    max_comments: int | None = None, since: str | None = None, concurrency: int = 1,
    full: bool = False, recheck: bool = False, show_progress: bool = True,
) -> dict[str, Any]:
    """Discover videos (popular list, keyword search), crawl their comments and the given ones,
    then the emote catalog (with `emotes`) and the images it lacks (unless `images` is off).

    Raises `CoolingDown` (exit code 75) when the source answers -412 or is still cooling down.
    """
    from .crawl import Crawl, CrawlOptions, CrawlSummary, crawl_videos
    from .crawl_log import crawl_log_file
    from .discover import discover_popular, discover_search
    from .emotes import crawl_emotes, download_emote_images
    from .steps import writer

    options = CrawlOptions(
        source=settings.bilibili_api_base.rstrip("/"), cooldown_s=settings.crawl_cooldown_s,
        max_comments=max_comments, since=None if since is None else day_start(since),
        concurrency=concurrency, full=full, recheck=recheck,
        full_pass_s=_seconds(settings.crawl_full_pass_days, 86400),
        max_pass_age_s=_seconds(settings.crawl_max_pass_age_h, 3600),
        recheck_s=_seconds(settings.crawl_recheck_days, 86400),
    )
    keywords = list(keywords)
    with (client_for(settings) as client, writer(settings, "crawl") as wh,
          crawl_log_file(settings.home / "logs" / "crawl.jsonl")):
        job = CURRENT.get()
        run = Crawl(wh, client, options, show_progress=show_progress, shutdown=job.stop if job else None)
        # readers see a long crawl: a snapshot every N committed pages or S seconds
        run.on_committed = PublishEvery(settings.home, pages=settings.publish_every_pages,
                                        seconds=settings.publish_every_s)
        run.check_cooldown()
        summary = CrawlSummary()
        targets: list[Video | str] = list(bvids)
        if popular_pages:
            targets += discover_popular(run, summary, max_pages=popular_pages, min_reply=min_reply)
        if keywords:
            targets += discover_search(run, summary, keywords, order=order, max_pages=search_pages)
        result: dict[str, Any] = {"discovered": len({_bvid(t) for t in targets})}
        if targets and not discover_only:
            summary.add(crawl_videos(run, targets))
        result.update(asdict(summary))
        if emotes:
            result["emotes"] = crawl_emotes(run)
        if images and (emotes or not discover_only):
            result["images"] = asdict(download_emote_images(
                run, settings.home, max_bytes=settings.crawl_image_max_bytes,
                max_attempts=settings.crawl_image_attempts))
    return result


def _seconds(value: float, unit: float) -> float | None:
    """A setting in days or hours as seconds; 0 means "never by age" (None)."""
    return value * unit if value > 0 else None


def _bvid(target: Video | str) -> str:
    return target if isinstance(target, str) else target.bvid
