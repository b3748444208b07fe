"""The emote catalog (panel, and packages met in comments) and emote images on disk."""

from __future__ import annotations

import pandas as pd

from emopulse.ingest.localserver import Fault
from emopulse.ingest.localserver.emotes import all_emotes, catalog, member_catalog

from crawlkit import SMALL, crawl, make_settings, requests_to, server, table

__all__ = ["make_settings", "server"]  # fixtures

PACKAGE = "/x/emote/package"
PNG = b"\x89PNG\r\n\x1a\n"


def test_emotes_come_from_the_panel_and_from_packages_met_in_comments(server, make_settings):
    settings = make_settings()
    video = server.dataset.videos[SMALL]
    server.add_reply(SMALL, "哇哦[保卫萝卜_哇][doge]")  # a bought package, not on the panel
    crawl(settings, bvids=[video.bvid], images=False)
    bare = table(settings, "SELECT emoji_alt, package_id, package_name, url FROM emotes "
                           "WHERE emoji_alt = '[保卫萝卜_哇]'").iloc[0]
    assert (bare["package_id"], bare["package_name"]) == (2, None)  # from the reply's own entry
    assert bare["url"].endswith("/bfs/emote/2001.png")

    result = crawl(settings, emotes=True, images=True)
    (asked,) = requests_to(server, PACKAGE)
    assert asked.params["ids"] == "2"
    names = table(settings, "SELECT emoji_alt, package_name FROM emotes")
    named = dict(zip(names["emoji_alt"], names["package_name"]))
    assert {t: named[t] for t in member_catalog()} == dict.fromkeys(member_catalog(), "保卫萝卜")
    assert all(named[t] == "小黄脸" for t in catalog())
    assert result["emotes"] == len(all_emotes())

    images = settings.home / "images" / "emotes"
    stored = table(settings, "SELECT emote_id, image_path, image_error FROM emotes")
    assert result["images"] == {"stored": len(all_emotes()), "failed": 0}
    for row in stored.itertuples():
        assert row.image_path == f"images/emotes/{row.emote_id}.png" and pd.isna(row.image_error)
        assert (settings.home / row.image_path).read_bytes().startswith(PNG)
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{e.emote_id}.png"
                                                              for e in all_emotes().values())


def test_failed_images_are_recorded_never_fatal_and_retried_later(server, make_settings):
    settings = make_settings(crawl_max_retries=1)
    ids = [e.emote_id for e in catalog().values()][:3]
    server.inject(Fault("http404", at=f"/bfs/emote/{ids[0]}.png"),
                  Fault("html", at=f"/bfs/emote/{ids[1]}.png"),
                  Fault("http500", at=f"/bfs/emote/{ids[2]}.png", times=1))
    first = crawl(settings, emotes=True, images=True)
    assert first["images"] == {"stored": len(catalog()) - 2, "failed": 2}  # the panel's
    rows = table(settings, "SELECT emote_id, image_path, image_error, image_attempts FROM emotes")
    rows = {r.emote_id: r for r in rows.itertuples()}
    assert "HTTP 404" in rows[ids[0]].image_error and pd.isna(rows[ids[0]].image_path)
    assert "text/html" in rows[ids[1]].image_error
    assert rows[ids[2]].image_path == f"images/emotes/{ids[2]}.png"  # a retry got it

    before = len(server.requests)
    crawl(settings, emotes=True, images=False)  # --no-images: not a single image request
    assert not any(r.path.startswith("/bfs/") for r in server.requests[before:])

    again = crawl(settings, emotes=True, images=True)
    assert again["images"] == {"stored": 2, "failed": 0}  # only the two that failed
    rows = table(settings, "SELECT emote_id, image_attempts, image_error FROM emotes "
                           f"WHERE emote_id IN ({ids[0]}, {ids[1]})")
    assert set(rows["image_attempts"]) == {2} and rows["image_error"].isna().all()


def test_an_image_that_keeps_failing_stops_being_asked_for(server, make_settings):
    settings = make_settings(crawl_max_retries=0, crawl_image_attempts=2)
    bad = next(iter(catalog().values())).emote_id
    server.inject(Fault("http404", at=f"/bfs/emote/{bad}.png", times=10))
    for _ in range(3):
        crawl(settings, emotes=True, images=True)
    asked = [r for r in server.requests if r.path == f"/bfs/emote/{bad}.png"]
    assert len(asked) == 2  # the budget of attempts across crawls
