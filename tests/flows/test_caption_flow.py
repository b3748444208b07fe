"""`caption_images` and `caption_function` on a real DuckDB warehouse, captioning through a real
local chat-completions server (`fake_vlm`): cached captions are never asked for again, a new
prompt is a new cache key, and a failing image takes no good caption with it."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from emopulse.flows.captions import (
    CaptionRun, caption_api_key, caption_function, caption_images, captioner_from_settings,
)
from emopulse.flows.settings import Settings, load_settings
from emopulse.ingest.captions import DEFAULT_PROMPT, OpenAICaptioner
from emopulse.warehouse import Warehouse, open_catalog, prompt_sha256, read_captions
from fake_vlm import Answer, FakeVLM, default_caption, serve_fake_vlm
from PIL import Image

KEY = "sk-flow-0d9e8c7b6a5f"


@pytest.fixture
def fake() -> Iterator[FakeVLM]:
    with serve_fake_vlm() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, fake: FakeVLM) -> Settings:
    return load_settings(home=tmp_path / "home", caption_backend="openai", caption_base_url=fake.base_url,
                         caption_api_key=KEY, caption_max_retries=0, caption_timeout_s=5.0)


def _image(path: Path, colour: tuple[int, int, int]) -> tuple[str, str]:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return hashlib.sha256(out.getvalue()).hexdigest(), str(path)


@pytest.fixture
def images(tmp_path: Path) -> list[tuple[str, str]]:
    folder = tmp_path / "images"
    folder.mkdir()
    pairs = [_image(folder / f"{i}.png", (i * 40, 100, 200)) for i in range(3)]
    copy = folder / "copy-of-0.png"
    copy.write_bytes(Path(pairs[0][1]).read_bytes())
    return [*pairs, (pairs[0][0], str(copy))]  # the first image twice, under two paths


def _captioner(fake: FakeVLM, prompt: str = DEFAULT_PROMPT) -> OpenAICaptioner:
    return OpenAICaptioner(base_url=fake.base_url, model="qwen-vl-plus", api_key=KEY, prompt=prompt,
                           max_retries=0, sleep=lambda s: None)


def _run(settings: Settings, images, captioner: OpenAICaptioner) -> CaptionRun:
    with Warehouse.open(settings.database, command="test captions") as wh, captioner:
        return caption_images(wh, images, captioner, prompt=captioner.prompt)


def test_a_second_run_asks_nothing_and_a_new_prompt_misses_the_cache(settings: Settings, fake: FakeVLM,
                                                                      images) -> None:
    first = _run(settings, images, _captioner(fake))
    assert (first.cached, first.requested, first.failed) == (0, 3, {})
    assert sorted(r.sha256 for r in fake.requests) == sorted({sha for sha, _ in images})  # each image once
    expected = {r.sha256: default_caption(r) for r in fake.requests}
    assert first.captions == expected

    again = _run(settings, images, _captioner(fake))  # a new connection: the captions were stored
    assert len(fake.requests) == 3  # zero new requests
    assert (again.captions, again.cached, again.requested, again.failed) == (expected, 3, 0, {})

    other = _run(settings, images, _captioner(fake, prompt="Describe the colours."))
    assert (other.cached, other.requested) == (0, 3) and len(fake.requests) == 6
    assert fake.requests[-1].body["messages"][0]["content"][0]["text"] == "Describe the colours."
    with Warehouse.open(settings.database, command="test read") as wh:
        rows = wh.con.execute("SELECT captioner, prompt_sha256, prompt, count(*) FROM captions "
                              "GROUP BY ALL ORDER BY prompt").fetchall()
        assert read_captions(wh, [images[1][0]], captioner="openai:qwen-vl-plus", prompt="Describe the colours.") \
            == {images[1][0]: expected[images[1][0]]}
        assert read_captions(wh, [images[1][0]], captioner="openai:another", prompt=DEFAULT_PROMPT) == {}
    assert rows == [("openai:qwen-vl-plus", prompt_sha256("Describe the colours."), "Describe the colours.", 3),
                    ("openai:qwen-vl-plus", prompt_sha256(DEFAULT_PROMPT), DEFAULT_PROMPT, 3)]


def test_failing_images_do_not_stop_the_others_and_good_captions_are_stored(settings: Settings, fake: FakeVLM,
                                                                            images, tmp_path: Path) -> None:
    refused = images[1][0]
    fake.respond = lambda r: (Answer(400, {"error": {"message": "image too small"}}) if r.sha256 == refused
                              else Answer(200, {"choices": [{"message": {"content": default_caption(r)}}]}))
    not_an_image = tmp_path / "images" / "notes.png"
    not_an_image.write_bytes(b"just some text")
    gone = ("f" * 64, str(tmp_path / "images" / "gone.png"))
    junk = (hashlib.sha256(b"just some text").hexdigest(), str(not_an_image))
    run = _run(settings, [gone, *images, junk], _captioner(fake))

    assert run.requested == 5 and len(fake.requests) == 3  # neither the missing file nor the junk was sent
    assert set(run.failed) == {gone[0], refused, junk[0]}
    assert "HTTP 400: image too small" in run.failed[refused] and refused[:12] in run.failed[refused]
    assert "gone.png" in run.failed[gone[0]] and "not a readable image" in run.failed[junk[0]]
    good = {images[0][0], images[2][0]}
    assert set(run.captions) == good
    with Warehouse.open(settings.database, command="test read") as wh:
        stored = read_captions(wh, [sha for sha, _ in [gone, *images, junk]], captioner="openai:qwen-vl-plus",
                               prompt=DEFAULT_PROMPT)
    assert stored == run.captions

    fake.respond = lambda r: Answer(200, {"choices": [{"message": {"content": "now it works"}}]})
    retry = _run(settings, [gone, *images, junk], _captioner(fake))
    assert (retry.cached, retry.requested) == (2, 3) and len(fake.requests) == 4  # only the refused one again
    assert retry.captions[refused] == "now it works" and set(retry.failed) == {gone[0], junk[0]}


class _Breaks:
    """Captions images one by one, then fails unexpectedly (not a caption error) on the `at`-th,
    noting how many captions the warehouse held by then."""

    name, prompt = "test:breaks", "p"

    def __init__(self, wh: Warehouse, shas: list[str], at: int) -> None:
        self.wh, self.shas, self.at, self.calls, self.stored_before = wh, shas, at, 0, -1

    def caption(self, image: bytes) -> str:
        self.calls += 1
        if self.calls == self.at:
            self.stored_before = len(read_captions(self.wh, self.shas, captioner=self.name, prompt=self.prompt))
            raise RuntimeError("the captioner fell over")
        return f"caption {self.calls}"


def test_captions_are_stored_as_they_come_and_kept_when_the_run_breaks(settings: Settings, tmp_path: Path) -> None:
    images = [_image(tmp_path / f"{i}.png", (i, i, i)) for i in range(20)]
    shas = [sha for sha, _ in images]
    with Warehouse.open(settings.database, command="test captions") as wh:
        breaks = _Breaks(wh, shas, at=20)
        with pytest.raises(RuntimeError, match="fell over"):
            caption_images(wh, images, breaks, prompt="p")
        stored = read_captions(wh, shas, captioner="test:breaks", prompt="p")
    assert breaks.stored_before == 16  # the first batch was written before the 17th image
    assert len(stored) == 19  # ... and the 3 after it on the way out


def test_caption_function_captions_through_the_warehouse_writer_and_logs_failures(
        settings: Settings, fake: FakeVLM, images, caplog) -> None:
    caplog.set_level(logging.INFO)
    gone = ("e" * 64, "/nowhere/gone.png")
    caption = caption_function(settings, progress=False)
    got = caption([*images, gone])
    assert got == {r.sha256: default_caption(r) for r in fake.requests} and len(got) == 3
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests)
    assert "1 of 4 images got none" in caplog.text and "gone.png" in caplog.text
    assert caption(images) == got and len(fake.requests) == 3  # the cache, through the writer again
    assert caption([]) == {}
    assert KEY not in caplog.text
    catalog = open_catalog(settings.home)  # the writer published them for readers
    try:
        assert read_captions(catalog, list(got), captioner="openai:qwen-vl-plus", prompt=DEFAULT_PROMPT) == got
    finally:
        catalog.close()


def test_settings_choose_the_captioner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EMOPULSE_CAPTION_API_KEY", "DASHSCOPE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "from-dashscope")
    base = load_settings(home=tmp_path)
    # a provider's own key only for that provider's hosts, never for another endpoint
    assert caption_api_key(base, "https://dashscope.aliyuncs.com/compatible-mode/v1") == "from-dashscope"
    assert caption_api_key(base, "https://api.openai.com/v1") == "from-openai"
    assert caption_api_key(base, "https://vlm.example.com/v1") is None
    monkeypatch.setenv("EMOPULSE_CAPTION_API_KEY", "ours")
    with pytest.raises(ValueError, match="over https only"):  # a key in the clear to another host
        captioner_from_settings(load_settings(home=tmp_path, caption_backend="openai",
                                              caption_base_url="http://vlm.test/v1/"))
    settings = load_settings(home=tmp_path, caption_backend="openai", caption_base_url="http://127.0.0.1:9/v1/",
                             caption_prompt="Be brief.", caption_max_retries=1)
    assert "ours" not in repr(settings)
    with captioner_from_settings(settings) as captioner:
        assert isinstance(captioner, OpenAICaptioner)
        assert (captioner.name, captioner.prompt, captioner.url, captioner.max_retries) == (
            "openai:qwen-vl-plus", "Be brief.", "http://127.0.0.1:9/v1/chat/completions", 1)
        assert "ours" not in repr(captioner)

    no_url = load_settings(home=tmp_path, caption_backend="openai")
    with pytest.raises(ValueError, match="caption_base_url"):
        captioner_from_settings(no_url)
    with pytest.raises(ValueError, match="caption_base_url"):
        caption_function(no_url, progress=False)  # at once, not when the trainer calls it

    offline = captioner_from_settings(load_settings(home=tmp_path))
    assert offline.name == "imagenet:efficientnet-lite0"


def test_a_dead_endpoint_is_given_up_after_a_few_images_in_a_row(settings: Settings, fake: FakeVLM,
                                                                 tmp_path: Path) -> None:
    fake.respond = lambda request: Answer(500, {"error": {"message": "down"}})
    folder = tmp_path / "many"
    folder.mkdir()
    many = [_image(folder / f"{i}.png", (i, 2 * i, 200)) for i in range(12)]
    run = _run(settings, many, _captioner(fake))
    assert len(fake.requests) == 5  # GIVE_UP_AFTER, then nothing more is sent
    assert run.captions == {} and len(run.failed) == 12
    not_sent = [reason for reason in run.failed.values() if reason.startswith("not sent:")]
    assert len(not_sent) == 7
    assert all("failed 5 images in a row" in r and "500" in r for r in not_sent)  # the real error, not "not sent"
