"""Captions of the sentiment model's hard samples: the captioner the settings name, run only on
images the warehouse has no caption of (for that captioner and prompt), each caption stored as
soon as a small batch of them is in, so a failure later loses nothing already captioned."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from emopulse.ingest.captions import DEFAULT_PROMPT, CaptionError, OpenAICaptioner
from emopulse.warehouse import Warehouse, read_captions, write_captions

from .settings import Settings
from .steps import writer

__all__ = ["CaptionRun", "Captioner", "caption_function", "caption_images", "captioner_from_settings"]

log = logging.getLogger(__name__)
GIVE_UP_AFTER = 5  # images in a row the captioner failed before the rest are not sent
NOT_SENT = "not sent:"
BATCH = 16  # captions are written to the warehouse this many at a time
SHOWN_FAILURES = 3  # the log names this many failed images


class Captioner(Protocol):
    """A captioner: `name` and `prompt` key its captions in the cache, `caption(image_bytes)`
    captions one image; one with `caption_many` gets a batch at a time."""

    @property
    def name(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    def caption(self, image: bytes) -> str: ...


@dataclass
class CaptionRun:
    """`captions`: image_sha256 → caption (cached or new); `cached`: how many came from the
    warehouse; `requested`: distinct images not in it, sent to the captioner; `failed`:
    image_sha256 → why it got none."""

    captions: dict[str, str]
    cached: int
    requested: int
    failed: dict[str, str]


def caption_images(wh: Warehouse, images: Sequence[tuple[str, str | Path]], captioner: Captioner, *,
                   prompt: str, progress: bool = False, give_up_after: int = GIVE_UP_AFTER) -> CaptionRun:
    """Caption (image_sha256, path) pairs with `captioner`, reading cached captions of
    (captioner.name, prompt) first; an image that fails is noted in `failed`, the others go on,
    until `give_up_after` images in a row failed at the captioner (a dead endpoint): then the rest
    are not sent and fail with that reason."""
    paths: dict[str, list[Path]] = {}
    for sha, path in images:
        paths.setdefault(sha, []).append(Path(path))
    cached = read_captions(wh, list(paths), captioner=captioner.name, prompt=prompt)
    missing = [sha for sha in paths if sha not in cached]
    captions, failed, pending = dict(cached), {}, {}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   disable=not progress, console=Console(stderr=True))
    task = bar.add_task(f"captions ({captioner.name})", total=len(missing))
    with bar:
        in_a_row, last_error = 0, ""
        try:
            for start in range(0, len(missing), BATCH):
                if in_a_row >= give_up_after:
                    for sha in missing[start:]:
                        failed[sha] = f"{NOT_SENT} the captioner failed {in_a_row} images in a row (last: {last_error})"
                    bar.advance(task, len(missing) - start)
                    break
                loaded = {}
                for sha in missing[start : start + BATCH]:
                    data = _read(paths[sha])
                    if isinstance(data, bytes):
                        loaded[sha] = data
                    else:
                        failed[sha] = data
                        bar.advance(task)
                for sha, caption, error in _captions(captioner, loaded, stop=lambda: in_a_row >= give_up_after):
                    if caption:
                        captions[sha] = pending[sha] = caption
                        in_a_row = 0
                    elif error and error.startswith(NOT_SENT):  # never reached the captioner
                        failed[sha] = f"{NOT_SENT} the captioner failed {in_a_row} images in a row (last: {last_error})"
                    else:
                        failed[sha] = last_error = error or "the captioner returned an empty caption"
                        in_a_row += 1
                    bar.advance(task)
                _flush(wh, pending, captioner=captioner.name, prompt=prompt)
        finally:  # whatever stopped the run, what was captioned is kept
            _flush(wh, pending, captioner=captioner.name, prompt=prompt)
    log.info("captions by %s: %d images, %d cached, %d requested, %d captioned, %d failed", captioner.name,
             len(paths), len(cached), len(missing), len(missing) - len(failed), len(failed))
    return CaptionRun(captions, len(cached), len(missing), failed)


def _read(paths: list[Path]) -> bytes | str:
    """The bytes of the first readable path, or why none could be read."""
    errors = []
    for path in paths:
        try:
            return path.read_bytes()
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
    return "; ".join(errors)


def _captions(captioner: Captioner, loaded: dict[str, bytes], *,
              stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[str, str | None, str | None]]:
    """(sha, caption, None) or (sha, None, error) per image; a batch at once when the captioner
    can, one at a time when it cannot or one image spoiled the batch (until `stop()`: the rest get
    an error without being sent)."""
    many = getattr(captioner, "caption_many", None)
    if many is not None and len(loaded) > 1:
        try:
            texts = many(list(loaded.values()))
        except (CaptionError, ValueError):
            texts = None
        if texts is not None:
            yield from ((sha, text, None) for sha, text in zip(loaded, texts, strict=True))
            return
    for sha, data in loaded.items():
        if stop():
            yield sha, None, f"{NOT_SENT} the captioner failed too many images in a row"
            continue
        try:
            yield sha, captioner.caption(data), None
        except (CaptionError, ValueError) as exc:
            yield sha, None, str(exc)


def _flush(wh: Warehouse, pending: dict[str, str], *, captioner: str, prompt: str) -> None:
    if pending:
        write_captions(wh, pending, captioner=captioner, prompt=prompt)
        pending.clear()


def _openai_endpoint(settings: Settings) -> tuple[str, str]:
    """(base URL, model) of the `openai` backend, or a ValueError naming the missing setting."""
    if not settings.caption_base_url:
        raise ValueError("caption_backend 'openai' needs caption_base_url (EMOPULSE_CAPTION_BASE_URL), e.g. "
                         "https://dashscope.aliyuncs.com/compatible-mode/v1")
    if not settings.caption_model:
        raise ValueError("caption_backend 'openai' needs caption_model (EMOPULSE_CAPTION_MODEL), e.g. qwen-vl-plus")
    caption_api_key(settings, settings.caption_base_url)  # refuses a key over plain http at once
    return settings.caption_base_url, settings.caption_model


# a provider's own key variable, used only for that provider's hosts
PROVIDER_KEYS = ((("dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com"), "DASHSCOPE_API_KEY"),
                 (("api.openai.com",), "OPENAI_API_KEY"))
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def caption_api_key(settings: Settings, base_url: str) -> str | None:
    """EMOPULSE_CAPTION_API_KEY; else the provider's own variable when `base_url` is that provider's
    (a key is never sent to a host it was not made for); refused over plain http except to localhost."""
    host = (urlsplit(base_url).hostname or "").lower()
    key = settings.caption_api_key.get_secret_value() if settings.caption_api_key else None
    if not key:
        for hosts, variable in PROVIDER_KEYS:
            if any(host == h or host.endswith("." + h) for h in hosts):
                key = os.environ.get(variable) or None
    if key and urlsplit(base_url).scheme != "https" and host not in LOCAL_HOSTS:
        raise ValueError(f"caption_base_url {urlsplit(base_url).scheme}://{host}/...: an API key goes over https only "
                         "(or to localhost)")
    return key


def captioner_from_settings(settings: Settings) -> Captioner:
    """`offline`: the ImageNet stand-in (EfficientNet-Lite0); `openai`: an OpenAI-compatible endpoint."""
    if settings.caption_backend == "openai":
        base_url, model = _openai_endpoint(settings)
        key = caption_api_key(settings, base_url)
        return OpenAICaptioner(base_url=base_url, model=model, api_key=key,
                               prompt=settings.caption_prompt or DEFAULT_PROMPT, timeout_s=settings.caption_timeout_s,
                               max_retries=settings.caption_max_retries)
    from emopulse.training.encoders.captioner import ImageNetCaptioner

    return ImageNetCaptioner.pretrained(settings.image_encoder_weights)


def caption_function(settings: Settings, *, progress: bool) -> Callable[[Sequence[tuple[str, str]]], dict[str, str]]:
    """What the sentiment trainer calls with the (image_sha256, path) pairs of its hard samples.
    Each call builds the configured captioner, holds the warehouse writer for the call only (so
    call it while not holding the warehouse yourself; snapshots are published on the way out),
    and returns image_sha256 → caption of the images that got one; failures are logged. A
    misconfigured `openai` backend fails here, at once, not after a fold has trained."""
    if settings.caption_backend == "openai":
        _openai_endpoint(settings)

    def caption(images: Sequence[tuple[str, str]]) -> dict[str, str]:
        if not images:
            return {}
        captioner = captioner_from_settings(settings)
        try:
            with writer(settings, "caption images") as wh:
                run = caption_images(wh, images, captioner, prompt=captioner.prompt, progress=progress)
        finally:
            close = getattr(captioner, "close", None)
            if close is not None:
                close()
        if run.failed:
            log.warning("captions by %s: %d of %d images got none, e.g. %s", captioner.name, len(run.failed),
                        len(run.captions) + len(run.failed), "; ".join(list(run.failed.values())[:SHOWN_FAILURES]))
        return run.captions

    return caption
