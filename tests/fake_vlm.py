"""A fake OpenAI-compatible vision-language endpoint: a real HTTP server on 127.0.0.1 (a thread,
port 0) speaking chat-completions JSON. `script` answers the next requests in order; after it,
`respond(request)` answers (by default a caption naming the image's sha256). Every request is
recorded: path, headers, JSON body, and the image decoded from its data URL."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # dict/list → JSON; bytes → sent as is
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    mime: str
    image: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()


def caption_answer(text: Any) -> Answer:
    return Answer(200, {"id": "x", "object": "chat.completion",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


def default_caption(request: Request) -> str:
    return f"an image whose sha256 starts {request.sha256[:8]}"


class FakeVLM:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: deque[Answer] = deque()
        self.respond: Callable[[Request], Answer] = lambda request: caption_answer(default_caption(request))
        self.base_url = ""
        self._lock = threading.Lock()

    def answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else self.respond(request)


def _parse(path: str, headers: dict[str, str], raw: bytes) -> Request:
    body = json.loads(raw)
    url = body["messages"][0]["content"][1]["image_url"]["url"]
    head, data = url.split(",", 1)
    mime = head.removeprefix("data:").removesuffix(";base64")
    return Request(path, headers, body, mime, base64.b64decode(data))


@contextmanager
def serve_fake_vlm() -> Iterator[FakeVLM]:
    fake = FakeVLM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = fake.answer(_parse(self.path, {k.lower(): v for k, v in self.headers.items()}, raw))
            if answer.drop:
                self.close_connection = True
                return
            body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
