"""BilibiliClient against scripted answers: typed errors, retries, signing, secrets."""

from __future__ import annotations

import json

import httpx
import pytest

from emopulse.ingest import (
    ApiError,
    BadRequest,
    Blocked,
    CommentsClosed,
    CrawlerError,
    NotFound,
    NotLoggedIn,
    ParseError,
    PermissionDenied,
    RateLimited,
    RiskControl,
    TransportError,
    UnreadableBody,
    WrongType,
    wbi,
)

from fakeapi import IMG, NAV, SPI, SUB, FakeApi, api

EP = "/x/test"


@pytest.mark.parametrize(
    ("code", "error", "transient"),
    [
        (-352, RiskControl, True),
        (-412, Blocked, False),
        (-799, RateLimited, True),
        (-509, RateLimited, True),
        (-403, PermissionDenied, False),
        (-404, NotFound, False),
        (-400, BadRequest, False),
        (-101, NotLoggedIn, False),
        (12002, CommentsClosed, False),
        (12009, WrongType, False),
        (-7777, ApiError, False),
    ],
)
def test_each_code_raises_its_error_with_the_raw_page(make_client, code, error, transient):
    fake = FakeApi([api(code, None, "服务器说不行")])
    client = make_client(transport=fake.transport, max_retries=0)
    with pytest.raises(error) as caught:
        client.get_json(EP, {"oid": 1})
    exc = caught.value
    assert type(exc) is error and isinstance(exc, CrawlerError)
    assert exc.transient is transient
    assert (exc.code, exc.endpoint, exc.api_message) == (code, EP, "服务器说不行")
    assert exc.raw is not None and exc.raw.code == code and exc.raw.http_status == 200
    assert exc.raw.params == {"oid": 1}
    assert json.loads(exc.raw.body)["message"] == "服务器说不行"


def test_http_412_html_page_is_blocked_and_not_retried(make_client):
    page = "<html><body><h1>412</h1>由于触发哔哩哔哩安全风控策略</body></html>"
    fake = FakeApi([httpx.Response(412, html=page)])
    client = make_client(transport=fake.transport, max_retries=3)
    with pytest.raises(Blocked) as caught:
        client.get_json(EP)
    assert caught.value.code == -412 and not caught.value.transient
    raw = caught.value.raw
    assert (raw.http_status, raw.code, raw.body) == (412, None, page)
    assert fake.count(EP) == 1


@pytest.mark.parametrize("body", ["<html>oops</html>", '{"code":0,"data":{"replies":[{"rp'])
def test_body_that_is_not_json_is_retried_then_raised_with_the_raw_page(make_client, body):
    fake = FakeApi([httpx.Response(200, text=body)] * 3)
    heard = []
    client = make_client(transport=fake.transport, max_retries=2,
                         on_error=lambda exc, attempt, retrying: heard.append((attempt, retrying)))
    with pytest.raises(UnreadableBody, match="not JSON") as caught:
        client.get_json(EP)
    assert isinstance(caught.value, ParseError) and caught.value.transient
    assert (caught.value.raw.body, caught.value.raw.code) == (body, None)
    assert fake.count(EP) == 3 and heard == [(0, True), (1, True), (2, False)]


def test_json_of_the_wrong_shape_is_not_retried(make_client):
    fake = FakeApi([httpx.Response(200, json={"data": {}})])
    with pytest.raises(ParseError, match="without an integer code") as caught:
        make_client(transport=fake.transport).get_json(EP)
    assert not caught.value.transient and fake.count(EP) == 1


def test_transient_errors_back_off_exponentially_then_succeed(make_client, sleeps):
    fake = FakeApi([api(-799), httpx.Response(503), api(0, {"ok": True})])
    client = make_client(transport=fake.transport, backoff_s=1.0, max_retries=3)
    payload, raw = client.get_json(EP)
    assert payload["data"] == {"ok": True} and raw.code == 0
    assert fake.count(EP) == 3
    assert len(sleeps) == 2 and 1 <= sleeps[0] < 2 and 2 <= sleeps[1] < 3


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500), httpx.Response(429), httpx.ReadTimeout("slow"),
     httpx.ConnectError("connection reset")],
)
def test_transport_failures_give_up_after_max_retries(make_client, sleeps, failure):
    fake = FakeApi([failure] * 3)
    client = make_client(transport=fake.transport, max_retries=2)
    with pytest.raises(TransportError) as caught:
        client.get_json(EP)
    assert caught.value.transient
    assert fake.count(EP) == 3 and len(sleeps) == 2
    if isinstance(failure, httpx.Response):
        assert caught.value.http_status == caught.value.raw.http_status == failure.status_code
    else:
        assert caught.value.raw is None


