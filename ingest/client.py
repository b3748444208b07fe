"""A polite Bilibili web API client: throttled, WBI-signing, retrying, raising typed errors."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from . import wbi
from .errors import (
    ApiError,
    Blocked,
    CircuitOpen,
    CrawlerError,
    ImageRejected,
    ParseError,
    PermissionDenied,
    RateLimited,
    RiskControl,
    TransportError,
    UnreadableBody,
    api_error,
)
from .pseudonym import Pseudonymiser
from .records import RawPage

__all__ = ["REFERER", "USER_AGENT", "BilibiliClient", "Download", "ErrorHook"]

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
REFERER = "https://www.bilibili.com/"
NAV = "/x/web-interface/nav"
SPI = "/x/frontend/finger/spi"

# Called for every failed attempt, before the retry or the raise: (error, attempt, retrying).
ErrorHook = Callable[[CrawlerError, int, bool], None]
# Checks a decoded answer (code 0) before it is returned; raises a `CrawlerError` (e.g.
# `SoftBlocked`) to have it treated like any other failed attempt.
AnswerCheck = Callable[[dict[str, Any], RawPage], None]


@dataclass(frozen=True, slots=True)
class Download:
    """A downloaded file: its bytes and the content type the server declared."""

    url: str
    content_type: str
    data: bytes


class BilibiliClient:
    """`throttle_s` plus up to `jitter_s` between requests; use as a context manager.

    The throttle is global: however many threads share the client, request starts are spaced
    by it (and with one thread, each pause counts from the end of the previous request).
    `get_json` retries transient errors (`backoff_s * 2**attempt` plus jitter, at most
    `max_retries` times) and raises the typed errors of `errors.py` otherwise; `on_error` hears
    of every failed attempt. A backoff pauses the whole client: no thread starts a request
    before it ends. `breaker_streak` risk-control answers in a row from one endpoint (-352, -799,
    -509, soft blocks; a good answer of that endpoint resets the count), across every caller,
    raise `CircuitOpen`, a `Blocked`: the caller cools the source down as after -412. With a `pseudonymiser`, commenters are renamed in every
    answer before it is parsed or returned as a `RawPage`.
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
        breaker_streak: int | None = None,
        pseudonymiser: Pseudonymiser | None = None,
        on_error: ErrorHook | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.throttle_s, self.jitter_s = throttle_s, jitter_s
        self.backoff_s, self.max_retries = backoff_s, max_retries
        self.pseudonymiser = pseudonymiser
        self.on_error = on_error
        self._sleep = sleep
        headers = {"User-Agent": USER_AGENT, "Referer": REFERER}
        self._http = httpx.Client(
            base_url=self.api_base, headers=headers, timeout=timeout_s, transport=transport
        )
        # Images come from a CDN host: no cookies go there.
        self._cdn = httpx.Client(headers=headers, timeout=timeout_s, transport=transport)
        self._logged_in = sessdata is not None
        if sessdata is not None:
            self._http.cookies.set("SESSDATA", sessdata)
        self._throttle = threading.Lock()
        self._tokens = threading.Lock()
        self._last_request = float("-inf")
        self._paused_until = float("-inf")  # a backoff holds every thread until then,
        self._paused_by: int | None = None  # ...except the one backing off, which sleeps it
        self.breaker_streak = breaker_streak
        self._streaks: dict[str, int] = {}  # risk-control answers in a row, per endpoint
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
        self._cdn.close()

    # -- JSON API -----------------------------------------------------------------------------

    def get_json(
        self, endpoint: str, params: Mapping[str, Any] | None = None, *, signed: bool = False,
        check: AnswerCheck | None = None,
    ) -> tuple[dict[str, Any], RawPage]:
        """The parsed JSON (code 0) of `GET endpoint` and the `RawPage` to land.

        `check` may refuse a decoded answer by raising (a transient error is retried).
        Errors carry the `RawPage` that caused them as `.raw` (None when no answer came).
        """
        params = dict(params or {})
        attempt, refreshed = 0, False
        while True:
            try:
                self._ensure_buvid()
                sent = wbi.sign(params, *self._ensure_wbi_keys()) if signed else params
                payload, raw = self._decode(endpoint, params, self._get(endpoint, sent))
                if check is not None:
                    check(payload, raw)
                self._streaks.pop(endpoint, None)
                return payload, raw
            except PermissionDenied as exc:
                retry = signed and not refreshed
                self._report(exc, attempt, retry)
                if not retry:
                    raise
                self._wbi_keys, refreshed = None, True  # maybe a stale key: refresh once, retry
            except CrawlerError as exc:
                self._count_risk(endpoint, exc)
                retry = exc.transient and attempt < self.max_retries
                self._report(exc, attempt, retry)
                if not retry:
                    raise
                if isinstance(exc, RiskControl):
                    self._wbi_keys, self._has_buvid = None, False
                self._back_off(attempt)
                attempt += 1

    def _count_risk(self, endpoint: str, exc: CrawlerError) -> None:
        """Count an endpoint's risk-control answers in a row (a good answer of that endpoint
        resets it: a good `view` says nothing of the comment listing); trip the breaker at
        `breaker_streak`."""
        if not isinstance(exc, RiskControl | RateLimited):
            return
        with self._throttle:
            streak = self._streaks[endpoint] = self._streaks.get(endpoint, 0) + 1
        if self.breaker_streak is not None and streak >= self.breaker_streak:
            assert isinstance(exc, ApiError)
            tripped = CircuitOpen(streak, exc)
            self._report(tripped, 0, False)
            raise tripped from exc

    def _back_off(self, attempt: int) -> None:
        """Pause the whole client (every thread) for `backoff_s * 2**attempt` plus jitter."""
        delay = self.backoff_s * 2**attempt + random.uniform(0, self.backoff_s)
        with self._throttle:
            until = time.monotonic() + delay
            if until > self._paused_until:
                self._paused_until, self._paused_by = until, threading.get_ident()
        self._sleep(delay)

    def _report(self, exc: CrawlerError, attempt: int, retrying: bool) -> None:
        if self.on_error is not None:
            self.on_error(exc, attempt, retrying)

    def _ensure_buvid(self) -> None:
        """Fetch the `buvid3`/`buvid4` cookies once (and again after risk control)."""
        with self._tokens:
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
        with self._tokens:
            keys = self._wbi_keys
            if keys is None:
                payload, raw = self._decode(NAV, {}, self._get(NAV, {}), allow=(0, -101))
                try:
                    keys = self._wbi_keys = wbi.keys_from_nav(payload["data"])
                except (KeyError, TypeError, AttributeError) as exc:
                    raise ParseError(f"{NAV}: no wbi_img in the answer", raw=raw) from exc
            return keys

    def _wait_turn(self) -> None:
        """Sleep until this request may start: starts are `throttle_s` (+ jitter) apart, and
        none starts while a backoff pauses the client."""
        with self._throttle:
            wait = self.throttle_s + random.uniform(0, self.jitter_s)
            now = time.monotonic()
            wait -= now - self._last_request
            if self._paused_by != threading.get_ident():
                wait = max(wait, self._paused_until - now)
            if wait > 0:
                self._sleep(wait)
            self._last_request = time.monotonic()

    def _done(self) -> None:
        with self._throttle:
            self._last_request = max(self._last_request, time.monotonic())

    def _get(self, endpoint: str, params: Mapping[str, Any]) -> tuple[httpx.Response, datetime]:
        """One throttled GET; transport failures become `TransportError`."""
        self._wait_turn()
        try:
            return self._http.get(endpoint, params=params), datetime.now(UTC)
        except httpx.TransportError as exc:
            message = f"{endpoint}: {type(exc).__name__}: {exc}"
            raise TransportError(message, endpoint=endpoint) from exc
        finally:
            self._done()

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
        if self.pseudonymiser is not None:
            if payload is None:
                body = self.pseudonymiser.scrub_text(body)
            else:
                payload = self.pseudonymiser.scrub(payload)
                body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        code = payload.get("code") if isinstance(payload, dict) else None
        code = code if isinstance(code, int) else None
        raw = RawPage(endpoint, dict(params), fetched_at, status, code, body)
        if status == 412 and code is None:
            raise Blocked(-412, "HTTP 412 (request blocked)", endpoint, raw=raw)
        if status == 429 or status >= 500:
            raise TransportError(f"{endpoint}: HTTP {status}", http_status=status, raw=raw)
        if payload is None:
            raise UnreadableBody(f"{endpoint}: HTTP {status}, body is not JSON", raw=raw)
        if code is None:
            raise ParseError(f"{endpoint}: HTTP {status}, JSON without an integer code", raw=raw)
        if code not in allow:
            raise api_error(code, str(payload.get("message", "")), endpoint, raw=raw)
        return payload, raw

    # -- files (emote images) -----------------------------------------------------------------

    def download(
        self, url: str, *, max_bytes: int, content_types: tuple[str, ...] = ("image/",)
    ) -> Download:
        """GET a file from an absolute http(s) URL, throttled and retried like the API.

        Refuses (`ImageRejected`, not retried) a content type outside `content_types` (prefixes)
        and a body over `max_bytes`, stopping the transfer as soon as it is too long.
        """
        if not url.startswith(("http://", "https://")):
            raise ImageRejected(f"not an http(s) URL: {url!r}", endpoint=url)
        attempt = 0
        while True:
            try:
                return self._download_once(url, max_bytes, content_types)
            except CrawlerError as exc:
                retry = exc.transient and attempt < self.max_retries
                self._report(exc, attempt, retry)
                if not retry:
                    raise
                self._back_off(attempt)
                attempt += 1

    def _download_once(self, url: str, max_bytes: int, content_types: tuple[str, ...]) -> Download:
        self._wait_turn()
        try:
            with self._cdn.stream("GET", url) as response:
                status = response.status_code
                if status == 429 or status >= 500:
                    message = f"{url}: HTTP {status}"
                    raise TransportError(message, http_status=status, endpoint=url)
                if status != 200:
                    raise ImageRejected(f"{url}: HTTP {status}", endpoint=url)
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if not kind.startswith(content_types):
                    raise ImageRejected(f"{url}: content type {kind or 'missing'!r} refused",
                                        endpoint=url)
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    message = f"{url}: {declared} bytes is over the limit of {max_bytes}"
                    raise ImageRejected(message, endpoint=url)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ImageRejected(f"{url}: more than the limit of {max_bytes} bytes",
                                            endpoint=url)
                    chunks.append(chunk)
                return Download(url, kind, b"".join(chunks))
        except httpx.TransportError as exc:
            raise TransportError(f"{url}: {type(exc).__name__}: {exc}", endpoint=url) from exc
        finally:
            self._done()
