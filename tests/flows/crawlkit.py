"""Shared by the crawl tests (`from crawlkit import ...`): the local server, fast settings, and
what a crawl left behind, read back from the published snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from emopulse.flows import steps
from emopulse.flows.settings import Settings, load_settings
from emopulse.ingest.localserver import LocalBilibili, serve_local_bilibili
from emopulse.warehouse import query

SMALL = 841124054  # 175 comments: 127 roots on 7 pages; the pinned root has a 22-reply thread
TINY = 609351579  # 87 comments: 63 roots on 4 pages
MAIN, REPLY, VIEW = "/x/v2/reply/wbi/main", "/x/v2/reply/reply", "/x/web-interface/view"
NAV, SPI = "/x/web-interface/nav", "/x/frontend/finger/spi"


@pytest.fixture
def server() -> Iterator[LocalBilibili]:
    with serve_local_bilibili() as running:
        yield running


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: LocalBilibili):
    """Settings for a crawl of the local server: no throttle, millisecond backoff."""
    import os

    for name in list(os.environ):
        if name.startswith("EMOPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no emopulse.toml of the developer's

    def make(home: str = "home", **overrides: object) -> Settings:
        values = {"home": tmp_path / home, "bilibili_api_base": server.url,
                  "crawl_throttle_s": 0.0, "crawl_jitter_s": 0.0, "crawl_backoff_s": 0.001,
                  "crawl_max_retries": 2, "crawl_timeout_s": 5.0, **overrides}
        return load_settings(**values)

    return make


def crawl(settings: Settings, **options: object) -> dict:
    options = {"images": False, "show_progress": False, **options}
    return steps.crawl(settings, **options)  # type: ignore[arg-type]


def table(settings: Settings, sql: str) -> pd.DataFrame:
    return query(settings.home, sql)


def comments_of(settings: Settings, bvid: str) -> pd.DataFrame:
    """The video's comments as the snapshot has them, without the load time, by rpid."""
    df = table(settings, f"SELECT * EXCLUDE (crawled_at) FROM comments WHERE bvid = '{bvid}' "
                         "ORDER BY rpid")
    return df.reset_index(drop=True)


def main_state(settings: Settings, bvid: str) -> dict:
    rows = table(settings, f"SELECT * FROM crawl_state WHERE bvid = '{bvid}' AND listing = 'main'")
    return rows.iloc[0].to_dict()


def requests_to(server: LocalBilibili, path: str, since: int = 0) -> list:
    return [r for r in server.requests[since:] if r.path == path]


SEARCH = "/x/web-interface/wbi/search/type"
SESSION = (SPI, NAV)  # buvid cookies and WBI keys: asked for by any client that starts


def asked_after(server: LocalBilibili, since: int) -> list[str]:
    """The endpoints requested from index `since` on, in order, leaving out `SESSION` ones."""
    return [r.path for r in server.requests[since:] if r.path not in SESSION]
