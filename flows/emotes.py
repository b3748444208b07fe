"""The emote catalog and its images.

`crawl_emotes` reads the panel, then `/x/emote/package?ids=` for the packages met in comments that
the panel did not list. `download_emote_images` fetches the images the catalog still lacks into
`$EMOPULSE_HOME/images/emotes/<emote id>.<type>`; a failure is recorded on the emote (and tried
again by a later crawl, up to a budget of attempts), never fatal to the crawl.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from emopulse.ingest.bilibili import emote_packages, emote_panel
from emopulse.ingest.errors import Blocked, CrawlerError
from emopulse.ingest.images import emote_image
from emopulse.ingest.records import Emote, RawPage
from emopulse.warehouse import (
    emotes_needing_images, land_raw_page, record_emote_image, unknown_packages, upsert_emotes,
)

from .crawl import Crawl
from .crawl_log import video_context

__all__ = ["EMOTE_IMAGES", "ImageSummary", "crawl_emotes", "download_emote_images"]

EMOTE_IMAGES = Path("images") / "emotes"  # under the home folder
log = logging.getLogger(__name__)


def crawl_emotes(crawl: Crawl) -> int:
    """The emote panel, and the packages met in comments that it lacks, into `emotes`."""
    try:
        raw, emotes = emote_panel(crawl.client)
        _store(crawl, raw, emotes)
        with crawl.locked() as wh:
            missing = unknown_packages(wh)
        if missing:
            raw, more = emote_packages(crawl.client, missing)
            _store(crawl, raw, more)
            emotes += more
            log.info("emote packages %s (met in comments): %d emotes", missing, len(more))
    except Blocked as exc:
        raise crawl.cool_down(exc) from exc
    return len(emotes)


def _store(crawl: Crawl, raw: RawPage, emotes: list[Emote]) -> None:
    with crawl.locked() as wh, wh.transaction():
        land_raw_page(wh, raw)
        upsert_emotes(wh, emotes)


@dataclass
class ImageSummary:
    stored: int = 0
    failed: int = 0


def download_emote_images(crawl: Crawl, home: Path, *, max_bytes: int,
                          max_attempts: int) -> ImageSummary:
    """Download the images the catalog lacks; record each success or failure on the emote."""
    folder = Path(home) / EMOTE_IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    with crawl.locked() as wh:
        wanted = emotes_needing_images(wh, max_attempts=max_attempts)
    summary = ImageSummary()
    for emote in wanted:
        if crawl.stopping.is_set():
            break
        with video_context(f"emote:{emote['emote_id']}"):
            try:
                name, data = emote_image(crawl.client, emote_id=emote["emote_id"],
                                         url=emote["url"], max_bytes=max_bytes)
            except CrawlerError as exc:  # 412 from the image host included: never fatal
                summary.failed += 1
                log.warning("emote %s image not stored: %s", emote["emote_id"], exc)
                with crawl.locked() as wh:
                    record_emote_image(wh, emote["emote_id"], error=str(exc))
                continue
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
        with crawl.locked() as wh:
            record_emote_image(wh, emote["emote_id"], path=str(EMOTE_IMAGES / name))
        summary.stored += 1
    return summary
