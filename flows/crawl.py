"""The crawl: ingest's pages loaded into the warehouse, one page a transaction, resumable.

This is where the two rooms meet (only `flows` knows both): the source yields pages with their
cursor, the warehouse commits each page together with its checkpoint, so a crawl killed at any
moment resumes from the last page it committed.

A video's comments are read in passes over the time-ordered listing (newest first):

* the first pass reads it to the end (or to `--since`);
* a later pass runs when the video's comment count changed in either direction since the last
  pass started (deletions can hide new comments), or when the last pass is older than
  `max_pass_age_s`; it stops at the newest root comment that pass stored (`Window.stop`);
  pinned replies, which come first, never stop it;
* a full pass (`--full`, or when the last one is older than `full_pass_s`) reads the whole
  listing again, storing only comments that are new or changed (likes, replies, text), so late
  comments and grown threads under old roots are found;
* a page that is not the end but has no next cursor is a soft block: the client refreshes its
  keys and cookies and retries; then the listing is recorded `blocked` (resumable), never done;
* a killed pass resumes from its checkpoint; a saved cursor the API refuses (-400 on the first
  request) restarts the listing from the top, skipping comments already stored;
* sub-reply threads are read whenever a root shows more replies than its inline preview and
  than the thread held when last read (a grown thread is read again from its last known page);
  a later pass also reads the first page of the listing by likes, whose old, busy roots are
  where threads keep growing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from emopulse.ingest.bilibili import PAGE_SIZE, comment_pages, fetch_video, hot_page, reply_pages
from emopulse.ingest.client import BilibiliClient
from emopulse.ingest.errors import (
    ApiError, BadRequest, Blocked, CommentsClosed, CrawlerError, NotFound, SoftBlocked, WrongType,
)
from emopulse.ingest.records import Comment, CommentPage, RawPage, Video
from emopulse.ingest.window import Mark, Window
from emopulse.warehouse import (
    Warehouse, land_raw_page, listing_states, load_comment_page, mark_video, record_video_sources,
    rejected_note, set_listing_status, stored_comments, stored_versions, thread_sizes,
    unfinished_threads, upsert_videos, video_row,
)

from .cooldown import CoolingDown, check_cooldown, cool_down
from .crawl_log import ApiErrorLog, video_context
from .progress import Progress, VideoBar

__all__ = ["Crawl", "CrawlOptions", "CrawlSummary", "Pass", "crawl_video", "crawl_videos",
           "plan_pass"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CrawlOptions:
    """How a crawl behaves; `source` (the API base) is what a -412 cools down."""

    source: str
    cooldown_s: float = 1800.0
    max_comments: int | None = None  # per video, counting every stored comment of it
    since: int | None = None  # Unix seconds: 00:00 Asia/Shanghai of --since
    concurrency: int = 1
    full: bool = False  # --full: read every listing whole again
    recheck: bool = False  # --recheck: ask again about videos marked deleted / comments_closed
    full_pass_s: float | None = 7 * 86400.0  # a full pass when the last is older (None: never)
    max_pass_age_s: float | None = 86400.0  # pass an unchanged video after this (None: never)
    recheck_s: float | None = 7 * 86400.0  # re-ask deleted / closed videos after this

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, not {self.concurrency}")
        if self.max_comments is not None and self.max_comments < 1:
            raise ValueError(
                f"--max-comments-per-video must be at least 1, not {self.max_comments}")


@dataclass
class CrawlSummary:
    """What one crawl did, for the closing summary and the flow's result."""

    videos: int = 0  # videos whose listing was read
    up_to_date: int = 0  # videos with no new comments since their last complete pass
    full_passes: int = 0  # passes that read a whole listing
    rejected: int = 0  # unreadable replies skipped (their raw pages are kept)
    pages: int = 0
    comments: int = 0
    comment_emotes: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # bvid -> why
    errors: list[str] = field(default_factory=list)

    def add(self, other: CrawlSummary) -> None:
        self.videos += other.videos
        self.up_to_date += other.up_to_date
        self.full_passes += other.full_passes
        self.rejected += other.rejected
        self.pages += other.pages
        self.comments += other.comments
        self.comment_emotes += other.comment_emotes
        self.skipped.update(other.skipped)
        self.errors.extend(other.errors)


