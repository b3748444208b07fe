"""`OpenAICaptioner` against a real local chat-completions server (`fake_vlm`): the request it
sends, what it retries and what it does not, and that its key shows only in the header."""

from __future__ import annotations

import hashlib
import io
import logging
import traceback
from collections.abc import Iterator

import pytest
from emopulse.ingest.captions import DEFAULT_PROMPT, CaptionError, OpenAICaptioner, image_mime
from fake_vlm import Answer, FakeVLM, caption_answer, serve_fake_vlm
from PIL import Image

KEY = "sk-test-7f3a9c1e5b2d4f6a8c0e"


def _image(fmt: str, colour: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 9), colour).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeVLM]:
    with serve_fake_vlm() as running:
        yield running


def _captioner(fake: FakeVLM, sleeps: list[float], **kwargs) -> OpenAICaptioner:
    options = {"base_url": fake.base_url, "model": "qwen-vl-plus", "api_key": KEY, "backoff_s": 0.5,
               "timeout_s": 5.0, "sleep": sleeps.append, **kwargs}
    return OpenAICaptioner(**options)


def test_the_request_carries_model_prompt_and_the_exact_image_with_its_mime(fake: FakeVLM, sleeps) -> None:
    jpeg, png = _image("JPEG"), _image("PNG")
    fake.script.extend([caption_answer("  A red square\n\n on  nothing.\n"),
                        caption_answer([{"type": "text", "text": "A red"}, {"type": "text", "text": "square."}])])
    with _captioner(fake, sleeps, prompt="Say what you see.", max_tokens=42) as captioner:
        assert captioner.name == "openai:qwen-vl-plus"
        assert captioner.caption(jpeg) == "A red square on nothing."  # newlines and runs of spaces collapsed
        assert captioner.caption(png) == "A red square."  # content as a list of text parts
    first, second = fake.requests
    assert first.path == "/v1/chat/completions"
    assert first.body["model"] == "qwen-vl-plus" and first.body["max_tokens"] == 42
    message = first.body["messages"][0]
    assert message["role"] == "user" and message["content"][0] == {"type": "text", "text": "Say what you see."}
    assert (first.mime, first.image) == ("image/jpeg", jpeg)
    assert (second.mime, second.image) == ("image/png", png)
    assert not sleeps


def test_mime_types_are_sniffed_and_other_formats_go_as_png(fake: FakeVLM, sleeps) -> None:
    assert [image_mime(_image(f)) for f in ("JPEG", "PNG", "GIF", "WEBP")] == [
        "image/jpeg", "image/png", "image/gif", "image/webp"]
    assert image_mime(_image("BMP")) is None
    with _captioner(fake, sleeps) as captioner:
        captioner.caption(_image("BMP"))
        with pytest.raises(CaptionError, match="not a readable image") as raised:
            captioner.caption(b"certainly not an image")
    assert fake.requests[0].mime == "image/png"
    assert Image.open(io.BytesIO(fake.requests[0].image)).getpixel((0, 0)) == (200, 30, 60)
    assert len(fake.requests) == 1  # the unreadable one was never sent
    assert raised.value.image in str(raised.value)


def test_the_key_is_sent_in_the_header_and_nowhere_else(fake: FakeVLM, sleeps, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script.extend([Answer(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}), caption_answer("ok"),
                        Answer(401, {"error": {"message": "x" * 150 + f" Incorrect API key provided: {KEY}"}})])
    captioner = _captioner(fake, sleeps)
    assert captioner.caption(_image("PNG")) == "ok"
    with pytest.raises(CaptionError) as raised:
        captioner.caption(_image("PNG"))
    captioner.close()
    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {KEY}"] * 3
    error = raised.value
    assert error.status == 401 and "HTTP 401" in str(error) and "Incorrect API key provided: ***" in str(error)
    shown = [str(error), repr(error), "".join(traceback.format_exception(error)), repr(captioner), caplog.text,
             *(r.getMessage() for r in caplog.records)]
    assert all(KEY[:10] not in text for text in shown)  # not even the part a cut to 200 characters would leave
    assert "retrying" in caplog.text  # the 429 was logged, without the key


