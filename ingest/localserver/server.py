"""A Bilibili-compatible HTTP server over the bundled comments, with fault injection.

It speaks the endpoints `ingest` uses with Bilibili's JSON shapes, checks WBI signatures on
`/wbi/` endpoints like the real API (code -403 when wrong) and wants a `buvid3` cookie for search.
Tests can inject faults (`inject`), add comments as if users posted them (`add_reply`), make the
cursors it handed out stale (`expire_cursors`), and watch every request (`watch`). With `replay`
the sample is a live stream: comments appear as a clock passes their time (`replay.LiveFeed`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .. import wbi
from .dataset import Dataset, Reply, SampleVideo, load_dataset, stable_hash
from .emotes import PACKAGE_ID, emote_png
from .replay import LiveFeed, Replay
from .shapes import member_package_json, package_json, reply_json, video_json

__all__ = [
    "FAULT_KINDS", "Fault", "LocalBilibili", "SeenRequest", "Watcher", "serve_local_bilibili",
]

PAGE_SIZE = 20
FAULT_KINDS = (
    "http412", "http429", "http500", "http404", "truncated", "html", "reset", "stall", "softblock",
    "badreply", "code:<n>",
)
STALL_S = 2.0  # how long a "stall" fault keeps the client waiting before hanging up
_BLOCKED_PAGE = (
    "<!DOCTYPE html><html><head><title>412 Precondition Failed</title></head><body>"
    "<h1>由于触发哔哩哔哩安全风控策略，该次访问请求被拒绝。</h1>"
    "<p>The request was rejected because of the bilibili security control policy.</p>"
    "</body></html>"
)
_EMOTE_IMAGE = re.compile(r"/bfs/emote/(\d+)\.png")


@dataclass(slots=True)
class Fault:
    """Answer matching requests badly: `kind` is one of `FAULT_KINDS` (e.g. "code:-352").

    "truncated" sends half the body, "html" a 200 HTML page instead of JSON (or of an image),
    "reset" hangs up without an answer, "stall" hangs up after `STALL_S` seconds (a timeout for
    any client that waits less). "softblock" answers a comment listing as Bilibili answers
    logged-out or stale-cookie clients under risk control: code 0, `is_end: false`, no
    `pagination_reply`, no replies. "badreply" breaks the first reply of the page: its emotes lose
    `package_id` (a reply without emotes loses `content`).

    `at` is the 0-based index of a request to the server, or an endpoint path; the fault hits
    the next `times` matching requests.
    """

    kind: str
    at: int | str
    times: int = 1

    def __post_init__(self) -> None:
        known = self.kind in FAULT_KINDS[:-1] or re.fullmatch(r"code:-?\d+", self.kind)
        if not known:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(FAULT_KINDS)}")


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """A request as the server received it (for tests to inspect)."""

    path: str
    params: dict[str, str]
    cookies: dict[str, str]


# Called with (request index, request, phase): phase "received" before the answer is made,
# "answered" once it is sent. Runs on the server's thread for that request.
Watcher = Callable[[int, SeenRequest, str], None]


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


def _api(code: int = 0, message: str = "0", data: Any = None) -> _Answer:
    payload = {"code": code, "message": message, "ttl": 1, "data": data}
    return _Answer(200, json.dumps(payload, ensure_ascii=False).encode())


class _BadParam(Exception):
    """A missing or malformed query parameter: answered with code -400."""


def _int(params: Mapping[str, str], name: str, default: int | None = None) -> int:
    try:
        return int(params[name]) if name in params or default is None else default
    except (KeyError, ValueError) as exc:
        raise _BadParam(name) from exc


class LocalBilibili:
    """The server; start it with `serve_local_bilibili`. `url` is its base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, faults: Iterable[Fault] = (),
                 replay: Replay | None = None, clock: Callable[[], float] = time.monotonic):
        self.feed = LiveFeed(load_dataset(), replay, clock=clock) if replay is not None else None
        # videos copied on first change (a replay's are its own already)
        self.dataset = self.feed.dataset if self.feed else Dataset(dict(load_dataset().videos))
        self.faults = list(faults)
        self.requests: list[SeenRequest] = []
        self.watchers: list[Watcher] = []
        self._lock = threading.Lock()
        self._own: set[int] = set(self.dataset.videos) if self.feed else set()
        self._key_generation = 0
        self._cursor_generation = 0
        self._httpd = _QuietServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread: threading.Thread | None = None
        self._routes: dict[str, Callable[[dict[str, str], dict[str, str]], _Answer]] = {
            "/x/web-interface/nav": self._nav,
            "/x/frontend/finger/spi": self._spi,
            "/x/web-interface/popular": self._popular,
            "/x/web-interface/wbi/search/type": self._search,
            "/x/web-interface/view": self._view,
            "/x/v2/reply/wbi/main": self._main,
            "/x/v2/reply/reply": self._reply,
            "/x/emote/user/panel/web": self._emote_panel,
            "/x/emote/package": self._emote_package,
        }

    def __repr__(self) -> str:
        return f"LocalBilibili(url={self.url!r})"

    # -- lifecycle and test hooks -------------------------------------------------------------

    def start(self) -> LocalBilibili:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in this thread (the command line); `start` serves in a background thread."""
        self._httpd.serve_forever()

    @property
    def wbi_keys(self) -> tuple[str, str]:
        """The current `(img_key, sub_key)`; the real ones change daily."""
        seed = f"emopulse-local-{self._key_generation}"
        return (hashlib.md5(f"img:{seed}".encode()).hexdigest(),
                hashlib.md5(f"sub:{seed}".encode()).hexdigest())

    def rotate_wbi_keys(self) -> None:
        """New WBI keys: requests signed with the old ones now get -403."""
        with self._lock:
            self._key_generation += 1

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def watch(self, watcher: Watcher) -> None:
        """Call `watcher` for every request: when it arrives and when its answer is sent."""
        self.watchers.append(watcher)

    def expire_cursors(self) -> None:
        """Refuse every cursor handed out so far (code -400), as the API does with old ones."""
        with self._lock:
            self._cursor_generation += 1

    def add_reply(
        self, aid: int, message: str, *, root: int = 0, uname: str = "新来的", like: int = 0,
        older_than: int | None = None,
    ) -> Reply:
        """A new comment on video `aid` (a sub-reply of `root` when given), newer than all.

        With `older_than` (a root's rpid) the new root comment shows up late, as one released by
        moderation does: in the time order just after that root, one second older than it.
        """
        with self._lock:
            if aid not in self._own:  # copy-on-write: the bundled dataset is shared
                self.dataset.videos[aid] = copy.deepcopy(self.dataset.videos[aid])
                self._own.add(aid)
            video = self.dataset.videos[aid]
            newest = max(video.replies.values(), key=lambda r: r.rpid)
            ctime = newest.ctime + 60
            if older_than is not None:
                ctime = video.replies[older_than].ctime - 1
            reply = Reply(
                rpid=newest.rpid + 1, aid=aid, mid=stable_hash(f"mid:{uname}") % 10**9 + 1,
                uname=uname, message=message, like=like, ctime=ctime,
                root=root, parent=root, location="北京",
            )
            video.replies[reply.rpid] = reply
            if root:
                video.replies[root].children.append(reply)
            elif older_than is not None:
                where = next(i for i, r in enumerate(video.roots) if r.rpid == older_than)
                video.roots.insert(where + 1, reply)
            else:
                video.roots.insert(0, reply)
            return reply

    def delete_replies(self, aid: int, count: int) -> list[Reply]:
        """Remove the `count` oldest root comments of video `aid` (with their threads), as
        moderation or their authors do; the video's reply count drops accordingly."""
        with self._lock:
            if aid not in self._own:
                self.dataset.videos[aid] = copy.deepcopy(self.dataset.videos[aid])
                self._own.add(aid)
            video = self.dataset.videos[aid]
            gone = [r for r in video.roots if r is not video.pinned][-count:]
            for reply in gone:
                video.roots.remove(reply)
                for child in [reply, *reply.children]:
                    video.replies.pop(child.rpid, None)
            return gone

    # -- request handling ---------------------------------------------------------------------

    def _admit(self, seen: SeenRequest) -> tuple[int, Fault | None]:
        """Record the request; its index, and the first fault that matches it (taken)."""
        with self._lock:
            index = len(self.requests)
            self.requests.append(seen)
            for fault in self.faults:
                if fault.times > 0 and fault.at in (index, seen.path):
                    fault.times -= 1
                    return index, fault
        return index, None

    def _answer(self, path: str, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        """The normal answer to a GET, faults aside."""
        if self.feed is not None:
            self.feed.advance()
        if match := _EMOTE_IMAGE.fullmatch(path):
            png = emote_png(int(match.group(1)))
            if png is None:
                return _Answer(404, b"not found", "text/plain")
            return _Answer(200, png, "image/png")
        route = self._routes.get(path)
        if route is None:
            return _Answer(404, json.dumps({"code": -404, "message": "啥都木有"}).encode())
        if "/wbi/" in path and not wbi.verify(params, *self.wbi_keys):
            return _api(-403, "访问权限不足")
        try:
            return route(params, cookies)
        except _BadParam as exc:
            return _api(-400, f"请求错误: {exc}")

    def _nav(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        img, sub = self.wbi_keys
        wbi_img = {"img_url": f"{self.url}/bfs/wbi/{img}.png",
                   "sub_url": f"{self.url}/bfs/wbi/{sub}.png"}
        return _api(-101, "账号未登录", {"isLogin": False, "wbi_img": wbi_img})

    def _spi(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        return _api(0, "ok", {"b_3": f"{uuid.uuid4()}infoc".upper(), "b_4": str(uuid.uuid4())})

    def _popular(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        pn, ps = _int(params, "pn", 1), min(max(_int(params, "ps", PAGE_SIZE), 1), 50)
        videos = sorted(self.dataset.videos.values(), key=lambda v: -v.reply_count)
        page = videos[(pn - 1) * ps : pn * ps]
        return _api(data={"list": [video_json(v, self.url) for v in page],
                          "no_more": pn * ps >= len(videos)})

    def _search(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        if "buvid3" not in cookies:
            return _api(-412, "请求被拦截")
        keyword, page = params.get("keyword", ""), _int(params, "page", 1)
        if not keyword or params.get("search_type") != "video":
            raise _BadParam("keyword/search_type")
        found = [v for v in self.dataset.videos.values() if _matches(v, keyword)]
        results = [_search_result(v, keyword, self.url) for v in found]
        sort_key = {"pubdate": "pubdate", "click": "play"}.get(params.get("order", ""), "review")
        results.sort(key=lambda r: -r[sort_key])
        return _api(data={
            "seid": str(stable_hash(f"seid:{keyword}")), "page": page, "pagesize": PAGE_SIZE,
            "numResults": len(results), "numPages": -(-len(results) // PAGE_SIZE),
            "result": results[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        })

    def _view(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        if "bvid" in params:
            video = self.dataset.by_bvid(params["bvid"])
        else:
            video = self.dataset.videos.get(_int(params, "aid"))
        if video is None:
            return _api(-404, "啥都木有")
        return _api(data=video_json(video, self.url))

    def _video(self, params: dict[str, str]) -> SampleVideo | _Answer:
        if _int(params, "type") != 1:
            return _api(12009, "评论主体的type不合法")
        video = self.dataset.videos.get(_int(params, "oid"))
        return _api(-404, "啥都木有") if video is None else video

    def _main(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        video = self._video(params)
        if isinstance(video, _Answer):
            return video
        mode = _int(params, "mode", 3)
        try:
            offset = json.loads(params.get("pagination_str") or '{"offset":""}')["offset"]
            state = json.loads(offset) if offset else {}
        except (ValueError, KeyError, TypeError) as exc:
            raise _BadParam("pagination_str") from exc
        session = str(self._cursor_generation)
        if offset and state.get("session_id") != session:
            return _api(-400, "请求错误: 游标已失效")
        page, next_state, is_end = _root_page(video, mode, state)
        next_state["session_id"] = session
        is_begin = not offset
        pinned = [reply_json(video.pinned, self.url)] if is_begin and video.pinned else None
        return _api(data={
            "cursor": {
                "all_count": video.reply_count, "is_begin": is_begin, "prev": 0,
                "next": 0 if is_end else 1, "is_end": is_end, "mode": mode, "mode_text": "",
                "name": "最新评论" if mode == 2 else "热门评论", "session_id": "",
                "pagination_reply": {} if is_end else {"next_offset": json.dumps(next_state)},
            },
            "replies": [reply_json(r, self.url) for r in page] or None,
            "top_replies": pinned,
            "upper": {"mid": video.owner_mid, "top": None},
        })

    def _reply(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        video = self._video(params)
        if isinstance(video, _Answer):
            return video
        root = video.replies.get(_int(params, "root"))
        if root is None or root.root:
            return _api(-404, "啥都木有")
        pn, ps = _int(params, "pn", 1), min(max(_int(params, "ps", PAGE_SIZE), 1), 49)
        page = root.children[(pn - 1) * ps : pn * ps]
        return _api(data={
            "page": {"count": len(root.children), "num": pn, "size": ps},
            "replies": [reply_json(r, self.url) for r in page] or None,
            "root": reply_json(root, self.url),
            "upper": {"mid": video.owner_mid},
        })

    def _emote_panel(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        if params.get("business") != "reply":
            raise _BadParam("business")
        return _api(data={"packages": [package_json(self.url)]})

    def _emote_package(self, params: dict[str, str], cookies: dict[str, str]) -> _Answer:
        """Packages by id, the panel's and the one only met in comments (`MEMBER_PACKAGE_ID`)."""
        if params.get("business") != "reply":
            raise _BadParam("business")
        try:
            ids = [int(i) for i in params.get("ids", "").split(",") if i.strip()]
        except ValueError as exc:
            raise _BadParam("ids") from exc
        known = {PACKAGE_ID: package_json(self.url)}
        member = member_package_json(self.url)
        known[member["id"]] = member
        return _api(data={"packages": [known[i] for i in ids if i in known]})


def _root_page(
    video: SampleVideo, mode: int, state: dict[str, Any]
) -> tuple[list[Reply], dict[str, Any], bool]:
    """One page of root replies after the cursor `state`, the next cursor, and whether it ends."""
    if mode == 2:  # time order, newest first; the cursor is the last (ctime, rpid) sent
        data = state.get("Data", {})
        after = data.get("cursor")
        if after is None:
            roots = video.roots
        elif "ctime" in data:
            roots = [r for r in video.roots if (r.ctime, r.rpid) < (data["ctime"], after)]
        else:  # a cursor of an older server version
            roots = [r for r in video.roots if r.rpid < after]
        page = roots[:PAGE_SIZE]
        last = page[-1] if page else None
        cursor = {"cursor": last.rpid if last else 0, "ctime": last.ctime if last else 0}
        return page, {"type": 3, "direction": 1, "Data": cursor}, len(roots) <= PAGE_SIZE
    pn = int(state.get("data", {}).get("pn", 1))  # hot: by likes; the cursor is a page number
    roots = sorted(video.roots, key=lambda r: (-r.like, -r.rpid))
    page = roots[(pn - 1) * PAGE_SIZE : pn * PAGE_SIZE]
    return page, {"type": 1, "direction": 1, "data": {"pn": pn + 1}}, len(roots) <= pn * PAGE_SIZE


def _matches(video: SampleVideo, keyword: str) -> bool:
    needle = keyword.lower()
    return needle in video.title.lower() or any(
        needle in r.message.lower() for r in video.replies.values()
    )


def _search_result(video: SampleVideo, keyword: str, base: str) -> dict[str, Any]:
    info = video_json(video, base)
    marked = re.sub(re.escape(keyword), lambda m: f'<em class="keyword">{m.group(0)}</em>',
                    video.title, flags=re.IGNORECASE)
    seconds = info["duration"]
    return {
        "type": "video", "id": video.aid, "aid": video.aid, "bvid": video.bvid,
        "author": video.owner_name, "mid": video.owner_mid, "typename": info["tname"],
        "arcurl": f"http://www.bilibili.com/video/av{video.aid}", "title": marked,
        "description": info["desc"], "pic": info["pic"], "play": info["stat"]["view"],
        "video_review": info["stat"]["danmaku"], "favorites": info["stat"]["favorite"],
        "tag": "样本", "review": video.reply_count, "pubdate": video.pubdate,
        "senddate": video.pubdate, "duration": f"{seconds // 60}:{seconds % 60}",
    }


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (or is killed) mid-answer is no news: no traceback on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "emopulse-local-bilibili"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def do_GET(self) -> None:
        app: LocalBilibili = self.server.app  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        jar = SimpleCookie(self.headers.get("Cookie", ""))
        seen = SeenRequest(url.path, params, {k: m.value for k, m in jar.items()})
        index, fault = app._admit(seen)
        for watcher in list(app.watchers):
            watcher(index, seen, "received")
        if fault is not None and fault.kind in ("reset", "stall"):
            if fault.kind == "stall":
                time.sleep(STALL_S)  # a server that never answers in time
            self.close_connection = True  # hang up without an answer
            return
        answer = app._answer(seen.path, seen.params, seen.cookies)
        if fault is not None:
            answer = _faulty(fault.kind, answer)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)
        self.wfile.flush()
        for watcher in list(app.watchers):
            watcher(index, seen, "answered")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo do not want a line per request on stderr."""


def _faulty(kind: str, answer: _Answer) -> _Answer:
    if kind in ("softblock", "badreply"):
        return _json_fault(kind, answer)
    if kind == "http412":
        return _Answer(412, _BLOCKED_PAGE.encode(), "text/html; charset=utf-8")
    if kind in ("http429", "http500", "http404"):
        return _Answer(int(kind[4:]), b"", "text/plain")
    if kind == "truncated":
        return _Answer(answer.status, answer.body[: len(answer.body) // 2], answer.content_type)
    if kind == "html":
        page = "<html><body>网络繁忙</body></html>".encode()
        return _Answer(200, page, "text/html; charset=utf-8")
    return _api(int(kind.removeprefix("code:")), "本地服务器注入的错误")


def _json_fault(kind: str, answer: _Answer) -> _Answer:
    """A well-formed JSON answer that says less (softblock) or holds a broken reply (badreply)."""
    payload = json.loads(answer.body)
    data = payload.get("data")
    if not isinstance(data, dict):
        return answer  # an error answer stays as it is
    if kind == "softblock":
        cursor = data.get("cursor") or {}
        cursor.update({"is_end": False, "pagination_reply": None, "next": 0})
        data.update({"cursor": cursor, "replies": None, "top_replies": None})
    else:
        replies = data.get("replies") or []
        with_emotes = [r for r in replies if (r.get("content") or {}).get("emote")]
        if with_emotes:
            for info in with_emotes[0]["content"]["emote"].values():
                info.pop("package_id", None)
        elif replies:
            replies[0].pop("content", None)
    return _Answer(answer.status, json.dumps(payload, ensure_ascii=False).encode(),
                   answer.content_type)


@contextmanager
def serve_local_bilibili(
    host: str = "127.0.0.1", port: int = 0, *, faults: Iterable[Fault] = (), replay: Replay | None = None
) -> Iterator[LocalBilibili]:
    """Run the server in a background thread for the `with` block (port 0: any free port)."""
    server = LocalBilibili(host, port, faults=faults, replay=replay).start()
    try:
        yield server
    finally:
        server.stop()