class _Stopping(threading.Event):
    """The crawl's stop flag: set by the crawl, or by the service's shutdown event."""

    def __init__(self, shutdown: threading.Event | None) -> None:
        super().__init__()
        self.shutdown = shutdown

    def is_set(self) -> bool:
        return super().is_set() or (self.shutdown is not None and self.shutdown.is_set())


class Crawl:
    """One crawl run: the warehouse (one lock for every worker thread), the client, the options.

    Installs itself as the client's `on_error` hook, so every failed answer is logged and landed.
    """

    def __init__(self, wh: Warehouse, client: BilibiliClient, options: CrawlOptions, *,
                 show_progress: bool = False, shutdown: threading.Event | None = None) -> None:
        self.wh, self.client, self.options = wh, client, options
        self.show_progress = show_progress
        self.progress: Progress | None = None
        # set by the crawl itself (-412, a failed worker); `shutdown` (the service stopping) also
        # stops it, after the page being committed
        self.stopping = _Stopping(shutdown)
        self._lock = threading.RLock()
        # Called after every committed page, with the warehouse held by the calling thread and
        # no transaction open: where a long crawl publishes snapshots as it goes.
        self.on_committed: Callable[[Warehouse], None] | None = None
        client.on_error = ApiErrorLog(self.land, self._count_error)

    def committed(self) -> None:
        """A page (or a status) was committed: let `on_committed` publish if it is time."""
        if self.on_committed is not None:
            with self.locked() as wh:
                self.on_committed(wh)

    @contextmanager
    def locked(self) -> Iterator[Warehouse]:
        """The warehouse, held by this thread for the block."""
        with self._lock:
            yield self.wh

    def land(self, raw: RawPage, why: str | None = None) -> None:
        """Keep an answer (an error's too), so nothing the API said is lost."""
        with self.locked() as wh:
            land_raw_page(wh, raw, parse_error=why)

    def check_cooldown(self) -> None:
        with self.locked() as wh:
            check_cooldown(wh, self.options.source)

    def cool_down(self, exc: Blocked, bvid: str | None = None) -> CoolingDown:
        self.stopping.set()
        with self.locked() as wh:
            return cool_down(wh, self.options.source, exc, seconds=self.options.cooldown_s,
                             bvid=bvid)

    def _count_error(self) -> None:
        if self.progress is not None:
            self.progress.error()


@dataclass(frozen=True, slots=True)
class Pass:
    """Where a pass over a video's main listing starts and what it reads."""

    cursor: str | None
    window: Window
    skip_known: bool = False
    full: bool = False  # reads the whole listing (no stop at the newest stored comment)


def _age_s(moment: datetime | None, now: datetime) -> float:
    return float("inf") if moment is None else (now - moment).total_seconds()


def plan_pass(state: dict[str, Any] | None, reply_count: int | None, *,
              since: int | None, options: CrawlOptions | None = None,
              now: datetime | None = None) -> Pass | str:
    """The pass to run over a main listing in `state`, or why none is needed."""
    options = options or CrawlOptions(source="")
    now = now or datetime.now(UTC)
    if state is None:
        return Pass(None, Window(None, since), full=True)
    head = None if state["head_rpid"] is None else Mark(state["head_ctime"], state["head_rpid"])
    floor = state["floor_ctime"]
    older_part = floor is not None and (since is None or since < floor)  # not read down there
    if not state["is_end"]:  # resume it (a full pass stays full; --full restarts the others)
        full = bool(state.get("full_pass")) or head is None or older_part
        if full or not options.full:
            return Pass(state["cursor"], Window(None if full else head, since),
                        bool(state["skip_known"]), full=full)
    full_due = options.full_pass_s is not None and (
        _age_s(state.get("full_pass_at"), now) >= options.full_pass_s)
    never_whole = head is None and state.get("full_pass_at") is None  # no complete pass yet
    if never_whole or older_part or options.full or full_due:
        return Pass(None, Window(None, since), full=True)
    total = state["total"]
    stale = options.max_pass_age_s is not None and (
        _age_s(state.get("finished_at"), now) >= options.max_pass_age_s)
    if reply_count is not None and reply_count == total and not stale:
        return f"up to date ({reply_count} comments, as many as the last pass started with)"
    return Pass(None, Window(head, since))


