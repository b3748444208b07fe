"""A polite Bilibili web API client: throttled, WBI-signing, retrying, raising typed errors."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from . import wbi
from .errors import (
    Blocked,
    CrawlerError,
    ParseError,
    PermissionDenied,
    RiskControl,
    TransportError,
    api_error,
)
from .records import RawPage

__all__ = ["REFERER", "USER_AGENT", "BilibiliClient"]

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
REFERER = "https://www.bilibili.com/"
NAV = "/x/web-interface/nav"
SPI = "/x/frontend/finger/spi"


class BilibiliClient:
    """One request at a time, `throttle_s` plus up to `jitter_s` apart; use as a context manager.

    `get_json` retries transient errors (`backoff_s * 2**attempt` plus jitter, at most
    `max_retries` times) and raises the typed errors of `errors.py` otherwise.
    """

    def __init__(
        self,
        api_base: str,
        *,
        sessdata: str | None = None,
        throttle_s: float = 0.8,
        jitter_s: float = 0.4,
        backoff_s: float = 5.0,
        max_retries: int = 3,
        timeout_s: float = 20.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.throttle_s, self.jitter_s = throttle_s, jitter_s
        self.backoff_s, self.max_retries = backoff_s, max_retries
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.api_base,
            headers={"User-Agent": USER_AGENT, "Referer": REFERER},
            timeout=timeout_s,
            transport=transport,
        )
        self._logged_in = sessdata is not None
        if sessdata is not None:
            self._http.cookies.set("SESSDATA", sessdata)
        self._lock = threading.Lock()
        self._last_request = float("-inf")
        self._wbi_keys: tuple[str, str] | None = None
        self._has_buvid = False

    def __repr__(self) -> str:
        return f"BilibiliClient(api_base={self.api_base!r}, logged_in={self._logged_in})"

    def __enter__(self) -> BilibiliClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get_json(
        self, endpoint: str, params: Mapping[str, Any] | None = None, *, signed: bool = False
    ) -> tuple[dict[str, Any], RawPage]:
        """The parsed JSON (code 0) of `GET endpoint` and the `RawPage` to land.

        Errors carry the `RawPage` that caused them as `.raw` (None when no answer came).
        """
        params = dict(params or {})
        attempt, refreshed = 0, False
        while True:
            try:
                self._ensure_buvid()
                sent = wbi.sign(params, *self._ensure_wbi_keys()) if signed else params
                return self._decode(endpoint, params, self._get(endpoint, sent))
            except PermissionDenied:
                if not signed or refreshed:
                    raise
                self._wbi_keys, refreshed = None, True  # maybe a stale key: refresh once, retry
            except CrawlerError as exc:
                if not exc.transient or attempt >= self.max_retries:
                    raise
                if isinstance(exc, RiskControl):
                    self._wbi_keys, self._has_buvid = None, False
                self._sleep(self.backoff_s * 2**attempt + random.uniform(0, self.backoff_s))
                attempt += 1

    def _ensure_buvid(self) -> None:
        """Fetch the `buvid3`/`buvid4` cookies once (and again after risk control)."""
        if self._has_buvid:
            return
        payload, raw = self._decode(SPI, {}, self._get(SPI, {}))
        try:
            buvid3, buvid4 = str(payload["data"]["b_3"]), str(payload["data"]["b_4"])
        except (KeyError, TypeError) as exc:
            raise ParseError(f"{SPI}: no b_3/b_4 in the answer", raw=raw) from exc
        self._http.cookies.set("buvid3", buvid3)
        self._http.cookies.set("buvid4", buvid4)
        self._has_buvid = True

    def _ensure_wbi_keys(self) -> tuple[str, str]:
        """The cached WBI keys, fetched from `nav` (which answers -101 logged out) when absent."""
        if self._wbi_keys is None:
            payload, raw = self._decode(NAV, {}, self._get(NAV, {}), allow=(0, -101))
            try:
                self._wbi_keys = wbi.keys_from_nav(payload["data"])
            except (KeyError, TypeError, AttributeError) as exc:
                raise ParseError(f"{NAV}: no wbi_img in the answer", raw=raw) from exc
        return self._wbi_keys

    def _get(self, endpoint: str, params: Mapping[str, Any]) -> tuple[httpx.Response, datetime]:
        """One throttled GET; transport failures become `TransportError`."""
        with self._lock:
            wait = self.throttle_s + random.uniform(0, self.jitter_s)
            wait -= time.monotonic() - self._last_request
            if wait > 0:
                self._sleep(wait)
            try:
                return self._http.get(endpoint, params=params), datetime.now(UTC)
            except httpx.TransportError as exc:
                raise TransportError(f"{endpoint}: {type(exc).__name__}: {exc}") from exc
            finally:
                self._last_request = time.monotonic()

    def _decode(
        self,
        endpoint: str,
        params: Mapping[str, Any],
        answer: tuple[httpx.Response, datetime],
        *,
        allow: tuple[int, ...] = (0,),
    ) -> tuple[dict[str, Any], RawPage]:
        """Check status, JSON and `code`; every error carries the `RawPage`."""
        response, fetched_at = answer
        status, body = response.status_code, response.text
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        code = payload.get("code") if isinstance(payload, dict) else None
        code = code if isinstance(code, int) else None
        raw = RawPage(endpoint, dict(params), fetched_at, status, code, body)
        if status == 412 and code is None:
            raise Blocked(-412, "HTTP 412 (request blocked)", endpoint, raw=raw)
        if status == 429 or status >= 500:
            raise TransportError(f"{endpoint}: HTTP {status}", http_status=status, raw=raw)
        if code is None:
            what = "not JSON" if payload is None else "JSON without an integer code"
            raise ParseError(f"{endpoint}: HTTP {status}, body is {what}", raw=raw)
        if code not in allow:
            raise api_error(code, str(payload.get("message", "")), endpoint, raw=raw)
        return payload, raw
