"""Text preprocessing for the text encoders, shared by training, export and scoring (no torch here).

Both tokenizers turn texts into `(input_ids int64 [B, L], attention_mask int64 [B, L])`, L the
batch's longest row (at most `max_len`), and save to / load from one small JSON file:

- `TextTokenizer`: a transformers tokenizer (folder or hub id) with a fixed prefix (e5 models
  expect "query: "), truncated to `max_len` tokens; for `TextEncoder`.
- `HashedNgramTokenizer`: character n-grams hashed into buckets, no vocabulary to ship; for the
  light `NgramBagEncoder`. A text is NFKC-normalised and lower-cased; every min_n..max_n-gram (by
  position) maps to `1 + crc32(utf-8 bytes) % buckets`, id 0 being padding. crc32 is stable across
  processes and machines, unlike Python's `hash`.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HashedNgramTokenizer", "TextTokenizer", "Tokenizer", "bundle_tokenizer", "load_tokenizer", "save_tokenizer",
           "tokenizer_from_dict"]

_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"\w+")


def _texts(texts: Sequence[Any]) -> list[str]:
    return [t if isinstance(t, str) else "" for t in texts]


@dataclass(frozen=True)
class TextTokenizer:
    """A transformers tokenizer from `path` (a folder, or a hub id), prefix + truncation."""

    path: str
    max_len: int = 96
    prefix: str = ""
    _backend: Any = field(default=None, init=False, repr=False, compare=False)

    kind = "transformers"

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from transformers import AutoTokenizer

            object.__setattr__(self, "_backend", AutoTokenizer.from_pretrained(self.path))
        return self._backend

    def encode(self, texts: Sequence[str], *, pad_to_max: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Ids and mask; `pad_to_max` pads to `max_len` instead of the longest row (same results
        downstream: attention and pooling ignore padding)."""
        out = self.backend([self.prefix + t for t in _texts(texts)], max_length=self.max_len, truncation=True,
                           padding="max_length" if pad_to_max else "longest", return_tensors="np")
        return out["input_ids"].astype(np.int64), out["attention_mask"].astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "max_len": self.max_len, "prefix": self.prefix}


@dataclass(frozen=True)
class HashedNgramTokenizer:
    """Character n-grams hashed into `buckets` ids (0 is padding), the first `max_len` of a text.

    `char_wb` 1: the character n-grams are taken inside each word padded with a space on either
    side (as scikit-learn's `char_wb`), not across words; `word_max_n` > 0 adds word 1..n-grams
    (words: runs of letters and digits), hashed apart from the characters. The defaults are the
    emoji light encoder's character 1-3-grams."""

    buckets: int = 1 << 16
    min_n: int = 1
    max_n: int = 3
    max_len: int = 512
    char_wb: int = 0
    word_max_n: int = 0

    kind = "hashed_char_ngrams"

    @property
    def vocab_size(self) -> int:
        """Embedding rows needed: the buckets plus the padding id 0."""
        return self.buckets + 1

    @staticmethod
    def normalize(text: str) -> str:
        return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()

    def _chars(self, text: str) -> list[str]:
        return [text[i:i + n] for i in range(len(text)) for n in range(self.min_n, self.max_n + 1)
                if i + n <= len(text)]

    def ngrams(self, text: str) -> list[str]:
        """The normalised text's character n-grams by start position then length (within padded
        words with `char_wb`), then its word n-grams (`\x01`-prefixed, so no character n-gram
        collides with a word)."""
        text = self.normalize(text)
        if not self.char_wb:
            grams = self._chars(text)
        else:
            grams = [g for word in text.split(" ") if word for g in self._chars(f" {word} ")]
        if self.word_max_n:
            words = _WORDS.findall(text)
            grams += ["\x01" + " ".join(words[i:i + n]) for i in range(len(words))
                      for n in range(1, self.word_max_n + 1) if i + n <= len(words)]
        return grams

    def ids(self, text: str) -> list[int]:
        """Hashed ids of the first `max_len` n-grams."""
        return [1 + zlib.crc32(g.encode("utf-8")) % self.buckets for g in self.ngrams(text)[:self.max_len]]

    def encode(self, texts: Sequence[str], *, pad_to_max: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Pad a batch to its longest row (or `max_len`); an empty text is one padding id, mask 0."""
        rows = [self.ids(t) for t in _texts(texts)]
        width = self.max_len if pad_to_max else max([1, *(len(r) for r in rows)])
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return ids, mask

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


Tokenizer = TextTokenizer | HashedNgramTokenizer


def tokenizer_from_dict(data: Mapping[str, Any]) -> Tokenizer:
    """Rebuild either tokenizer from its `to_dict()`."""
    kind = data.get("kind")
    if kind == TextTokenizer.kind:
        return TextTokenizer(path=str(data["path"]), max_len=int(data["max_len"]), prefix=str(data.get("prefix", "")))
    if kind == HashedNgramTokenizer.kind:
        return HashedNgramTokenizer(**{k: int(v) for k, v in data.items() if k != "kind"})
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer file written by `save_tokenizer` (a relative transformers `path` is taken
    from the file's folder); a clear error naming the file otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") == TextTokenizer.kind and (path.parent / data["path"]).is_dir():
            data = {**data, "path": str(path.parent / data["path"])}
        return tokenizer_from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read tokenizer {path}: {exc}") from exc


def bundle_tokenizer(tokenizer: Tokenizer, folder: str | Path, *, name: str = "tokenizer_files") -> Tokenizer:
    """A copy of `tokenizer` that reads its files from `<folder>/<name>` (written here), so a model
    folder holds everything scoring needs; a hashed tokenizer has no files and comes back as is."""
    if not isinstance(tokenizer, TextTokenizer):
        return tokenizer
    tokenizer.backend.save_pretrained(str(Path(folder) / name))
    return TextTokenizer(path=name, max_len=tokenizer.max_len, prefix=tokenizer.prefix)
