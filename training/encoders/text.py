"""The pretrained text encoder: a transformers model (hub id or local path), mean-pooled over the mask.

`TextEncoder` maps `TextTokenizer`'s (input_ids, attention_mask) to one vector per text.
`embed_texts` runs a frozen encoder over many texts, batched by length, through the shared feature
cache (`training/features.py`), so a frozen encoder embeds a text once.
Nothing downloads silently: a local folder loads offline; a hub id is what the user asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .tokenizers import TextTokenizer

__all__ = ["TextEncoder", "embed_texts", "mean_pool", "tunable_copy"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors [B, L, H] where mask [B, L] is 1; an all-zero mask gives zeros."""
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


POOLINGS = {"mean": 1, "last4": 4}  # how many of the last hidden layers are averaged before mean-pooling


class TextEncoder(nn.Module):
    """forward(input_ids, attention_mask) -> mean-pooled hidden states [B, hidden]: of the last
    layer (`pooling="mean"`), or the mean of the last four layers (`"last4"`)."""

    def __init__(self, backbone: nn.Module, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}: one of {sorted(POOLINGS)}")
        layers = getattr(getattr(backbone, "config", None), "num_hidden_layers", None)
        if layers is not None and POOLINGS[pooling] > layers:
            raise ValueError(f"pooling {pooling!r} averages {POOLINGS[pooling]} layers; this encoder has {layers}")
        self.backbone = backbone
        self.pooling = pooling

    @property
    def dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, pooling: str = "mean") -> TextEncoder:
        """Weights from a local folder (offline) or a hub id; attention in plain ops so it exports."""
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # an unused pooler's "newly initialized" report is noise
        hf_logging.disable_progress_bar()
        return cls(AutoModel.from_pretrained(str(name_or_path), attn_implementation="eager"), pooling=pooling)

    @classmethod
    def from_config_of(cls, name_or_path: str | Path, pooling: str = "mean") -> TextEncoder:
        """The same architecture with fresh weights, for a checkpoint's state dict to fill."""
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(name_or_path))
        return cls(AutoModel.from_config(config, attn_implementation="eager"), pooling=pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        layers = POOLINGS[self.pooling]
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=layers > 1)
        hidden = out.last_hidden_state if layers == 1 else torch.stack(out.hidden_states[-layers:]).mean(dim=0)
        return mean_pool(hidden, attention_mask)


def tunable_copy(encoder: TextEncoder, layers: int) -> TextEncoder:
    """A copy of `encoder` whose top `layers` transformer layers train; the rest stays frozen."""
    import copy

    tuned = copy.deepcopy(encoder)
    for p in tuned.parameters():
        p.requires_grad_(False)
    blocks = tuned.backbone.encoder.layer
    if not 0 < layers <= len(blocks):
        raise ValueError(f"finetune_layers must be in 1..{len(blocks)} (the encoder's layers), not {layers}")
    for block in blocks[len(blocks) - layers:]:
        for p in block.parameters():
            p.requires_grad_(True)
    return tuned


def embed_texts(encoder: TextEncoder, tokenizer: TextTokenizer, texts: Sequence[str], *,
                cache_dir: str | Path | None = None, batch_size: int = 64,
                progress: bool = False) -> np.ndarray:
    """float32 [N, hidden]: the encoder's (eval mode) mean-pooled vectors of `texts`, batched by
    length. With `cache_dir`, through the shared feature cache there (`training.features`: keyed
    by the encoder's content fingerprint, the tokenizer's prefix and max_len, and each text)."""
    from ..features import text_features

    return text_features(encoder, tokenizer, texts, root=cache_dir, batch_size=batch_size, progress=progress)
