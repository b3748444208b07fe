"""The pretrained text encoder: a transformers model (hub id or local path), mean-pooled over the mask.

`TextEncoder` maps `TextTokenizer`'s (input_ids, attention_mask) to one vector per text.
`embed_texts` runs a frozen encoder over many texts, batched by length, with an on-disk cache
keyed by the encoder, the tokenizer settings and the text, so a frozen encoder embeds a text once.
Nothing downloads silently: a local folder loads offline; a hub id is what the user asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .tokenizers import TextTokenizer

__all__ = ["TextEncoder", "embed_texts", "encoder_fingerprint", "mean_pool"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors [B, L, H] where mask [B, L] is 1; an all-zero mask gives zeros."""
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """forward(input_ids, attention_mask) -> mean-pooled last hidden states [B, hidden]."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path) -> TextEncoder:
        """Weights from a local folder (offline) or a hub id; attention in plain ops so it exports."""
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # an unused pooler's "newly initialized" report is noise
        hf_logging.disable_progress_bar()
        return cls(AutoModel.from_pretrained(str(name_or_path), attn_implementation="eager"))

    @classmethod
    def from_config_of(cls, name_or_path: str | Path) -> TextEncoder:
        """The same architecture with fresh weights, for a checkpoint's state dict to fill."""
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(name_or_path))
        return cls(AutoModel.from_config(config, attn_implementation="eager"))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)


def encoder_fingerprint(name_or_path: str | Path) -> str:
    """A short id of an encoder: its folder's files (names, sizes, times), or the hub id itself."""
    path = Path(name_or_path)
    if not path.is_dir():
        return hashlib.sha256(f"id:{name_or_path}".encode()).hexdigest()[:16]
    digest = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@torch.inference_mode()
def embed_texts(encoder: TextEncoder, tokenizer: TextTokenizer, texts: Sequence[str], *,
                cache_dir: str | Path | None = None, batch_size: int = 64,
                progress: bool = False) -> np.ndarray:
    """float32 [N, hidden]: the encoder's (eval mode) mean-pooled vectors of `texts`.

    With `cache_dir`, vectors are read from and added to `<cache_dir>/<key>.npz`, the key naming
    the encoder's files and the tokenizer's prefix and max_len."""
    texts = [t if isinstance(t, str) else "" for t in texts]
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    cached: dict[str, np.ndarray] = {}
    cache_file = None
    if cache_dir is not None:
        setting = f"{encoder_fingerprint(tokenizer.path)}|{tokenizer.prefix}|{tokenizer.max_len}"
        cache_file = Path(cache_dir) / f"text-{hashlib.sha1(setting.encode()).hexdigest()[:16]}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as f:
                cached = dict(zip(f["keys"].tolist(), f["vectors"], strict=True))
    todo = sorted({k: i for i, k in enumerate(keys) if k not in cached}.values(), key=lambda i: len(texts[i]))
    was_training = encoder.training
    encoder.eval()
    from rich.progress import Progress

    with Progress(disable=not progress or not todo, transient=True) as bar:
        task = bar.add_task("embedding texts", total=len(todo))
        for start in range(0, len(todo), batch_size):
            rows = todo[start:start + batch_size]
            ids, mask = tokenizer.encode([texts[i] for i in rows])
            vectors = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
            cached.update({keys[i]: v for i, v in zip(rows, vectors, strict=True)})
            bar.advance(task, len(rows))
    encoder.train(was_training)
    if cache_file is not None and todo:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(cached)), vectors=np.stack(list(cached.values())))
        tmp.replace(cache_file)
    dim = encoder.dim
    return np.stack([cached[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, dim), np.float32)
