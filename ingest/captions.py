"""Captions of images from an OpenAI-compatible vision-language endpoint (`POST .../chat/completions`).

`OpenAICaptioner(base_url=..., model=..., api_key=...).caption(image_bytes)` sends the image as a
data URL beside a text prompt and returns the answer as one line. 429, 5xx, timeouts and
transport errors are retried with exponential backoff (a `Retry-After` header is honoured); any
other 4xx fails at once. A 200 whose body is not the expected JSON, has no
`choices[0].message.content` or an empty caption is retried once (a truncated answer, a model
hiccup), then fails. Every failure is a `CaptionError` naming the endpoint (without a key), the
image's sha256 prefix and the status or what was wrong; the API key never appears in a message,
a log line or a repr.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = ["DEFAULT_PROMPT", "CaptionError", "OpenAICaptioner", "image_mime"]

log = logging.getLogger(__name__)

DEFAULT_PROMPT = (
    "Describe this image in one objective sentence: what it shows, the mood it conveys, "
    "and any text visible in it."
)
MAX_BACKOFF_S = 60.0  # the longest pause between two attempts, Retry-After included
MALFORMED_RETRIES = 1  # a 200 with an unusable body is asked again this many times
_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
               (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


class CaptionError(Exception):
    """A caption could not be had: the message names the endpoint, the image and the cause.

    `status` is the HTTP status when there was an answer; `transient` says whether asking again
    later may help (429, 5xx, timeouts, transport errors).
    """

    def __init__(self, message: str, *, endpoint: str, image: str, status: int | None = None,
                 transient: bool = False) -> None:
        super().__init__(f"caption of image {image} from {endpoint}: {message}")
        self.endpoint, self.image, self.status, self.transient = endpoint, image, status, transient


def image_mime(image: bytes) -> str | None:
    """The MIME type of JPEG, PNG, GIF or WebP bytes, by their signature; None for anything else."""
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _SIGNATURES if image.startswith(magic)), None)


def _public_url(url: str) -> str:
    """`url` without user info or query (where a key could hide)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds a `Retry-After` header (seconds or an HTTP date) asks to wait, if it says."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _content_text(payload: Any) -> str | None:
    """`choices[0].message.content` as text (a string, or a list of parts with `text`)."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(content, list):
        content = " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else None


class OpenAICaptioner:
    """A synchronous chat-completions client that captions one image per request.

    `name` (`openai:<model>`) and `prompt` identify its captions in the warehouse cache. Use as a
    context manager, or call `close()`; an injected `client` is the caller's to close.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        prompt: str = DEFAULT_PROMPT,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 2.0,
        max_tokens: int = 80,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.endpoint = _public_url(self.url)
        self.model, self.prompt, self.max_tokens = model, prompt, max_tokens
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self._api_key = api_key
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout_s)  # per request: an injected client keeps its own default
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAICaptioner(endpoint={self.endpoint!r}, model={self.model!r}, api_key={key})"

    def __enter__(self) -> OpenAICaptioner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def caption(self, image: bytes) -> str:
        """One sentence about `image` (JPEG, PNG, GIF or WebP bytes; other formats Pillow reads
        are sent as PNG), whitespace collapsed to single spaces."""
        sha = hashlib.sha256(image).hexdigest()[:12]
        body = self._body(image, sha)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        attempt, malformed = 0, 0
        while True:
            try:
                response = self._client.post(self.url, json=body, headers=headers, timeout=self._timeout)
            except httpx.TransportError as exc:  # raised anew below: its request holds the headers
                reason, status, wait = f"{type(exc).__name__}: {exc}", None, None
            else:
                try:
                    return self._answer(response, sha)
                except _Retry as exc:
                    reason, status, wait = str(exc), exc.status, exc.retry_after
                    malformed += exc.malformed
                    if malformed > MALFORMED_RETRIES:
                        raise self._error(f"{reason} (asked {malformed} times)", sha, status=status) from None
            if attempt >= self.max_retries:
                tries = f" (gave up after {attempt + 1} attempts)" if attempt else ""
                transient = status is None or status == 429 or status >= 500
                raise self._error(f"{reason}{tries}", sha, status=status, transient=transient) from None
            delay = min(MAX_BACKOFF_S, wait if wait is not None
                        else self.backoff_s * 2**attempt + random.uniform(0, self.backoff_s))
            log.warning("caption of image %s from %s: %s; retrying in %.1f s (attempt %d of %d)",
                        sha, self.endpoint, reason, delay, attempt + 2, self.max_retries + 1)
            self._sleep(delay)
            attempt += 1

    def _body(self, image: bytes, sha: str) -> dict[str, Any]:
        mime = image_mime(image)
        if mime is None:
            image, mime = self._as_png(image, sha), "image/png"
        url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
        content = [{"type": "text", "text": self.prompt}, {"type": "image_url", "image_url": {"url": url}}]
        return {"model": self.model, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": content}]}

    def _as_png(self, image: bytes, sha: str) -> bytes:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(image)) as opened:
                out = io.BytesIO()
                opened.save(out, format="PNG")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise self._error(f"not a readable image ({exc})", sha) from None
        return out.getvalue()

    def _answer(self, response: httpx.Response, sha: str) -> str:
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = _retry_after(response) if status in (429, 503) else None
            raise _Retry(f"HTTP {status}", status, retry_after=retry_after)
        if not 200 <= status < 300:
            raise self._error(f"HTTP {status}{self._server_message(response)}", sha, status=status)
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            snippet = self._redact(response.text)[:80]
            raise _Retry(f"HTTP {status} but the body is not JSON ({snippet!r})", status, malformed=True) from None
        text = _content_text(payload)
        if text is None:
            raise _Retry(f"HTTP {status} but the JSON has no choices[0].message.content", status, malformed=True)
        caption = " ".join(text.split())
        if not caption:
            raise _Retry(f"HTTP {status} but the caption is empty", status, malformed=True)
        return caption

    def _server_message(self, response: httpx.Response) -> str:
        """`: <the server's error message>` (OpenAI's `error.message`, DashScope's `message`),
        short, with the key blotted out should the server echo it."""
        try:
            payload = response.json()
            error = payload.get("error") or payload.get("message")
            message = error.get("message") if isinstance(error, dict) else error
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            message = response.text
        message = " ".join(self._redact(str(message or "")).split())[:200]
        return f": {message}" if message else ""

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _error(self, message: str, sha: str, *, status: int | None = None, transient: bool = False) -> CaptionError:
        return CaptionError(message, endpoint=self.endpoint, image=sha, status=status, transient=transient)


class _Retry(Exception):
    """An answer worth asking again for: 429, 5xx (`retry_after` from its header), or a
    `malformed` 200."""

    def __init__(self, message: str, status: int, *, retry_after: float | None = None,
                 malformed: bool = False) -> None:
        super().__init__(message)
        self.status, self.retry_after, self.malformed = status, retry_after, malformed