def crawl_videos(crawl: Crawl, targets: Iterable[Video | str]) -> CrawlSummary:
    """Crawl the comments of each video (`Video`s from discovery carry a fresh reply count).

    A failed video does not stop the others; a -412 stops them all (`CoolingDown`). With a
    concurrency above one, videos are crawled by that many threads sharing the client, whose
    throttle spaces requests globally.
    """
    unique: dict[str, Video | str] = {}
    for target in targets:
        unique.setdefault(target if isinstance(target, str) else target.bvid, target)
    total = CrawlSummary()
    crawl.check_cooldown()
    with Progress(total=len(unique), enabled=crawl.show_progress) as progress:
        crawl.progress = progress
        if crawl.options.concurrency == 1:
            for target in unique.values():
                total.add(crawl_video(crawl, target))
        else:
            with ThreadPoolExecutor(crawl.options.concurrency, "crawl") as pool:
                futures = [pool.submit(crawl_video, crawl, t) for t in unique.values()]
                failure: BaseException | None = None
                for future in futures:
                    try:
                        total.add(future.result())
                    except BaseException as exc:  # noqa: BLE001 - re-raised below
                        crawl.stopping.set()
                        failure = failure or exc
                if failure is not None:
                    raise failure
    log.info("crawl: %d videos read, %d up to date, %d pages, %d comments, %d skipped, "
             "%d errors", total.videos, total.up_to_date, total.pages, total.comments,
             len(total.skipped), len(total.errors))
    return total


def crawl_video(crawl: Crawl, target: Video | str) -> CrawlSummary:
    """One video's comments: plan a pass, read its pages, record why it stopped."""
    bvid = target if isinstance(target, str) else target.bvid
    summary = CrawlSummary()
    if crawl.stopping.is_set():
        return summary
    bars = crawl.progress.video(bvid) if crawl.progress else nullcontext(None)
    with video_context(bvid), bars as bar:
        try:
            _VideoCrawl(crawl, bvid, summary, bar).run(target)
        except Blocked as exc:  # -412, or the circuit breaker tripped
            _status(crawl, bvid, "main", "blocked", str(exc))
            raise crawl.cool_down(exc, bvid) from exc
        except SoftBlocked as exc:  # retries ran out: resumable, never complete
            _status(crawl, bvid, "main", "blocked", f"soft-blocked after retries: {exc}")
            summary.errors.append(f"{bvid}: blocked: {exc}")
            log.warning("%s: soft-blocked: %s", bvid, exc)
        except (NotFound, CommentsClosed) as exc:
            status = "deleted" if isinstance(exc, NotFound) else "comments_closed"
            with crawl.locked() as wh:
                mark_video(wh, bvid, status)
                set_listing_status(wh, bvid, "main", status, str(exc))
            summary.skipped[bvid] = f"{status}: {exc}"
        except WrongType:
            raise  # 12009 means a bug in the request: fail loudly
        except CrawlerError as exc:  # retries ran out, or an answer we cannot use
            _status(crawl, bvid, "main", "error", str(exc))
            summary.errors.append(f"{bvid}: {exc}")
            log.warning("%s: stopped: %s", bvid, exc)
    return summary


def _status(crawl: Crawl, bvid: str, listing: str, status: str, message: str,
            *, is_end: bool | None = None) -> None:
    with crawl.locked() as wh:
        set_listing_status(wh, bvid, listing, status, message, is_end=is_end)


# a sub-reply thread that answered -404, 12002, -400 (or another terminal code): asked again later
_GONE_THREAD = ("deleted", "comments_closed", "stopped")


class _Stop(Exception):
    """The video's crawl ends here for a reason already recorded (limit, stopped paging)."""


