"""The client under concurrency and for files: a global throttle, the error hook, images."""

from __future__ import annotations

import threading

import httpx
import pytest

from emopulse.ingest import ImageRejected, TransportError, emote_image
from emopulse.ingest.localserver import Fault
from emopulse.ingest.localserver.emotes import catalog

from fakeapi import FakeApi, api

EP = "/x/test"


def test_the_throttle_spaces_requests_from_every_thread(make_client, sleeps):
    fake = FakeApi([api(0, {})] * 9)
    client = make_client(transport=fake.transport, throttle_s=0.5, jitter_s=0.0)
    client.get_json(EP)  # buvid first, then 1 request
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        for _ in range(2):
            client.get_json(EP)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(fake.requests) == 10  # spi and 9 requests
    # every request but the first waited its turn: four threads did not make it four times faster
    assert len(sleeps) == 9 and all(0.45 < s <= 0.5 for s in sleeps)


def test_the_hook_hears_every_failed_attempt(make_client):
    heard = []
    fake = FakeApi([api(-799), httpx.Response(502), api(0, {"ok": 1})])
    client = make_client(transport=fake.transport, max_retries=3,
                         on_error=lambda exc, attempt, retrying: heard.append(
                             (type(exc).__name__, attempt, retrying, exc.raw.http_status)))
    client.get_json(EP, {"oid": 5})
    assert heard == [("RateLimited", 0, True, 200), ("TransportError", 1, True, 502)]


def test_emote_images_are_named_from_the_id_and_checked(server, make_client):
    client = make_client(server.url, max_retries=1)
    doge = catalog()["[doge]"]
    url = f"{server.url}/bfs/emote/{doge.emote_id}.png?name=../../etc/evil"
    name, data = emote_image(client, emote_id=7, url=url, max_bytes=1_000_000)
    assert name == "7.png" and data.startswith(b"\x89PNG")  # never the URL's name

    with pytest.raises(ImageRejected, match="limit of 100"):
        emote_image(client, emote_id=7, url=url, max_bytes=100)
    server.inject(Fault("html", at=f"/bfs/emote/{doge.emote_id}.png"))
    with pytest.raises(ImageRejected, match="content type 'text/html'"):
        emote_image(client, emote_id=7, url=url, max_bytes=1_000_000)
    server.inject(Fault("http500", at=f"/bfs/emote/{doge.emote_id}.png", times=2))
    with pytest.raises(TransportError, match="HTTP 500"):
        emote_image(client, emote_id=7, url=url, max_bytes=1_000_000)
    with pytest.raises(ImageRejected, match="http"):
        emote_image(client, emote_id=7, url="file:///etc/passwd", max_bytes=1_000_000)


def test_bytes_that_are_not_the_declared_image_are_refused(make_client):
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<svg/>", headers={"content-type": "image/png"})

    client = make_client(transport=httpx.MockTransport(handle))
    with pytest.raises(ImageRejected, match="not a image/png"):
        emote_image(client, emote_id=1, url="https://i0.hdslb.com/bfs/emote/x.png", max_bytes=99)
