"""What every model's train config shares: profiles over flat defaults, and the text tokenizer a
config names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .encoders.tokenizers import TextTokenizer

__all__ = ["from_profile", "text_tokenizer"]

C = TypeVar("C")


def from_profile(cls: Callable[..., C], profiles: Mapping[str, Mapping[str, Any]], profile: str,
                 overrides: Mapping[str, Any], check: Callable[[C], C]) -> C:
    """`cls(profile=..., **profiles[profile], **overrides)` (None overrides ignored), checked."""
    if profile not in profiles:
        raise ValueError(f"unknown profile {profile!r}: one of {sorted(profiles)}")
    return check(cls(profile=profile, **{**profiles[profile], **{k: v for k, v in overrides.items() if v is not None}}))


def text_tokenizer(cfg: Any) -> TextTokenizer:
    """The pretrained encoder's tokenizer of a config with `text_encoder_path`, `max_len` and
    `text_prefix`; a clear error when no encoder is set."""
    if not cfg.text_encoder_path:
        raise ValueError("no text encoder: set text_encoder_path to a folder or model id "
                         "(offline: `emopulse models prepare` writes multilingual-e5-small)")
    return TextTokenizer(path=str(cfg.text_encoder_path), max_len=cfg.max_len, prefix=cfg.text_prefix)
