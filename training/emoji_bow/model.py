"""emoji_bow: a bag of hashed character n-grams, summed and divided by sqrt(count), then one linear
layer to emote logits.

forward(ids int64 [B, L], mask float [B, L]) -> logits [B, num_labels]; plain tensors in and out,
so the same module trains, exports to ONNX and is checked for parity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["EmojiBow", "EmojiBowConfig"]


@dataclass
class EmojiBowConfig:
    vocab_size: int
    num_labels: int
    dim: int = 32
    dropout: float = 0.5


class EmojiBow(nn.Module):
    def __init__(self, config: EmojiBowConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim, padding_idx=0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.dim, config.num_labels)
        nn.init.normal_(self.embed.weight, std=0.1)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked sum of the n-gram embeddings over sqrt(n-gram count), then the linear head.

        sqrt pooling keeps the evidence of a long text stronger than a mean would (its norm grows
        like sqrt(n) for unrelated n-grams) without letting it grow linearly like a plain sum."""
        mask = mask.to(self.embed.weight.dtype).unsqueeze(-1)
        summed = (self.embed(ids) * mask).sum(dim=1)
        pooled = summed / mask.sum(dim=1).clamp(min=1.0).sqrt()
        return self.head(self.drop(pooled))
