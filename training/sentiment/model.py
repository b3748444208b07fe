"""sentiment: does a post (its text and its image) read positive, neutral or negative?

Built bottom-up. The encoders are the shared ones: e5 for the text (`TextEncoder`, multilingual),
EfficientNet-Lite0 for the image (`ImageBackbone`, its vector L2-normalised as the feature cache
stores it). `FusionHead` starts from their vectors, so it trains on cached features:

* each vector is projected to `hidden_dim` (linear, LayerNorm, GELU, dropout); a post without an
  image (`has_image` 0) gets a learned `no_image` vector in place of its image's, so text-only
  inputs (comments, posts whose image is missing) score through the same head;
* fusion `concat` (the two side by side, an MLP), `gated` (a learned sigmoid gate per dimension
  mixing text and image, as in gated multimodal units) or `attention` (the seed's best: a learned
  query token, the text token and the image token through multi-head self-attention and a
  feed-forward block, pre-norm; the query token's output is read; a missing image's token is masked
  out);
* `modalities` `text` or `image` ablate the other input: it is replaced by its learned vector;
* a linear classifier over the 3 classes; `EnsembleHead` averages the probabilities of heads
  trained from different seeds.

`SentimentModel` puts encoders and head together for export and scoring: forward(input_ids,
attention_mask, pixels, has_image) -> log-probabilities [B, 3] (the graph's `logits` output: a
softmax of it gives the probabilities back exactly, as the ranking head's scorer applies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FUSIONS", "LABELS", "MODALITIES", "EnsembleHead", "FusionHead", "SelfAttention", "SentimentConfig", "SentimentModel"]

LABELS = ("positive", "neutral", "negative")
FUSIONS = ("concat", "gated", "attention")
MODALITIES = ("both", "text", "image")


@dataclass
class SentimentConfig:
    text_dim: int = 384  # the text encoder's output width
    image_dim: int = 1280  # EfficientNet-Lite0's
    fusion: str = "attention"
    modalities: str = "both"
    hidden_dim: int = 256
    heads: int = 4
    dropout: float = 0.2
    num_classes: int = len(LABELS)

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {list(FUSIONS)}, not {self.fusion!r}")
        if self.modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {list(MODALITIES)}, not {self.modalities!r}")
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not a multiple of heads {self.heads}")


def _project(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.GELU(), nn.Dropout(dropout))


class SelfAttention(nn.Module):
    """Multi-head self-attention in plain ops (torch's fused kernel does not export to ONNX):
    x [B, T, D], ignore [B, T] (True: a key no token attends to) -> [B, T, D]."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(ignore[:, None, None, :], float("-inf"))
        weights = self.drop(torch.softmax(scores, dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, d))


class FusionHead(nn.Module):
    """(text [B, text_dim], image [B, image_dim], has_image [B]) -> logits [B, num_classes]."""

    def __init__(self, config: SentimentConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.text_proj = _project(config.text_dim, d, config.dropout)
        self.image_proj = _project(config.image_dim, d, config.dropout)
        self.no_image = nn.Parameter(torch.zeros(d))
        self.no_text = nn.Parameter(torch.zeros(d))
        if config.fusion == "concat":
            self.fuse = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Dropout(config.dropout))
        elif config.fusion == "gated":
            self.gate = nn.Linear(2 * d, d)
        else:
            self.query = nn.Parameter(torch.randn(d) * 0.02)
            self.kind = nn.Parameter(torch.randn(3, d) * 0.02)  # query, text, image
            self.norm1, self.norm2, self.norm_out = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = SelfAttention(d, config.heads, config.dropout)
            self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(2 * d, d))
        self.classifier = nn.Linear(d, config.num_classes)

    def forward(self, text: torch.Tensor, image: torch.Tensor, has_image: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        batch = text.shape[0]
        t = self.text_proj(text)
        if cfg.modalities == "image":
            t = self.no_text.expand(batch, -1)
        seen = has_image.to(t.dtype).reshape(batch, 1)
        if cfg.modalities == "text":
            seen = torch.zeros_like(seen)
        i = seen * self.image_proj(image) + (1 - seen) * self.no_image
        if cfg.fusion == "concat":
            h = self.fuse(torch.cat([t, i], dim=-1))
        elif cfg.fusion == "gated":
            g = torch.sigmoid(self.gate(torch.cat([t, i], dim=-1)))
            h = g * t + (1 - g) * i
        else:
            tokens = torch.stack([self.query.expand(batch, -1), t, i], dim=1) + self.kind
            # the image token is masked where there is none (the query and text are always there)
            ignore = torch.stack([torch.zeros_like(seen), torch.zeros_like(seen), 1 - seen], dim=1).squeeze(-1) > 0.5
            x = self.norm1(tokens)
            tokens = tokens + self.attn(x, ignore)
            tokens = tokens + self.ffn(self.norm2(tokens))
            h = self.norm_out(tokens[:, 0])
        return self.classifier(h)


class EnsembleHead(nn.Module):
    """Heads trained alike from different seeds: forward gives the log of their mean softmax (so a
    softmax of it is the mean probability), with FusionHead's signature."""

    def __init__(self, heads: list[FusionHead]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, text: torch.Tensor, image: torch.Tensor, has_image: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(h(text, image, has_image), dim=-1) for h in self.heads]).mean(dim=0)
        return torch.log(probs.clamp(min=1e-12))


class SentimentModel(nn.Module):
    """Encoders and head together: forward(input_ids, attention_mask, pixels, has_image) -> log-probabilities."""

    def __init__(self, text_encoder: nn.Module, image_backbone: nn.Module, head: FusionHead | EnsembleHead) -> None:
        super().__init__()
        self.text_encoder, self.image_backbone, self.head = text_encoder, image_backbone, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixels: torch.Tensor,
                has_image: torch.Tensor) -> torch.Tensor:
        text = self.text_encoder(input_ids, attention_mask)
        image = F.normalize(self.image_backbone(pixels), dim=-1)
        return torch.log_softmax(self.head(text, image, has_image), dim=-1)
