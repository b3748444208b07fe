"""The local server's sample replayed as a live stream: comments appear as a virtual clock passes
their `ctime`.

At the start the served videos hold the comments a share `start_share` of the sample had (by
time); the clock then runs so that the rest has appeared after `duration_s` seconds of wall time,
in time order: a root comment at the top of its video's listing, a reply at the end of its
thread. Reply counts grow with them, so incremental crawls find new pages, as on Bilibili.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .dataset import Dataset, Reply, SampleVideo

__all__ = ["LiveFeed", "Replay"]


@dataclass(frozen=True, slots=True)
class Replay:
    start_share: float = 0.8  # of the sample's comments (by time) visible at the start
    duration_s: float = 1800.0  # wall seconds until the whole sample has appeared

    def __post_init__(self) -> None:
        if not 0 <= self.start_share < 1:
            raise ValueError(f"start_share must be in [0, 1), not {self.start_share}")
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be positive, not {self.duration_s}")


def _bare(reply: Reply) -> Reply:
    out = copy.copy(reply)
    out.children = []
    return out


class LiveFeed:
    """The served dataset of a replay; `advance()` releases what the clock has passed."""

    def __init__(self, full: Dataset, replay: Replay, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.replay, self.clock = replay, clock
        replies = sorted((r for v in full.videos.values() for r in v.replies.values()), key=lambda r: (r.ctime, r.rpid))
        if not replies:
            raise ValueError("the sample holds no comments: nothing to replay")
        cut = int(len(replies) * replay.start_share)
        self.t0 = replies[cut].ctime if cut < len(replies) else replies[-1].ctime
        self.t_end = replies[-1].ctime
        self.speed = max(self.t_end - self.t0, 1) / replay.duration_s  # virtual seconds per wall second
        self.started = clock()
        self._pending = [r for r in replies if r.ctime > self.t0]
        self._next = 0
        self._full = full
        self._lock = threading.Lock()
        self.dataset = Dataset({aid: self._visible(v) for aid, v in full.videos.items()})

    def _visible(self, video: SampleVideo) -> SampleVideo:
        shown = {rpid: _bare(r) for rpid, r in video.replies.items() if r.ctime <= self.t0}
        for reply in sorted(shown.values(), key=lambda r: r.rpid):
            if reply.root and reply.root in shown:
                shown[reply.root].children.append(reply)
        pinned = video.pinned if video.pinned is not None and video.pinned.rpid in shown else None
        roots = [shown[r.rpid] for r in video.roots if r.rpid in shown]
        return SampleVideo(aid=video.aid, bvid=video.bvid, title=video.title, pubdate=video.pubdate,
                           owner_mid=video.owner_mid, owner_name=video.owner_name, roots=roots,
                           pinned=shown[pinned.rpid] if pinned else None,
                           replies={r.rpid: r for r in shown.values() if r.root == 0 or r.root in shown})

    @property
    def now(self) -> float:
        """The virtual clock (a Unix time in the sample's past)."""
        return self.t0 + (self.clock() - self.started) * self.speed

    @property
    def released(self) -> int:
        return self._next

    def advance(self) -> int:
        """Release every pending comment the clock has passed; how many."""
        now = self.now
        with self._lock:
            start = self._next
            while self._next < len(self._pending) and self._pending[self._next].ctime <= now:
                reply = self._pending[self._next]
                self._next += 1
                video = self.dataset.videos[reply.aid]
                shown = _bare(reply)
                if reply.root:
                    root = video.replies.get(reply.root)
                    if root is None:  # a reply older than its root: the sample's threads never have one
                        raise ValueError(f"reply {reply.rpid} comes before its root {reply.root}")
                    root.children.append(shown)
                else:
                    full_video = self._full.videos[reply.aid]
                    if full_video.pinned is not None and full_video.pinned.rpid == reply.rpid:
                        video.pinned = shown
                    else:
                        video.roots.insert(0, shown)
                video.replies[shown.rpid] = shown
            return self._next - start
