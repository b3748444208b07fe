"""The local server replays its sample as a live stream: comments appear in time order as the
clock passes their ctime, roots at the top of their listing, replies in their threads, and an
incremental crawl picks up exactly what appeared since the last one."""

from __future__ import annotations

import pytest
from emopulse.ingest.localserver import LocalBilibili, Replay
from emopulse.ingest.localserver.dataset import load_dataset
from emopulse.ingest.localserver.replay import LiveFeed


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _count(feed: LiveFeed) -> int:
    return sum(len(v.replies) for v in feed.dataset.videos.values())


def test_comments_appear_in_time_order_as_the_clock_passes_them() -> None:
    full = load_dataset()
    total = sum(len(v.replies) for v in full.videos.values())
    clock = Clock()
    feed = LiveFeed(full, Replay(start_share=0.5, duration_s=100), clock=clock)
    start = _count(feed)
    assert abs(start - total / 2) <= total * 0.01
    assert all(r.ctime <= feed.t0 for v in feed.dataset.videos.values() for r in v.replies.values())
    assert feed.advance() == 0
    clock.t += 50
    released = feed.advance()
    assert 0 < released < total - start and _count(feed) == start + released
    assert all(r.ctime <= feed.now for v in feed.dataset.videos.values() for r in v.replies.values())
    for video in feed.dataset.videos.values():  # newest root first; each reply in its root's thread
        times = [r.ctime for r in video.roots]
        assert times == sorted(times, reverse=True)
        for reply in video.replies.values():
            if reply.root:
                assert reply in video.replies[reply.root].children
    clock.t += 60
    feed.advance()
    assert _count(feed) == total and feed.advance() == 0
    assert full.videos[next(iter(full.videos))].replies  # the bundled dataset is untouched
    with pytest.raises(ValueError, match="start_share"):
        Replay(start_share=1.0)


def test_an_incremental_crawl_picks_up_what_appeared(tmp_path) -> None:
    from emopulse.flows import steps
    from emopulse.flows.settings import load_settings
    from emopulse.warehouse import query

    clock = Clock()
    server = LocalBilibili(replay=Replay(start_share=0.7, duration_s=100), clock=clock).start()
    try:
        aid = 841124054  # 175 comments
        video = server.dataset.videos[aid]
        settings = load_settings(home=tmp_path / "home", bilibili_api_base=server.url, crawl_throttle_s=0.0,
                                 crawl_jitter_s=0.0, crawl_backoff_s=0.001)

        def crawled() -> int:
            steps.crawl(settings, bvids=[video.bvid], images=False, show_progress=False)
            return int(query(settings.home, f"SELECT count(*) FROM comments WHERE bvid = '{video.bvid}'").iat[0, 0])

        before = crawled()
        assert before == len(video.replies) < len(load_dataset().videos[aid].replies)
        clock.t += 200  # the rest appears
        assert crawled() == len(server.dataset.videos[aid].replies) == len(load_dataset().videos[aid].replies)
    finally:
        server.stop()
