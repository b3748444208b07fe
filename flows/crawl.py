"""The crawl: ingest's pages loaded into the warehouse, one page a transaction, resumable.

This is where the two rooms meet (only `flows` knows both): the source yields pages with their
cursor, the warehouse commits each page together with its checkpoint, so a crawl killed at any
moment resumes from the last page it committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from emopulse.ingest.bilibili import (
    comment_pages, emote_panel, fetch_video, popular_pages, reply_pages, search_pages,
)
from emopulse.ingest.client import BilibiliClient
from emopulse.ingest.errors import ApiError, CommentsClosed, CrawlerError, NotFound
from emopulse.ingest.records import CommentPage, VideoPage
from emopulse.warehouse import Warehouse, crawl_state, land_raw_page, load_comment_page, load_video_page, mark_video, upsert_emotes, upsert_videos

from .progress import Progress

__all__ = ["CrawlSummary", "crawl_emotes", "crawl_videos", "discover_popular", "discover_search"]

log = logging.getLogger(__name__)


@dataclass
class CrawlSummary:
    """What one crawl did, for the closing summary and the flow's result."""

    videos: int = 0
    pages: int = 0
    comments: int = 0
    comment_emotes: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # bvid -> why
    errors: list[str] = field(default_factory=list)

    def add(self, other: CrawlSummary) -> None:
        self.videos += other.videos
        self.pages += other.pages
        self.comments += other.comments
        self.comment_emotes += other.comment_emotes
        self.skipped.update(other.skipped)
        self.errors.extend(other.errors)


def _land_error(wh: Warehouse, exc: CrawlerError) -> None:
    """Keep the answer that caused an error, so nothing the API said is lost."""
    if exc.raw is not None:
        land_raw_page(wh, exc.raw, parse_error=str(exc))
        wh.mark_changed("raw_pages")


def _discover(wh: Warehouse, pages: Iterator[VideoPage], what: str) -> list[str]:
    found: list[str] = []
    for page in pages:
        loaded = load_video_page(wh, page)
        if page.error:
            log.warning("%s: page not parsed (raw page %s kept): %s", what, loaded.page_id, page.error)
            break
        found.extend(v.bvid for v in page.videos)
    log.info("%s: %d videos", what, len(found))
    return found


def discover_popular(wh: Warehouse, client: BilibiliClient, *, max_pages: int, min_reply: int = 0) -> list[str]:
    """Videos of the popular list with at least `min_reply` comments, upserted into `videos`."""
    return _discover(wh, popular_pages(client, max_pages=max_pages, min_reply=min_reply), "popular")


def discover_search(
    wh: Warehouse, client: BilibiliClient, keywords: Iterable[str], *, order: str = "pubdate", max_pages: int
) -> list[str]:
    """Videos found by each keyword, upserted into `videos` with the keyword as their source."""
    found: list[str] = []
    for keyword in keywords:
        for bvid in _discover(wh, search_pages(client, keyword, order=order, max_pages=max_pages), f"search {keyword!r}"):
            if bvid not in found:
                found.append(bvid)
    return found


def crawl_emotes(wh: Warehouse, client: BilibiliClient) -> int:
    """The emote panel into the `emotes` catalog."""
    raw, emotes = emote_panel(client)
    with wh.transaction():
        land_raw_page(wh, raw)
        upsert_emotes(wh, emotes)
    wh.mark_changed("raw_pages", "emotes")
    return len(emotes)


def crawl_video(wh: Warehouse, client: BilibiliClient, bvid: str, *, progress: Progress | None = None) -> CrawlSummary:
    """Every comment of one video's cursor listing, resuming from its checkpoint."""
    summary = CrawlSummary()
    state = crawl_state(wh, bvid, "main")
    if state and state["is_end"]:
        summary.skipped[bvid] = "already complete"
        return summary
    try:
        raw, video = fetch_video(client, bvid)
    except (NotFound, CommentsClosed) as exc:
        _land_error(wh, exc)
        mark_video(wh, bvid, "deleted" if isinstance(exc, NotFound) else "comments_closed")
        summary.skipped[bvid] = str(exc)
        return summary
    with wh.transaction():
        land_raw_page(wh, raw)
        upsert_videos(wh, [video])
    wh.mark_changed("raw_pages", "videos")
    summary.videos = 1
    cursor = state["cursor"] if state else None
    try:
        for page in comment_pages(client, bvid=bvid, aid=video.aid, cursor=cursor):
            # Threads first: the main page (and its cursor) commits only after every thread it
            # opened is complete, so a crawl killed in between fetches those threads again.
            for root in _open_threads(page):
                thread = crawl_state(wh, bvid, f"reply:{root.rpid}")
                if thread and thread["is_end"]:
                    continue
                for reply_page in reply_pages(client, bvid=bvid, aid=video.aid, root=root.rpid,
                                              cursor=thread["cursor"] if thread else None):
                    if not _load(wh, reply_page, summary, progress):
                        break
            if not _load(wh, page, summary, progress):
                break
    except CommentsClosed as exc:
        _land_error(wh, exc)
        mark_video(wh, bvid, "comments_closed")
        summary.skipped[bvid] = str(exc)
    except ApiError as exc:
        _land_error(wh, exc)
        if exc.transient:
            raise
        summary.errors.append(f"{bvid}: {exc}")
        log.warning("%s: stopped: %s", bvid, exc)
    return summary


def _open_threads(page: CommentPage):
    """Root comments of a page with more sub-replies than the preview the page carried."""
    previewed: dict[int, int] = {}
    for c in page.comments:
        if c.root:
            previewed[c.root] = previewed.get(c.root, 0) + 1
    return [c for c in page.comments if not c.root and (c.rcount or 0) > previewed.get(c.rpid, 0)]


def _load(wh: Warehouse, page: CommentPage, summary: CrawlSummary, progress: Progress | None) -> bool:
    """Commit one page with its checkpoint; False when it could not be parsed (kept raw)."""
    loaded = load_comment_page(wh, page)
    summary.pages += 1
    if page.error:
        summary.errors.append(f"{page.bvid} {page.listing}: page {loaded.page_id} not parsed: {page.error}")
        log.warning("%s %s: page not parsed (raw page %s kept): %s", page.bvid, page.listing, loaded.page_id,
                    page.error)
        return False
    summary.comments += loaded.comments
    summary.comment_emotes += loaded.comment_emotes
    if progress:
        progress.advance(pages=1, comments=loaded.comments, emotes=loaded.comment_emotes)
    return True


def crawl_videos(wh: Warehouse, client: BilibiliClient, bvids: Iterable[str], *, show_progress: bool = True) -> CrawlSummary:
    """Crawl the comments of each video in turn; a failed video does not stop the others."""
    bvids = list(dict.fromkeys(bvids))
    total = CrawlSummary()
    with Progress(total=len(bvids), enabled=show_progress) as progress:
        for bvid in bvids:
            progress.start_video(bvid)
            total.add(crawl_video(wh, client, bvid, progress=progress))
            progress.finish_video()
    log.info("crawl: %d videos, %d pages, %d comments, %d skipped, %d errors", total.videos, total.pages,
             total.comments, len(total.skipped), len(total.errors))
    return total