def test_429_and_500_are_retried_with_backoff_honouring_retry_after(fake: FakeVLM, sleeps) -> None:
    fake.script.extend([Answer(429, {}, {"Retry-After": "7"}), Answer(500, b"oops"),
                        Answer(503, b"", {"Retry-After": "900"}), caption_answer("finally")])
    with _captioner(fake, sleeps) as captioner:
        assert captioner.caption(_image("JPEG")) == "finally"
    assert len(fake.requests) == 4
    assert sleeps[0] == 7.0  # Retry-After, as the server asked
    assert 0.5 * 2 <= sleeps[1] <= 0.5 * 2 + 0.5  # exponential: backoff_s * 2**attempt plus jitter
    assert sleeps[2] == 60.0  # a long Retry-After is capped


def test_transport_errors_are_retried(fake: FakeVLM, sleeps) -> None:
    fake.script.extend([Answer(drop=True), caption_answer("after a reset")])
    with _captioner(fake, sleeps) as captioner:
        assert captioner.caption(_image("PNG")) == "after a reset"
        fake.script.extend([Answer(drop=True)] * 4)
        with pytest.raises(CaptionError, match="gave up after 4 attempts") as raised:
            captioner.caption(_image("PNG"))
    assert raised.value.status is None and raised.value.transient
    assert len(fake.requests) == 6


def test_when_retries_run_out_the_error_names_status_endpoint_and_image(fake: FakeVLM, sleeps) -> None:
    fake.script.extend([Answer(503, b"busy")] * 4)
    image = _image("PNG")
    with _captioner(fake, sleeps, max_retries=3) as captioner, pytest.raises(CaptionError) as raised:
        captioner.caption(image)
    error = raised.value
    assert error.status == 503 and error.transient
    assert "HTTP 503" in str(error) and "gave up after 4 attempts" in str(error)
    assert f"{fake.base_url}/chat/completions" in str(error)
    assert error.image == hashlib.sha256(image).hexdigest()[:12] and error.image in str(error)
    assert len(fake.requests) == 4 and len(sleeps) == 3
    assert [0.5 * 2**i <= s <= 0.5 * 2**i + 0.5 for i, s in enumerate(sleeps)] == [True] * 3


@pytest.mark.parametrize("status", [400, 401, 403, 404])
@pytest.mark.parametrize("body", [{"error": {"message": "no such thing"}},  # OpenAI's shape
                                  {"code": "InvalidParameter", "message": "no such thing"},  # DashScope's
                                  b"no such thing"])
def test_other_4xx_fail_at_once(fake: FakeVLM, sleeps, status: int, body) -> None:
    fake.script.append(Answer(status, body))
    with _captioner(fake, sleeps) as captioner, pytest.raises(CaptionError, match=f"HTTP {status}: no such thing"):
        captioner.caption(_image("PNG"))
    assert len(fake.requests) == 1 and not sleeps


@pytest.mark.parametrize(("answer", "message"), [
    (Answer(200, b"{not json"), "not JSON"),
    (Answer(200, {"object": "chat.completion"}), r"no choices\[0\].message.content"),
    (Answer(200, {"choices": []}), r"no choices\[0\].message.content"),
    (caption_answer(None), r"no choices\[0\].message.content"),
    (caption_answer(" \n "), "caption is empty"),
])
def test_a_malformed_answer_is_asked_again_once_then_fails(fake: FakeVLM, sleeps, answer: Answer, message: str) -> None:
    fake.script.extend([answer, answer])
    with _captioner(fake, sleeps) as captioner, pytest.raises(CaptionError, match=message) as raised:
        captioner.caption(_image("PNG"))
    assert len(fake.requests) == 2 and raised.value.status == 200 and not raised.value.transient


def test_a_malformed_answer_then_a_good_one_succeeds(fake: FakeVLM, sleeps) -> None:
    fake.script.extend([Answer(200, b"<html>proxy</html>"), caption_answer("fine")])
    with _captioner(fake, sleeps) as captioner:
        assert captioner.caption(_image("PNG")) == "fine"
    assert len(fake.requests) == 2


def test_without_a_key_no_authorization_header_is_sent(fake: FakeVLM, sleeps) -> None:
    with _captioner(fake, sleeps, api_key=None) as captioner:
        captioner.caption(_image("PNG"))
        assert "api_key=none" in repr(captioner)
    assert "authorization" not in fake.requests[0].headers
    assert DEFAULT_PROMPT in fake.requests[0].body["messages"][0]["content"][0]["text"]
