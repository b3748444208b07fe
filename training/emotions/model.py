"""emotions (EQN): how strongly does a text carry each of the 28 GoEmotions emotions?

Built bottom-up. The text encoder is the shared e5 (`TextEncoder`, multilingual, so Chinese
comments get intensities too); `EmotionHead` starts from its mean-pooled vector, so it trains on
cached features:

* the vector is normalised (LayerNorm), then `layers` blocks of linear, GELU and dropout at
  `hidden_dim`, then one linear output per emotion: logits, whose sigmoid is the intensity in
  [0, 1] (EQN's "energy level" is 10 x that intensity, quantised by the head, `serving.heads`);
* with `ngram_buckets` > 0, a wide side: the text's hashed word and character n-grams
  (`TextNgramPreprocessor`) each add a learned weight per emotion to the logits (a bag of
  n-grams, its sum over the square root of its size: `NgramBagEncoder` with one dimension per
  emotion), a linear model over the words trained with the deep side ("wide and deep"), since a
  frozen sentence vector blurs the exact words an emotion often hangs on;
* `EnsembleHead` averages the intensities of heads trained from different seeds and gives the
  logit of that mean back, so the sigmoid the multilabel scorer applies returns the mean exactly.

`EmotionModel` puts encoder and head together for export and scoring: forward(input_ids,
attention_mask[, ngram_ids, ngram_mask]) -> logits [B, emotions].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..encoders.ngrams import NgramBagEncoder

__all__ = ["LOSSES", "EmotionConfig", "EmotionHead", "EmotionModel", "EnsembleHead", "intensity_loss"]

LOSSES = ("mse", "bce")


@dataclass
class EmotionConfig:
    text_dim: int = 384
    num_labels: int = 28
    hidden_dim: int = 512
    layers: int = 1  # hidden blocks (0: a linear probe on the normalised vector)
    dropout: float = 0.2
    ngram_buckets: int = 0  # > 0: the wide side over hashed n-grams (ids 1..buckets, 0 padding)

    def __post_init__(self) -> None:
        if self.num_labels < 1 or self.text_dim < 1 or self.layers < 0 or self.hidden_dim < 1 or self.ngram_buckets < 0:
            raise ValueError(f"need num_labels, text_dim, hidden_dim >= 1 and layers, ngram_buckets >= 0 (got {self})")


class EmotionHead(nn.Module):
    """forward(text [B, text_dim], ngram_ids [B, G], ngram_mask [B, G]) -> logits [B, num_labels]
    (the n-grams only with `ngram_buckets`)."""

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
        self.wide = None
        if cfg.ngram_buckets:
            self.wide = NgramBagEncoder(cfg.ngram_buckets + 1, cfg.num_labels)
            with torch.no_grad():  # starts near silent: the deep side leads, the words refine
                self.wide.embed.weight.normal_(0.0, 0.01)
                self.wide.embed.weight[0].zero_()

    def forward(self, text: torch.Tensor, ngram_ids: torch.Tensor | None = None,
                ngram_mask: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.out(self.body(text))
        if self.wide is not None:
            if ngram_ids is None or ngram_mask is None:
                raise ValueError("this head reads n-grams too: pass ngram_ids and ngram_mask")
            logits = logits + self.wide(ngram_ids, ngram_mask)
        return logits


class EnsembleHead(nn.Module):
    """Heads trained alike from different seeds: the logit of their mean intensity."""

    def __init__(self, heads: list[EmotionHead]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, text: torch.Tensor, ngram_ids: torch.Tensor | None = None,
                ngram_mask: torch.Tensor | None = None) -> torch.Tensor:
        mean = torch.stack([torch.sigmoid(h(text, ngram_ids, ngram_mask)) for h in self.heads]).mean(dim=0)
        mean = mean.clamp(1e-6, 1 - 1e-6)
        return torch.log(mean) - torch.log1p(-mean)


class EmotionModel(nn.Module):
    """Encoder and head together: forward(input_ids, attention_mask[, ngram_ids, ngram_mask]) ->
    logits [B, emotions]."""

    def __init__(self, text_encoder: nn.Module, head: EmotionHead | EnsembleHead) -> None:
        super().__init__()
        self.text_encoder, self.head = text_encoder, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, ngram_ids: torch.Tensor | None = None,
                ngram_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.text_encoder(input_ids, attention_mask), ngram_ids, ngram_mask)


def intensity_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`mse`: mean squared error of the intensities (sigmoid) against the targets (EQN's choice);
    `bce`: binary cross-entropy of the logits (targets may be soft: expanded labels)."""
    if name == "mse":
        return torch.mean((torch.sigmoid(logits.float()) - target) ** 2)
    if name == "bce":
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
    raise ValueError(f"unknown loss {name!r}: one of {list(LOSSES)}")
