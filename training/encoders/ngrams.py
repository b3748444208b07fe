"""The light text encoder: a bag of hashed character n-grams (`HashedNgramTokenizer`), trained from
scratch. Needs no pretrained weights, so it runs anywhere in seconds (the demo's profile).

forward(input_ids, attention_mask) -> [B, dim]: the masked sum of n-gram embeddings over
sqrt(n-gram count), which keeps a long text's evidence stronger than a mean would.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NgramBagEncoder"]


class NgramBagEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        nn.init.normal_(self.embed.weight, std=0.1)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    @property
    def dim(self) -> int:
        return self.embed.embedding_dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(self.embed.weight.dtype).unsqueeze(-1)
        summed = (self.embed(input_ids) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1.0).sqrt()
