"""A small CNN for 72x72 emote images, with its preprocessing and augmentation beside it.

`to_pixels` turns uint8 images [M, 72, 72, 3] into the float tensor the network reads; `augment`
is the seed's augmentation (random rotation, brightness and contrast), applied in training only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EmoteImageEncoder", "EmoteImageEncoderConfig", "augment", "to_pixels"]

MEAN, STD = 0.5, 0.5


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 [M, H, W, 3] → float32 [M, 3, H, W], scaled to about [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def augment(pixels: torch.Tensor, *, generator: torch.Generator | None = None, max_degrees: float = 15.0,
            brightness: float = 0.2, contrast: float = 0.2) -> torch.Tensor:
    """Rotate each image by up to ±max_degrees (white fill), scale its brightness and contrast by
    up to ±20%; [M, 3, H, W] in, same out."""
    m = pixels.shape[0]

    def uniform(spread: float) -> torch.Tensor:
        return (torch.rand(m, generator=generator) * 2 - 1) * spread

    angle = uniform(max_degrees * math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(m)], 1), torch.stack([sin, cos, torch.zeros(m)], 1)], 1)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    white = (1.0 - MEAN) / STD
    x = F.grid_sample(pixels - white, grid, align_corners=False, padding_mode="zeros") + white
    x01 = x * STD + MEAN
    x01 = x01 * (1 + uniform(brightness)).view(m, 1, 1, 1)
    mean = x01.mean(dim=(1, 2, 3), keepdim=True)
    x01 = (x01 - mean) * (1 + uniform(contrast)).view(m, 1, 1, 1) + mean
    return (x01.clamp(0, 1) - MEAN) / STD


@dataclass
class EmoteImageEncoderConfig:
    channels: tuple[int, ...] = (24, 48, 96, 192)
    dropout: float = 0.1


class EmoteImageEncoder(nn.Module):
    """Stride-2 3x3 convolutions with GELU (72 → 36 → 18 → 9 → 5), then the spatial mean: [M, C]."""

    def __init__(self, config: EmoteImageEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EmoteImageEncoderConfig()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in self.config.channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.GELU()]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.drop = nn.Dropout(self.config.dropout)

    @property
    def dim(self) -> int:
        return self.config.channels[-1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.drop(self.net(pixels).mean(dim=(2, 3)))
