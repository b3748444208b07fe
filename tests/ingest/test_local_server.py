"""The local server itself, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from itertools import pairwise

import httpx
import pytest
from PIL import Image

from emopulse.ingest import av2bv, extract_tokens, wbi
from emopulse.ingest.localserver import Fault
from emopulse.ingest.localserver.dataset import load_dataset
from emopulse.ingest.localserver.emotes import catalog
from emopulse.ingest.localserver.shapes import reply_json

MAIN = "/x/v2/reply/wbi/main"


def signed_get(server, path: str, params: dict) -> dict:
    query = wbi.sign(params, *server.wbi_keys)
    return httpx.get(server.url + path, params=query).json()


def test_nav_answers_logged_out_with_the_wbi_keys(server):
    body = httpx.get(server.url + "/x/web-interface/nav").json()
    assert body["code"] == -101
    assert wbi.keys_from_nav(body["data"]) == server.wbi_keys


def test_wbi_endpoints_check_the_signature(server):
    params = {"type": 1, "oid": 609351579, "mode": 2, "pagination_str": '{"offset":""}'}
    assert httpx.get(server.url + MAIN, params=params).json()["code"] == -403
    bad = {**wbi.sign(params, *server.wbi_keys), "oid": "160008"}
    assert httpx.get(server.url + MAIN, params=bad).json()["code"] == -403
    assert signed_get(server, MAIN, params)["code"] == 0
    old_keys = server.wbi_keys
    server.rotate_wbi_keys()
    assert server.wbi_keys != old_keys
    assert httpx.get(server.url + MAIN, params=wbi.sign(params, *old_keys)).json()["code"] == -403


def test_replies_carry_only_mapped_emotes_with_local_urls(server):
    known = catalog()
    seen_known = False
    params = {"type": 1, "oid": 67829931, "mode": 2, "pagination_str": '{"offset":""}'}
    for reply in signed_get(server, MAIN, params)["data"]["replies"]:
        tokens = extract_tokens(reply["content"]["message"])
        emote = reply["content"].get("emote", {})
        assert set(emote) == {t for t in tokens if t in known}
        seen_known |= bool(emote)
        for token, info in emote.items():
            assert info["text"] == token and info["package_id"] == 1
            assert info["url"] == f"{server.url}/bfs/emote/{info['id']}.png"
    assert seen_known


def test_bracket_text_outside_the_map_stays_plain_text():
    video = load_dataset().videos[67829931]
    reply = next(r for r in video.replies.values() if "[热词系列_知识增加]" in r.message)
    content = reply_json(reply, "http://x")["content"]
    assert "[热词系列_知识增加]" in content["message"]
    assert "[热词系列_知识增加]" not in content.get("emote", {})


def test_emote_images_are_72px_pngs(server):
    doge, tile = catalog()["[doge]"], catalog()["[妙啊]"]
    assert doge.emoji and not tile.emoji
    images = []
    for emote in (doge, tile):
        response = httpx.get(f"{server.url}/bfs/emote/{emote.emote_id}.png")
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "PNG" and image.size == (72, 72)
        images.append(response.content)
    assert images[0] != images[1]
    assert httpx.get(f"{server.url}/bfs/emote/1.png").status_code == 404


def test_emote_panel_lists_the_package(server):
    body = httpx.get(server.url + "/x/emote/user/panel/web", params={"business": "reply"}).json()
    (package,) = body["data"]["packages"]
    assert package["id"] == 1 and package["text"] == "小黄脸"
    assert {e["text"] for e in package["emote"]} == set(catalog())
    assert 40 <= len(package["emote"]) <= 70


def test_dataset_derives_ids_times_and_threads_deterministically():
    dataset = load_dataset()
    assert sum(v.reply_count for v in dataset.videos.values()) == 14523
    for aid, video in dataset.videos.items():
        assert video.bvid == av2bv(aid)
        replies = sorted(video.replies.values(), key=lambda r: r.rpid)
        assert all(a.ctime <= b.ctime for a, b in pairwise(replies))
        assert all(video.pubdate < r.ctime for r in replies)
        for reply in replies:
            if reply.root:
                root = video.replies[reply.root]
                assert root.root == 0 and reply in root.children and root.ctime <= reply.ctime
    mids = {r.uname: r.mid for v in dataset.videos.values() for r in v.replies.values()}
    assert all(r.mid == mids[r.uname] for v in dataset.videos.values() for r in v.replies.values())


def test_view_popular_and_search_shapes(server):
    view = httpx.get(server.url + "/x/web-interface/view", params={"bvid": av2bv(609351579)})
    assert view.json()["data"]["aid"] == 609351579
    missing = httpx.get(server.url + "/x/web-interface/view", params={"bvid": "BV1xxxxxxxxx"})
    assert missing.json()["code"] == -404
    popular = httpx.get(server.url + "/x/web-interface/popular", params={"ps": 5}).json()["data"]
    assert len(popular["list"]) == 5 and popular["no_more"] is False
    search_params = {"search_type": "video", "keyword": "鬼畜", "page": 1}
    no_cookie = signed_get(server, "/x/web-interface/wbi/search/type", search_params)
    assert no_cookie["code"] == -412
    found = httpx.get(server.url + "/x/web-interface/wbi/search/type",
                      params=wbi.sign(search_params, *server.wbi_keys),
                      cookies={"buvid3": "x"}).json()["data"]
    assert found["numResults"] >= 2
    assert any('<em class="keyword">鬼畜</em>' in r["title"] for r in found["result"])


@pytest.mark.parametrize(
    ("kind", "status", "check"),
    [
        ("http412", 412, lambda r: "<html" in r.text),
        ("http500", 500, lambda r: True),
        ("code:-799", 200, lambda r: r.json()["code"] == -799),
        ("truncated", 200, lambda r: not r.text.rstrip().endswith("}")),
    ],
)
def test_faults_hit_the_matching_requests_only(server, kind, status, check):
    nav = server.url + "/x/web-interface/nav"
    server.inject(Fault(kind, at="/x/web-interface/nav", times=2), Fault("code:-352", at=99))
    for _ in range(2):
        response = httpx.get(nav)
        assert response.status_code == status and check(response)
    assert httpx.get(nav).json()["code"] == -101  # used up


def test_a_fault_can_target_a_request_by_index(server):
    server.inject(Fault("http429", at=1))
    statuses = [httpx.get(server.url + "/x/frontend/finger/spi").status_code for _ in range(3)]
    assert statuses == [200, 429, 200]


def test_unknown_fault_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode", at=0)


def test_reset_fault_hangs_up(server):
    server.inject(Fault("reset", at=0))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + "/x/web-interface/nav")
    assert httpx.get(server.url + "/x/web-interface/nav").json()["code"] == -101


def test_command_line_prints_the_url_and_serves():
    process = subprocess.Popen(
        [sys.executable, "-m", "emopulse.ingest.localserver", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert json.loads(httpx.get(url + "/x/web-interface/nav").text)["code"] == -101
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_html_404_and_stall_faults(server):
    nav = server.url + "/x/web-interface/nav"
    server.inject(Fault("html", at=0), Fault("http404", at=1), Fault("stall", at=2))
    html = httpx.get(nav)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert httpx.get(nav).status_code == 404
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(nav, timeout=0.1)


def test_expired_cursors_are_refused_with_400(server):
    params = {"type": 1, "oid": 609351579, "mode": 2, "pagination_str": '{"offset":""}'}
    first = signed_get(server, MAIN, params)["data"]
    offset = first["cursor"]["pagination_reply"]["next_offset"]
    params["pagination_str"] = json.dumps({"offset": offset})
    assert signed_get(server, MAIN, params)["code"] == 0
    server.expire_cursors()
    refused = signed_get(server, MAIN, params)
    assert refused["code"] == -400 and "游标" in refused["message"]


def test_new_replies_appear_first_and_grow_threads(server):
    old_count = server.dataset.videos[609351579].reply_count
    root = server.add_reply(609351579, "刚刚发的[保卫萝卜_哇]")
    child = server.add_reply(609351579, "楼中楼", root=root.rpid)
    video = server.dataset.videos[609351579]  # the server's own copy now
    assert video.reply_count == old_count + 2 and root.ctime > max(
        r.ctime for r in video.replies.values() if r.rpid not in (root.rpid, child.rpid))
    params = {"type": 1, "oid": 609351579, "mode": 2, "pagination_str": '{"offset":""}'}
    first = signed_get(server, MAIN, params)["data"]["replies"][0]
    assert first["rpid"] == root.rpid and first["rcount"] == 1
    emote = first["content"]["emote"]["[保卫萝卜_哇]"]
    assert emote["package_id"] == 2 and emote["url"].endswith("/bfs/emote/2001.png")
    assert load_dataset().videos[609351579].reply_count == old_count  # others see no change


def test_emote_packages_by_id_and_watchers(server):
    seen, answered = [], threading.Event()

    def watch(index, request, phase):
        seen.append((index, request.path, phase))
        if phase == "answered":
            answered.set()

    server.watch(watch)
    body = httpx.get(server.url + "/x/emote/package",
                     params={"business": "reply", "ids": "2,1,99"}).json()
    assert [p["text"] for p in body["data"]["packages"]] == ["保卫萝卜", "小黄脸"]
    assert answered.wait(timeout=10)  # told after the answer went out: maybe after we read it
    assert seen == [(0, "/x/emote/package", "received"), (0, "/x/emote/package", "answered")]