class _VideoCrawl:
    """The state of one video's crawl: its pass, its comment budget, its counters."""

    def __init__(self, crawl: Crawl, bvid: str, summary: CrawlSummary,
                 bar: VideoBar | None) -> None:
        self.crawl, self.bvid, self.summary, self.bar = crawl, bvid, summary, bar
        self.client = crawl.client
        self.aid = 0
        self.budget: int | None = None
        self.skip_known = False
        self.full = False

    def run(self, target: Video | str) -> None:
        with self.crawl.locked() as wh:
            states = listing_states(wh, self.bvid, ["main", "hot"])
            state = states.get("main")
            stored = stored_comments(wh, self.bvid)
            row = video_row(wh, self.bvid)
            unfinished = unfinished_threads(wh, self.bvid)
        options = self.crawl.options
        gone = row["status"] if row and row["status"] in ("deleted", "comments_closed") else None
        if gone:
            marked = (state or {}).get("updated_at") or row["updated_at"]
            due = options.recheck or (options.recheck_s is not None and
                                      _age_s(marked, datetime.now(UTC)) >= options.recheck_s)
            if not due:
                self.summary.skipped[self.bvid] = (f"{gone} (marked by an earlier crawl; "
                                                   "--recheck asks again)")
                return
        video = self._video(target)
        self.aid = video.aid
        if gone:  # the video answers again: whatever it says next is recorded
            with self.crawl.locked() as wh:
                mark_video(wh, self.bvid, "ok")
        plan = plan_pass(state, video.reply_count, since=options.since, options=options)
        # an incremental pass is complete only with its page by likes: one killed before that
        # page was loaded left it pending, and it is read before anything else is decided
        hot_pending = "hot" in states and not states["hot"]["is_end"]
        if isinstance(plan, str) and not unfinished and not hot_pending:
            self.summary.up_to_date += 1
            self.summary.skipped[self.bvid] = plan
            return
        limit = self.crawl.options.max_comments
        if limit is not None:
            self.budget = limit - stored
            if self.budget <= 0:
                self._limit_reached("main")
                self.summary.skipped[self.bvid] = f"holds {stored} comments (limit {limit})"
                return
        self.summary.videos = 1
        try:
            for thread in unfinished:  # left half-read by an earlier run: finish them first
                self._thread(int(thread["listing"].split(":")[1]), thread["cursor"],
                             thread["total"])
            if isinstance(plan, Pass):
                self.skip_known, self.full = plan.skip_known, plan.full
                self.summary.full_passes += plan.full
                if plan.window.stop is not None:  # pending until the hot page is loaded
                    _status(self.crawl, self.bvid, "hot", "running",
                            "waits for the pass over the listing", is_end=False)
                    hot_pending = True
                if self._main(plan) and hot_pending:
                    self._hot()
            elif hot_pending:
                self._hot()
        except _Stop:
            pass

    def _video(self, target: Video | str) -> Video:
        """The video with its aid and a fresh reply count: from discovery, else from `view`."""
        if isinstance(target, Video) and target.aid is not None and target.reply_count is not None:
            return target
        raw, video = fetch_video(self.client, self.bvid)
        with self.crawl.locked() as wh, wh.transaction():
            land_raw_page(wh, raw)
            upsert_videos(wh, [video])
            if isinstance(target, str):  # asked for by id: discovery recorded the others
                record_video_sources(wh, [video])
        return video

    # -- the main listing ---------------------------------------------------------------------

    def _main(self, plan: Pass) -> bool:
        """Read the pass's pages; True when it got to its end."""
        cursor, read = plan.cursor, 0
        pages = comment_pages(self.client, bvid=self.bvid, aid=self.aid, cursor=cursor,
                              window=plan.window)
        while True:
            try:
                for page in pages:
                    read += 1
                    if not self._main_page(page):
                        return False
                return True
            except BadRequest as exc:
                if read == 0 and cursor is not None:  # the saved cursor is refused: restart
                    log.warning("%s: the saved cursor was refused (%s); restarting the listing "
                                "from the top, skipping stored comments", self.bvid, exc)
                    cursor, self.skip_known = None, True
                    pages = comment_pages(self.client, bvid=self.bvid, aid=self.aid,
                                          window=plan.window)
                    continue
                _status(self.crawl, self.bvid, "main", "stopped", f"paging refused: {exc}")
                self.summary.errors.append(f"{self.bvid}: paging stopped: {exc}")
                return False

    def _main_page(self, page: CommentPage) -> bool:
        """Threads opened by a page of roots, then the page; False when the listing stops."""
        if page.error:
            return self._load(page)
        for root, cursor in self._open_threads(page):
            if not self._thread(root.rpid, cursor, root.rcount):  # the page waits for it
                _status(self.crawl, self.bvid, "main", "error",
                        f"the thread of {root.rpid} has an unreadable page; the next crawl "
                        "reads this page and the thread again")
                return False
        return self._load(page)

    def _stored(self, rpids: Iterable[int]) -> dict[int, tuple[Any, ...]]:
        with self.crawl.locked() as wh:
            return stored_versions(wh, rpids)

    # -- sub-reply threads --------------------------------------------------------------------

    def _open_threads(self, page: CommentPage) -> list[tuple[Comment, str | None]]:
        """Roots of the page whose thread needs reading, each with the `pn` to start from."""
        previewed: dict[int, int] = {}
        for c in page.comments:
            if c.root:
                previewed[c.root] = previewed.get(c.root, 0) + 1
        roots = [c for c in page.comments
                 if not c.root and (c.rcount or 0) > previewed.get(c.rpid, 0)]
        with self.crawl.locked() as wh:
            states = listing_states(wh, self.bvid, (f"reply:{c.rpid}" for c in roots))
            gone = [c.rpid for c in roots
                    if states.get(f"reply:{c.rpid}", {}).get("status") in _GONE_THREAD]
            sizes = thread_sizes(wh, self.bvid, gone)
        out = []
        for root in roots:
            state = states.get(f"reply:{root.rpid}")
            if state is None:
                out.append((root, None))
            elif not state["is_end"]:
                out.append((root, state["cursor"]))
            elif state["status"] in _GONE_THREAD:  # asked again by a full pass or a re-check
                have = sizes.get(root.rpid, 0)
                if (root.rcount or 0) > have and self._recheck_due(state):
                    out.append((root, str(max(have - 1, 0) // PAGE_SIZE + 1)))
            else:
                had = state["total"] if state["total"] is not None else state["comments"]
                if (root.rcount or 0) > had:  # grown since: read on from its last known page
                    out.append((root, str(max(had - 1, 0) // PAGE_SIZE + 1)))
        return out

    def _recheck_due(self, state: dict[str, Any]) -> bool:
        """A listing recorded gone is asked again: in a full pass, with --recheck, or once its
        record is older than the re-check setting."""
        options = self.crawl.options
        return self.full or options.recheck or (
            options.recheck_s is not None
            and _age_s(state.get("updated_at"), datetime.now(UTC)) >= options.recheck_s)

    def _hot(self) -> None:
        """The busiest roots (the first page by likes) and their grown threads: old roots keep
        gathering replies below where a later pass stops. A thread that fails here is
        finished by the next run."""
        try:
            page = hot_page(self.client, bvid=self.bvid, aid=self.aid)
        except SoftBlocked as exc:  # the pass itself is complete: only this extra page waits
            _status(self.crawl, self.bvid, "hot", "blocked", f"soft-blocked: {exc}")
            self.summary.errors.append(f"{self.bvid}: hot page blocked: {exc}")
            return
        if not page.error:
            for root, cursor in self._open_threads(page):
                self._thread(root.rpid, cursor, root.rcount)
        self._load(page)

    def _thread(self, rpid: int, cursor: str | None, expected: int | None) -> bool:
        """Read the thread of root `rpid` from `cursor`; False when a page could not be read."""
        listing = f"reply:{rpid}"
        try:
            for page in reply_pages(self.client, bvid=self.bvid, aid=self.aid, root=rpid,
                                    cursor=cursor, expected=expected):
                if not self._load(page):
                    return False
        except BadRequest as exc:  # the thread cannot be paged further
            _status(self.crawl, self.bvid, listing, "stopped", f"paging refused: {exc}",
                    is_end=True)
        except SoftBlocked as exc:  # retries ran out: the thread stays open, the next run reads it
            _status(self.crawl, self.bvid, listing, "blocked", f"soft-blocked after retries: {exc}")
            self.summary.errors.append(f"{self.bvid} {listing}: blocked: {exc}")
            log.warning("%s %s: soft-blocked: %s", self.bvid, listing, exc)
        except (NotFound, CommentsClosed) as exc:  # the thread is gone, not the video
            status = "deleted" if isinstance(exc, NotFound) else "comments_closed"
            _status(self.crawl, self.bvid, listing, status, str(exc), is_end=True)
            log.info("%s: thread %s: %s", self.bvid, rpid, exc)
        except ApiError as exc:
            if exc.transient or type(exc) is not ApiError:
                raise  # retries ran out, or a code that concerns the whole crawl
            _status(self.crawl, self.bvid, listing, "stopped", str(exc), is_end=True)
            self.summary.errors.append(f"{self.bvid} {listing}: {exc}")
        return True

    # -- loading ------------------------------------------------------------------------------

    def _load(self, page: CommentPage) -> bool:
        """Commit one page with its checkpoint; False when the listing stops here.

        Comments already stored are reloaded (their likes and reply counts refresh) unless the
        pass skips them; a full pass reloads only those that changed. New ones count against
        the video's comment budget, and a page that would exceed it is cut there, its cursor
        left where it was.
        """
        if self.crawl.stopping.is_set():
            raise _Stop
        status = message = None
        stored = {} if page.error else self._stored(c.rpid for c in page.comments)
        known = set(stored)
        if self.skip_known:
            page = replace(page, comments=[c for c in page.comments if c.rpid not in known])
        elif self.full:
            page = replace(page, comments=[c for c in page.comments
                                           if stored.get(c.rpid) != _version(c)])
        if page.rejected:
            self.summary.rejected += len(page.rejected)
            log.warning("%s %s: %s (raw page kept)", page.bvid, page.listing, rejected_note(page))
        fresh, kept = 0, []
        for comment in page.comments:
            if comment.rpid not in known:
                if fresh == self.budget:  # the rest of the page is read again later
                    page = replace(page, comments=kept, cursor=page.start, is_end=False, end=None)
                    break
                fresh += 1
            kept.append(comment)
        if self.budget is not None and fresh == self.budget and not page.is_end:
            status = "limit"
            message = f"--max-comments-per-video {self.crawl.options.max_comments} reached"
        with self.crawl.locked() as wh:
            loaded = load_comment_page(wh, page, status=status, message=message,
                                       since=self.crawl.options.since,
                                       skip_known=self.skip_known, full=self.full)
        self.crawl.committed()
        self.summary.pages += 1
        if page.error:
            what = f"{page.bvid} {page.listing}: page {loaded.page_id} not read: {page.error}"
            self.summary.errors.append(what)
            log.warning("%s (raw page kept)", what)
            if self.bar:
                self.bar.advance(pages=1)
            return False
        self.summary.comments += fresh
        self.summary.comment_emotes += loaded.comment_emotes
        if self.bar:
            self.bar.advance(pages=1, comments=fresh, emotes=loaded.comment_emotes)
        if self.budget is not None:
            self.budget -= fresh
        if status == "limit":
            if page.listing != "main":
                self._limit_reached("main")
            raise _Stop
        return True

    def _limit_reached(self, listing: str) -> None:
        limit = self.crawl.options.max_comments
        message = f"--max-comments-per-video {limit} reached"
        _status(self.crawl, self.bvid, listing, "limit", message)


def _version(comment: Comment) -> tuple[Any, ...]:
    """What `stored_versions` holds of a comment: equal means nothing to store."""
    return (comment.message, comment.likes, comment.rcount)