def test_signed_request_sends_w_rid_but_raw_params_do_not(make_client):
    fake = FakeApi([api(0, {})])
    _, raw = make_client(transport=fake.transport).get_json(EP, {"oid": 7}, signed=True)
    sent = dict(fake.requests[-1].url.params)
    assert wbi.verify(sent, IMG, SUB) and sent["oid"] == "7"
    assert raw.params == {"oid": 7}


def test_403_on_a_signed_endpoint_refreshes_the_keys_once(make_client, sleeps):
    fake = FakeApi([api(-403), api(0, {})])
    client = make_client(transport=fake.transport)
    client.get_json(EP, signed=True)
    assert fake.count(NAV) == 2 and fake.count(EP) == 2 and sleeps == []

    fake.script = [api(-403), api(-403)]
    with pytest.raises(PermissionDenied):
        client.get_json(EP, signed=True)
    assert fake.count(NAV) == 3 and fake.count(EP) == 4


def test_403_on_an_unsigned_endpoint_is_not_retried(make_client):
    fake = FakeApi([api(-403)])
    with pytest.raises(PermissionDenied):
        make_client(transport=fake.transport).get_json(EP)
    assert fake.count(EP) == 1 and fake.count(NAV) == 0


def test_risk_control_refreshes_keys_and_cookies_then_retries(make_client, sleeps):
    fake = FakeApi([api(-352), api(0, {})])
    make_client(transport=fake.transport).get_json(EP, signed=True)
    assert fake.count(NAV) == 2 and fake.count(SPI) == 2 and fake.count(EP) == 2
    assert len(sleeps) == 1


def test_browser_headers_and_buvid_cookies(make_client):
    fake = FakeApi([api(0, {})])
    make_client(transport=fake.transport).get_json(EP)
    request = fake.requests[-1]
    assert request.headers["Referer"] == "https://www.bilibili.com/"
    assert request.headers["User-Agent"].startswith("Mozilla/5.0")
    assert "buvid3=B3-INFOC" in request.headers["Cookie"]
    assert "buvid4=B4" in request.headers["Cookie"]


def test_sessdata_is_sent_but_never_shown(make_client, caplog):
    secret = "SECRET-SESSDATA-0123"
    fake = FakeApi([api(0, {}), api(-799, None, "请求过于频繁"), api(0, {}),
                    api(-101, None, "账号未登录")])
    heard: list[tuple[object, int, bool]] = []  # what `on_error` is told (the crawl logs it)
    client = make_client(transport=fake.transport, sessdata=secret,
                         on_error=lambda exc, attempt, retrying: heard.append((exc, attempt,
                                                                               retrying)))
    with caplog.at_level("DEBUG"):
        _, raw = client.get_json(EP, {"oid": 1})
        _, retried = client.get_json(EP, {"oid": 2})  # a -799 first: heard, then retried
        with pytest.raises(NotLoggedIn) as caught:
            client.get_json(EP)
    assert all(f"SESSDATA={secret}" in r.headers["Cookie"] for r in fake.requests)  # sent
    assert len(heard) == 2 and heard[0][0].code == -799  # the -799 and the -101
    shown = [repr(client), repr(raw), repr(retried), str(caught.value), repr(caught.value),
             repr(caught.value.raw), caplog.text]
    for exc, *_ in heard:
        shown += [str(exc), repr(exc), repr(getattr(exc, "raw", None)), repr(exc.args)]
    for page in (raw, retried, caught.value.raw, *(e.raw for e, *_ in heard)):
        shown += [page.endpoint, page.body, json.dumps(page.params, default=str)]
    leaks = [text for text in shown if secret in text or "SESSDATA" in text]
    assert leaks == []
    assert "logged_in=True" in repr(client)


def test_throttle_spaces_requests(make_client, sleeps):
    fake = FakeApi([api(0, {})] * 3)
    client = make_client(transport=fake.transport, throttle_s=0.5, jitter_s=0.2)
    for _ in range(3):
        client.get_json(EP)
    assert len(fake.requests) == 4  # spi, then three requests
    assert len(sleeps) == 3  # before every request but the first
    assert all(0.4 < s <= 0.7 for s in sleeps)
