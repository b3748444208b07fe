"""emotions (EQN): how strongly does a text carry each of the 28 GoEmotions emotions?

Built bottom-up. The text encoder is the shared e5 (`TextEncoder`, multilingual, so Chinese
comments get intensities too); `EmotionHead` starts from its mean-pooled vector, so it trains on
cached features:

* the vector is normalised (LayerNorm), then `layers` blocks of linear, GELU and dropout at
  `hidden_dim`, then one linear output per emotion: logits, whose sigmoid is the intensity in
  [0, 1] (EQN's "energy level" is 10 x that intensity, quantised by the head, `serving.heads`);
* `EnsembleHead` averages the intensities of heads trained from different seeds and gives the
  logit of that mean back, so the sigmoid the multilabel scorer applies returns the mean exactly.

`EmotionModel` puts encoder and head together for export and scoring: forward(input_ids,
attention_mask) -> logits [B, emotions].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LOSSES", "EmotionConfig", "EmotionHead", "EmotionModel", "EnsembleHead", "intensity_loss"]

LOSSES = ("mse", "bce")


@dataclass
class EmotionConfig:
    text_dim: int = 384
    num_labels: int = 28
    hidden_dim: int = 512
    layers: int = 1  # hidden blocks (0: a linear probe on the normalised vector)
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.num_labels < 1 or self.text_dim < 1 or self.layers < 0 or self.hidden_dim < 1:
            raise ValueError(f"need num_labels, text_dim, hidden_dim >= 1 and layers >= 0 (got {self})")


class EmotionHead(nn.Module):
    """forward(text [B, text_dim]) -> logits [B, num_labels]."""

    def __init__(self, cfg: EmotionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        blocks: list[nn.Module] = [nn.LayerNorm(cfg.text_dim)]
        width = cfg.text_dim
        for _ in range(cfg.layers):
            blocks += [nn.Linear(width, cfg.hidden_dim), nn.GELU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden_dim
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, cfg.num_labels)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(text))


class EnsembleHead(nn.Module):
    """Heads trained alike from different seeds: the logit of their mean intensity."""

    def __init__(self, heads: list[EmotionHead]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        mean = torch.stack([torch.sigmoid(h(text)) for h in self.heads]).mean(dim=0).clamp(1e-6, 1 - 1e-6)
        return torch.log(mean) - torch.log1p(-mean)


class EmotionModel(nn.Module):
    """Encoder and head together: forward(input_ids, attention_mask) -> logits [B, emotions]."""

    def __init__(self, text_encoder: nn.Module, head: EmotionHead | EnsembleHead) -> None:
        super().__init__()
        self.text_encoder, self.head = text_encoder, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.text_encoder(input_ids, attention_mask))


def intensity_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`mse`: mean squared error of the intensities (sigmoid) against the targets (EQN's choice);
    `bce`: binary cross-entropy of the logits (targets may be soft: expanded labels)."""
    if name == "mse":
        return torch.mean((torch.sigmoid(logits.float()) - target) ** 2)
    if name == "bce":
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
    raise ValueError(f"unknown loss {name!r}: one of {list(LOSSES)}")
