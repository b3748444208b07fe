"""Fixtures for the ingest tests: the local server on 127.0.0.1 and fast clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from emopulse.ingest import BilibiliClient
from emopulse.ingest.localserver import LocalBilibili, serve_local_bilibili


@pytest.fixture
def server() -> Iterator[LocalBilibili]:
    with serve_local_bilibili() as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    """What the client under test asked to sleep, in order (nothing really sleeps)."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., BilibiliClient]]:
    """Build clients with no real waiting; they are closed after the test."""
    clients: list[BilibiliClient] = []

    def make(api_base: str = "http://bilibili.test", **options: object) -> BilibiliClient:
        options = {"throttle_s": 0.0, "jitter_s": 0.0, "backoff_s": 0.001,
                   "sleep": sleeps.append, **options}
        clients.append(BilibiliClient(api_base, **options))  # type: ignore[arg-type]
        return clients[-1]

    yield make
    for client in clients:
        client.close()
