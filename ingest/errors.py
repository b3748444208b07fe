"""Typed errors of the Bilibili crawler; each says whether retrying later may help.

    CrawlerError                      (transient: bool; raw: RawPage | None)
    ├── TransportError                timeouts, connection resets, HTTP 5xx, HTTP 429   transient
    ├── ApiError(code, message, endpoint)   any other non-zero `code`                 terminal
    │   ├── RiskControl               -352: refresh WBI keys and cookies, slow down      transient
    │   │   └── SoftBlocked           code 0, yet a listing that is not at its end has no
    │   │                             next cursor (logged-out/stale-cookie risk control)  transient
    │   ├── Blocked                   -412, or an HTTP 412 HTML page: long cool-down     terminal
    │   │   └── CircuitOpen           a streak of -352/-799 across requests: cool down   terminal
    │   ├── RateLimited               -799, -509: back off                               transient
    │   ├── PermissionDenied          -403 (also a bad WBI signature)                    terminal
    │   ├── NotFound                  -404 (video deleted): record and skip              terminal
    │   ├── BadRequest                -400 (e.g. page out of range): stop paging         terminal
    │   ├── NotLoggedIn               -101                                               terminal
    │   ├── CommentsClosed            12002: record and skip                             terminal
    │   └── WrongType                 12009: a bug, fail loudly                          terminal
    ├── ParseError                    JSON of an unexpected shape (missing fields)       terminal
    │   └── UnreadableBody            truncated or non-JSON body: retried, then skipped  transient
    └── ImageRejected                 an image of the wrong type or over the size limit  terminal

`raw` is the HTTP answer that caused the error (when there was one), so a caller can land it.
Messages name the endpoint and the API's message, never a cookie.
"""

from __future__ import annotations

from .records import RawPage

__all__ = [
    "ApiError",
    "BadRequest",
    "Blocked",
    "CircuitOpen",
    "CommentsClosed",
    "CrawlerError",
    "NotFound",
    "NotLoggedIn",
    "ImageRejected",
    "ParseError",
    "PermissionDenied",
    "RateLimited",
    "RiskControl",
    "SoftBlocked",
    "TransportError",
    "UnreadableBody",
    "WrongType",
    "api_error",
]


class CrawlerError(Exception):
    """Base of every crawler error."""

    transient: bool = False

    def __init__(self, message: str, *, raw: RawPage | None = None) -> None:
        super().__init__(message)
        self.raw = raw


class TransportError(CrawlerError):
    """The request did not get a usable answer: timeout, reset, HTTP 5xx or 429."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        endpoint: str | None = None,
        raw: RawPage | None = None,
    ) -> None:
        super().__init__(message, raw=raw)
        self.http_status = http_status
        self.endpoint = endpoint if endpoint is not None else (raw.endpoint if raw else None)


class ParseError(CrawlerError):
    """The body is not the JSON we expect (missing fields, wrong types)."""


class UnreadableBody(ParseError):
    """The body is not JSON at all (truncated, an HTML page): worth asking again."""

    transient = True


class ImageRejected(CrawlerError):
    """A downloaded image was refused: not an image content type, or over the size limit."""

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint  # the image's URL


class ApiError(CrawlerError):
    """The API answered with a non-zero `code`."""

    codes: tuple[int, ...] = ()

    def __init__(self, code: int, message: str, endpoint: str, *, raw: RawPage | None = None):
        super().__init__(f"{endpoint}: code {code}: {message}", raw=raw)
        self.code = code
        self.api_message = message
        self.endpoint = endpoint


class RiskControl(ApiError):
    codes = (-352,)
    transient = True


class SoftBlocked(RiskControl):
    """A comment listing answered code 0 but neither ended nor gave a next cursor: what Bilibili
    sends logged-out or stale-cookie clients it throttles. Never read as the listing's end."""

    codes = ()


class Blocked(ApiError):
    codes = (-412,)


class CircuitOpen(Blocked):
    """`streak` risk-control answers (-352, -799, -509, soft blocks) in a row: the source is
    treated as banned and cools down, instead of every video burning its own retries."""

    codes = ()

    def __init__(self, streak: int, last: ApiError) -> None:
        super().__init__(last.code, f"circuit breaker: {streak} risk-control answers in a row "
                         f"(last: {last.api_message or 'no message'})", last.endpoint,
                         raw=last.raw)
        self.streak = streak


class RateLimited(ApiError):
    codes = (-799, -509)
    transient = True


class PermissionDenied(ApiError):
    codes = (-403,)


class NotFound(ApiError):
    codes = (-404,)


class BadRequest(ApiError):
    codes = (-400,)


class NotLoggedIn(ApiError):
    codes = (-101,)


class CommentsClosed(ApiError):
    codes = (12002,)


class WrongType(ApiError):
    codes = (12009,)


_BY_CODE: dict[int, type[ApiError]] = {
    code: cls
    for cls in (RiskControl, Blocked, RateLimited, PermissionDenied, NotFound, BadRequest,
                NotLoggedIn, CommentsClosed, WrongType)
    for code in cls.codes
}


def api_error(code: int, message: str, endpoint: str, *, raw: RawPage | None = None) -> ApiError:
    """The typed `ApiError` for an API `code` (the base class for codes we do not know)."""
    return _BY_CODE.get(code, ApiError)(code, message, endpoint, raw=raw)
