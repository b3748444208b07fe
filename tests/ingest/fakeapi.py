"""A scripted Bilibili API for httpx.MockTransport: nav and spi answer, the rest is scripted."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

IMG, SUB = "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45"
NAV, SPI = "/x/web-interface/nav", "/x/frontend/finger/spi"


def api(code: int = 0, data: object = None, message: str = "0") -> httpx.Response:
    return httpx.Response(200, json={"code": code, "message": message, "ttl": 1, "data": data})


class FakeApi:
    """Each non-nav/spi request takes the next scripted answer (a Response or an exception)."""

    def __init__(self, script: Iterable[httpx.Response | Exception]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == NAV:
            return api(-101, {"isLogin": False, "wbi_img": {
                "img_url": f"https://i0.hdslb.com/bfs/wbi/{IMG}.png",
                "sub_url": f"https://i0.hdslb.com/bfs/wbi/{SUB}.png"}}, "账号未登录")
        if request.url.path == SPI:
            return api(0, {"b_3": "B3-INFOC", "b_4": "B4"})
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def count(self, path: str) -> int:
        return sum(r.url.path == path for r in self.requests)
