"""Discovery: the popular list and keyword searches, each page landed with the videos it found.

Every video is upserted with its reply count, and `video_sources` notes each place it was found
(`popular`, `search:<keyword>`), so the crawl can tell which videos have new comments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from emopulse.ingest.bilibili import popular_pages, search_pages
from emopulse.ingest.errors import Blocked, CrawlerError
from emopulse.ingest.records import Video, VideoPage
from emopulse.warehouse import load_video_page, record_video_sources

from .crawl import Crawl, CrawlSummary

__all__ = ["SEARCH_ORDERS", "discover_popular", "discover_search"]

SEARCH_ORDERS = ("pubdate", "totalrank", "click")
log = logging.getLogger(__name__)


def discover_popular(crawl: Crawl, summary: CrawlSummary, *, max_pages: int,
                     min_reply: int = 0) -> list[Video]:
    """Videos of the popular list with at least `min_reply` comments."""
    pages = popular_pages(crawl.client, max_pages=max_pages, min_reply=min_reply)
    return _discover(crawl, summary, pages, "popular")


def discover_search(crawl: Crawl, summary: CrawlSummary, keywords: Iterable[str], *,
                    order: str = "pubdate", max_pages: int) -> list[Video]:
    """Videos found by each keyword (`source` "search:<keyword>"), in the given order."""
    if order not in SEARCH_ORDERS:
        raise ValueError(f"search order must be one of {', '.join(SEARCH_ORDERS)}, not {order!r}")
    found: list[Video] = []
    for keyword in keywords:
        pages = search_pages(crawl.client, keyword, order=order, max_pages=max_pages)
        found += _discover(crawl, summary, pages, f"search {keyword!r}")
    return found


def _discover(crawl: Crawl, summary: CrawlSummary, pages: Iterator[VideoPage],
              what: str) -> list[Video]:
    found: list[Video] = []
    try:
        for page in pages:
            with crawl.locked() as wh, wh.transaction():
                loaded = load_video_page(wh, page)
                record_video_sources(wh, page.videos)
            if page.error:
                problem = f"{what}: page not read (raw page {loaded.page_id} kept): {page.error}"
                summary.errors.append(problem)
                log.warning("%s", problem)
            found.extend(page.videos)
    except Blocked as exc:
        raise crawl.cool_down(exc) from exc
    except CrawlerError as exc:  # retries ran out: keep what was found, note why it stopped
        summary.errors.append(f"{what}: stopped: {exc}")
        log.warning("%s: stopped: %s", what, exc)
    log.info("%s: %d videos", what, len(found))
    return found
