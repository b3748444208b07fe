"""emoji_align: comment text and emote images in one L2-normalised space (the emoji seed's method).

Built bottom-up: a `Projection` head; the `TextTower` (a text encoder, then a projection); the
`ImageTower` (the emote CNN on pixels, or frozen EfficientNet-Lite0 features, then a projection);
`EmojiAlign`, which owns both towers, a learnable temperature tau (clamped to [tau_min, tau_max]
after every optimiser step), an optional per-emote offset added to each prototype and an optional
per-emote bias added to each logit (initialised to the log prior, so the class prior need not be
squeezed into the geometry). A prototype is the mean of an emote's image embeddings (plus its
offset), renormalised. `EmoteRanker` freezes the prototype matrix and the bias next to the text
tower: forward(input_ids, attention_mask) -> logits = cosine similarities / tau + bias, the module
that is exported to ONNX and scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.emote_image import EmoteImageEncoder, EmoteImageEncoderConfig
from ..encoders.ngrams import NgramBagEncoder
from ..encoders.text import TextEncoder

__all__ = ["EmojiAlign", "EmojiAlignConfig", "EmoteRanker", "ImageTower", "Projection", "TextTower"]


@dataclass
class EmojiAlignConfig:
    num_emotes: int
    text_encoder: str = "transformers"  # or "ngrams" (the light, from-scratch encoder)
    text_encoder_path: str | None = None  # transformers: a local folder or hub id
    ngram_vocab_size: int = (1 << 16) + 1  # ngrams: buckets + padding
    ngram_dim: int = 64
    text_pooling: str = "mean"  # transformers: "mean" of the last layer, or "last4" (mean of the last four)
    text_dim: int = 384  # the text encoder's output width
    embed_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.2
    image_encoder: str = "scratch"  # the emote CNN on pixels, or "efficientnet": frozen Lite0 features in
    image_channels: tuple[int, ...] = field(default=(24, 48, 96, 192))
    image_feature_dim: int = 1280  # efficientnet: the width of the features
    tau_init: float = 0.07
    tau_min: float = 0.03
    tau_max: float = 0.20
    emote_offsets: bool = True
    prior_bias: bool = True


class Projection(nn.Module):
    """Linear → GELU → dropout → linear: an encoder's output into the shared space (not normalised)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(d_hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TextTower(nn.Module):
    """(input_ids, attention_mask) → encoder → projection → unit vectors [B, D].

    `from_features` starts after the encoder, for training on cached encoder outputs."""

    def __init__(self, encoder: nn.Module | None, config: EmojiAlignConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.drop = nn.Dropout(config.dropout)
        self.proj = Projection(config.text_dim, config.hidden_dim, config.embed_dim, config.dropout)

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.drop(features)), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            raise RuntimeError("this text tower was built without its encoder (cached features only)")
        return self.from_features(self.encoder(input_ids, attention_mask))


class ImageTower(nn.Module):
    """pixels [M, 3, 72, 72] → emote CNN → projection → unit vectors [M, D]; or, with
    `image_encoder="efficientnet"`, frozen EfficientNet-Lite0 features [M, 1280] → projection."""

    def __init__(self, config: EmojiAlignConfig) -> None:
        super().__init__()
        if config.image_encoder == "scratch":
            self.encoder: nn.Module = EmoteImageEncoder(EmoteImageEncoderConfig(channels=tuple(config.image_channels)))
            dim = self.encoder.dim
        elif config.image_encoder == "efficientnet":
            self.encoder, dim = nn.Identity(), config.image_feature_dim
        else:
            raise ValueError(f"unknown image_encoder {config.image_encoder!r}: 'scratch' or 'efficientnet'")
        self.proj = Projection(dim, config.hidden_dim, config.embed_dim, config.dropout)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.encoder(inputs)), dim=-1)


def build_text_encoder(config: EmojiAlignConfig, *, pretrained: bool = True) -> nn.Module:
    """The configured text encoder: pretrained weights, or the architecture only (a checkpoint fills it)."""
    if config.text_encoder == "ngrams":
        return NgramBagEncoder(config.ngram_vocab_size, config.ngram_dim)
    if config.text_encoder == "transformers":
        if not config.text_encoder_path:
            raise ValueError("text_encoder 'transformers' needs text_encoder_path (a folder or model id)")
        load = TextEncoder.from_pretrained if pretrained else TextEncoder.from_config_of
        return load(config.text_encoder_path, pooling=config.text_pooling)
    raise ValueError(f"unknown text_encoder {config.text_encoder!r}: 'transformers' or 'ngrams'")


class EmojiAlign(nn.Module):
    def __init__(self, config: EmojiAlignConfig, text_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.text = TextTower(text_encoder, config)
        self.image = ImageTower(config)
        self.tau = nn.Parameter(torch.tensor(float(config.tau_init)))
        self.offsets = nn.Parameter(torch.zeros(config.num_emotes, config.embed_dim)) if config.emote_offsets else None
        self.bias = nn.Parameter(torch.zeros(config.num_emotes)) if config.prior_bias else None

    @torch.no_grad()
    def init_bias_(self, prior: torch.Tensor, floor: float = 1e-4) -> None:
        """Start the bias at the log of `prior` [E] (any non-negative weights; normalised here)."""
        if self.bias is not None:
            prior = prior.to(self.bias).clamp(min=0)
            self.bias.copy_(torch.log((prior / prior.sum().clamp(min=1e-12)).clamp(min=floor)))

    def prototypes(self, pixels: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        """[E, D]: per emote, the mean of its images' embeddings (+ its offset), renormalised."""
        z = self.image(pixels)
        sums = torch.zeros(self.config.num_emotes, z.shape[1], dtype=z.dtype, device=z.device).index_add(0, owner, z)
        counts = torch.bincount(owner, minlength=self.config.num_emotes).clamp(min=1).to(z.dtype)
        means = sums / counts.unsqueeze(1)
        if self.offsets is not None:
            means = means + self.offsets
        return F.normalize(means, dim=-1)

    def logits(self, text: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """Cosine similarities over tau, plus the bias: [B, E]."""
        logits = text @ prototypes.T / self.tau
        return logits if self.bias is None else logits + self.bias

    @torch.no_grad()
    def clamp_tau_(self) -> None:
        self.tau.clamp_(self.config.tau_min, self.config.tau_max)


class EmoteRanker(nn.Module):
    """The text tower beside a fixed prototype matrix and bias: what is exported and scored.

    forward(input_ids, attention_mask) -> logits [B, E] (cosine similarity / tau + bias)."""

    def __init__(self, text: TextTower, prototypes: torch.Tensor, tau: float,
                 bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.text = text
        self.register_buffer("prototypes", prototypes.detach().clone())
        self.register_buffer("inv_tau", torch.tensor(1.0 / float(tau)))
        bias = torch.zeros(prototypes.shape[0]) if bias is None else bias.detach().clone().float()
        self.register_buffer("bias", bias.to(prototypes.device))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text(input_ids, attention_mask) @ self.prototypes.T * self.inv_tau + self.bias
