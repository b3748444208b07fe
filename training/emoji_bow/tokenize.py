"""Hashed character n-grams: emoji_bow's whole preprocessing, shared by training, export and scoring.

A text is NFKC-normalised and lower-cased; every character min_n..max_n-gram (in order of position;
1..3 by default, emoji_bow trains with 1..2) maps to `1 + crc32(utf-8 bytes) % buckets`, id 0 being
padding. crc32 is stable across processes and
machines, unlike Python's `hash`.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["HashedNgramTokenizer"]

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class HashedNgramTokenizer:
    """Text → (ids int64 [B, L], mask float32 [B, L]) with L = the longest row, at most `max_len`."""

    kind: ClassVar[str] = "hashed_char_ngrams"
    buckets: int = 1 << 16
    min_n: int = 1
    max_n: int = 3
    max_len: int = 512

    @property
    def vocab_size(self) -> int:
        """Embedding rows needed: the buckets plus the padding id 0."""
        return self.buckets + 1

    @staticmethod
    def normalize(text: str) -> str:
        return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()

    def ngrams(self, text: str) -> list[str]:
        """Character n-grams of the normalised text, by start position then length."""
        text = self.normalize(text)
        return [text[i:i + n] for i in range(len(text)) for n in range(self.min_n, self.max_n + 1)
                if i + n <= len(text)]

    def ids(self, text: str) -> list[int]:
        """Hashed ids of the first `max_len` n-grams."""
        return [1 + zlib.crc32(g.encode("utf-8")) % self.buckets for g in self.ngrams(text)[:self.max_len]]

    def encode(self, texts: Sequence[str], *, pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pad a batch to its longest row (or `pad_to`); an empty text becomes one padding id, mask 0."""
        rows = [self.ids(t if isinstance(t, str) else "") for t in texts]
        width = max([1, *(len(r) for r in rows)]) if pad_to is None else pad_to
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.float32)
        for i, row in enumerate(rows):
            row = row[:width]
            ids[i, :len(row)] = row
            mask[i, :len(row)] = 1.0
        return ids, mask

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HashedNgramTokenizer:
        if data.get("kind") != cls.kind:
            raise ValueError(f"not a {cls.kind} tokenizer: kind={data.get('kind')!r}")
        return cls(**{k: int(v) for k, v in data.items() if k != "kind"})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> HashedNgramTokenizer:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot read tokenizer {path}: {exc}") from exc
