"""Preprocessors: records in, the named arrays a model's graph takes out. No torch here.

One object per input kind is used by training, ONNX export and scoring alike, and is saved into the
model folder (`preprocessor.json`, plus the tokenizer's files), so nothing is preprocessed twice in
two ways. Each preprocessor knows

* `encode(records)`: the arrays, by the graph's input names;
* `dynamic_axes`: which axes vary (a batch always; a token axis `tokens` only where there is one;
  a `days` axis for sequences), for the exporter;
* `sample_inputs()`: inputs to trace with (every varying axis >= 2, or the exporter freezes it);
* `parity_inputs()`: at least three inputs of shapes the trace never saw, for the parity check;
* `length(record)`: a sort key, so scoring batches records of similar length;
* `to_dict()` / `save(folder)` and `load_preprocessor(folder)`.

Kinds: `text` (a tokenizer, optionally removing emote tokens first), `text_ngrams` (the same text
through a second, hashed n-gram tokenizer too: a model with a lexical side), `image` (RGB, resize,
centre crop, normalise), `image_text` (both: a post), `sequence` (a [days, features] float matrix
with a mask: the trend windows).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from .encoders.tokenizers import HashedNgramTokenizer, Tokenizer, bundle_tokenizer, tokenizer_from_dict

__all__ = [
    "PREPROCESSOR_FILE",
    "TEXT_KINDS",
    "ImagePreprocessor",
    "ImageTextPreprocessor",
    "Preprocessor",
    "SequencePreprocessor",
    "TextNgramPreprocessor",
    "TextPreprocessor",
    "image_pixels",
    "image_problem",
    "load_preprocessor",
    "preprocessor_from_dict",
]

log = logging.getLogger(__name__)
PREPROCESSOR_FILE = "preprocessor.json"
TEXT_KINDS = ("text", "text_ngrams")  # preprocessors whose records are plain texts
# Texts of several lengths (an empty one too) for parity checks: sizes no trace used.
PARITY_TEXTS = ("哈哈哈哈哈哈笑死我了，这也太离谱了吧[doge]", "狗头保命", "",
                "前方高能预警！！！up主太强了，三连支持 " * 3, "呜呜呜好感动", "ok", "这个视频我能看一百遍")
# A text model's inputs to trace with (two rows, so the batch and token axes vary), and its three
# parity batches: five rows of mixed lengths, the longest text alone, three more.
SAMPLE_TEXTS = ("导出样例 sample text", "第二个例子，长一点的句子")
PARITY_BATCHES = (PARITY_TEXTS[:5], (PARITY_TEXTS[3],), PARITY_TEXTS[4:])


class Preprocessor(Protocol):
    kind: ClassVar[str]

    @property
    def input_names(self) -> tuple[str, ...]: ...

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]: ...

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]: ...

    def sample_inputs(self) -> dict[str, np.ndarray]: ...

    def parity_inputs(self) -> list[dict[str, np.ndarray]]: ...

    def length(self, record: Any) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def save(self, folder: str | Path) -> Path: ...


def _write(folder: str | Path, data: Mapping[str, Any]) -> Path:
    path = Path(folder) / PREPROCESSOR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


# -- text -------------------------------------------------------------------------------------------
def _strip_emotes(text: str) -> str:
    from emopulse.ingest import strip_tokens

    return strip_tokens(text)


_URL = re.compile(r"https?(?::/\S*|…)|www\.\S+")
_HANDLE = re.compile(r"(?<![\w@])@\w+")
_SPACE = re.compile(r"\s+")


def _social(text: str) -> str:
    """Posts and tweets: links dropped, @handles made `@user`, a leading `RT` dropped, spaces
    collapsed (the words, hashtags and emotes stay)."""
    text = _HANDLE.sub("@user", _URL.sub(" ", text))
    text = re.sub(r"^\s*RT\s+(?=@user)", "", text)
    return _SPACE.sub(" ", text).strip()


_CLEANERS: dict[str, Callable[[str], str]] = {"none": lambda t: t, "strip_emotes": _strip_emotes,
                                              "social": _social}


@dataclass(frozen=True)
class TextPreprocessor:
    """Texts → `input_ids`, `attention_mask` [batch, tokens] through a tokenizer.

    `clean` runs first: `strip_emotes` removes every `[emote]` token (an emote model must never
    see its labels in its input), `social` drops links and anonymises @handles (posts, tweets),
    `none` leaves the text alone."""

    tokenizer: Tokenizer
    clean: str = "none"
    kind: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        if self.clean not in _CLEANERS:
            raise ValueError(f"unknown text cleaning {self.clean!r}: one of {sorted(_CLEANERS)}")

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("input_ids", "attention_mask")

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch", 1: "tokens"} for name in self.input_names}

    def texts(self, records: Sequence[Any]) -> list[str]:
        """The cleaned texts (anything not a string is an empty text)."""
        cleaner = _CLEANERS[self.clean]
        return [cleaner(r) if isinstance(r, str) else "" for r in records]

    def encode(self, records: Sequence[Any], *, pad_to_max: bool = False) -> dict[str, np.ndarray]:
        ids, mask = self.tokenizer.encode(self.texts(records), pad_to_max=pad_to_max)
        return {"input_ids": ids, "attention_mask": mask}

    def sample_inputs(self) -> dict[str, np.ndarray]:
        return self.encode(list(SAMPLE_TEXTS))

    def parity_inputs(self) -> list[dict[str, np.ndarray]]:
        return [self.encode(list(batch)) for batch in PARITY_BATCHES]

    def length(self, record: Any) -> int:
        return len(record) if isinstance(record, str) else 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "clean": self.clean, "tokenizer": self.tokenizer.to_dict()}

    def save(self, folder: str | Path) -> Path:
        """Write `preprocessor.json`, with a transformers tokenizer's files beside it."""
        bundled = bundle_tokenizer(self.tokenizer, folder)
        return _write(folder, {**self.to_dict(), "tokenizer": bundled.to_dict()})


@dataclass(frozen=True)
class TextNgramPreprocessor:
    """Texts → the text preprocessor's `input_ids`, `attention_mask`, and the same cleaned texts'
    hashed n-grams as `ngram_ids`, `ngram_mask` [batch, ngrams] (`HashedNgramTokenizer`): for a
    model that reads a pretrained encoder's vector and a bag of n-grams side by side."""

    text: TextPreprocessor
    ngrams: HashedNgramTokenizer
    kind: ClassVar[str] = "text_ngrams"

    @property
    def tokenizer(self) -> Tokenizer:
        return self.text.tokenizer

    @property
    def input_names(self) -> tuple[str, ...]:
        return (*self.text.input_names, "ngram_ids", "ngram_mask")

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {**self.text.dynamic_axes, "ngram_ids": {0: "batch", 1: "ngrams"}, "ngram_mask": {0: "batch", 1: "ngrams"}}

    def texts(self, records: Sequence[Any]) -> list[str]:
        return self.text.texts(records)

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        cleaned = self.text.texts(records)
        ids, mask = self.text.tokenizer.encode(cleaned)
        ngram_ids, ngram_mask = self.ngrams.encode(cleaned)
        return {"input_ids": ids, "attention_mask": mask, "ngram_ids": ngram_ids, "ngram_mask": ngram_mask}

    def sample_inputs(self) -> dict[str, np.ndarray]:
        return self.encode(list(SAMPLE_TEXTS))

    def parity_inputs(self) -> list[dict[str, np.ndarray]]:
        return [self.encode(list(batch)) for batch in PARITY_BATCHES]

    def length(self, record: Any) -> int:
        return self.text.length(record)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text.to_dict(), "ngrams": self.ngrams.to_dict()}

    def save(self, folder: str | Path) -> Path:
        bundled = bundle_tokenizer(self.text.tokenizer, folder)
        return _write(folder, {**self.to_dict(), "text": {**self.text.to_dict(), "tokenizer": bundled.to_dict()}})


# -- images -----------------------------------------------------------------------------------------
def image_pixels(image: Any, *, size: int, resize: int, mean: float, std: float) -> np.ndarray:
    """One image (a PIL image or a path) → float32 [3, size, size]: RGB, shorter side to `resize`,
    centre crop `size`, `(x / 255 - mean) / std`."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        with Image.open(image) as opened:
            image = opened.convert("RGB")
    image = image.convert("RGB")
    scale = resize / min(image.size)
    width = max(size, round(image.width * scale))
    height = max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (pixels - mean) / std


def image_problem(path: Any) -> str | None:
    """Why the image file at `path` cannot be used (missing, not an image, truncated: it is decoded
    whole, as training and scoring will), or None when it can."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
        return f"{type(exc).__name__}: {exc}"
    return None


def _sample_images(n: int, size: int, seed: int) -> list[Any]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    shapes = [(size + 40, size), (size, size * 2), (size // 2 + 1, size // 2 + 7), (size, size)]
    return [Image.fromarray(rng.integers(0, 256, (*shapes[i % 4], 3), dtype=np.uint8))
            for i in range(n)]


@dataclass(frozen=True)
class ImagePreprocessor:
    """Images (PIL or paths) → `pixels` float32 [batch, 3, size, size] (EfficientNet-Lite's
    preprocessing by default)."""

    size: int = 224
    resize: int = 256
    mean: float = 0.498
    std: float = 0.502
    kind: ClassVar[str] = "image"

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("pixels",)

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"pixels": {0: "batch"}}

    def pixels(self, images: Sequence[Any]) -> np.ndarray:
        arrays = [image_pixels(i, size=self.size, resize=self.resize, mean=self.mean, std=self.std)
                  for i in images]
        return np.stack(arrays) if arrays else np.zeros((0, 3, self.size, self.size), np.float32)

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        return {"pixels": self.pixels(records)}

    def sample_inputs(self) -> dict[str, np.ndarray]:
        return self.encode(_sample_images(2, self.size, seed=0))

    def parity_inputs(self) -> list[dict[str, np.ndarray]]:
        return [self.encode(_sample_images(n, self.size, seed=n)) for n in (1, 3, 5)]

    def length(self, record: Any) -> int:
        return 0  # every image becomes the same size

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    def save(self, folder: str | Path) -> Path:
        return _write(folder, self.to_dict())


@dataclass(frozen=True)
class ImageTextPreprocessor:
    """Posts: records with `text` and `image` (a mapping, or a `(text, image)` pair; `image` may be
    None) → the text's arrays, `pixels`, and `has_image` float32 [batch] (0: no image, zeros; an
    image that cannot be read counts as none, logged: callers that must know check `image_problem`
    first)."""

    text: TextPreprocessor
    image: ImagePreprocessor = field(default_factory=ImagePreprocessor)
    kind: ClassVar[str] = "image_text"

    @staticmethod
    def _parts(record: Any) -> tuple[Any, Any]:
        if isinstance(record, Mapping):
            return record.get("text"), record.get("image")
        text, image = record
        return text, image

    @property
    def input_names(self) -> tuple[str, ...]:
        return (*self.text.input_names, "pixels", "has_image")

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {**self.text.dynamic_axes, "pixels": {0: "batch"}, "has_image": {0: "batch"}}

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        parts = [self._parts(r) for r in records]
        out = self.text.encode([t for t, _ in parts])
        size = self.image.size
        pixels = np.zeros((len(parts), 3, size, size), np.float32)
        has = np.zeros(len(parts), np.float32)
        for i, (_, image) in enumerate(parts):
            if image is None:
                continue
            try:
                pixels[i] = self.image.pixels([image])[0]
            except Exception as exc:  # noqa: BLE001 - an unreadable image: the text alone, as without one
                log.warning("image %s cannot be read (%s): scored on its text alone", image, exc)
                continue
            has[i] = 1.0
        return {**out, "pixels": pixels, "has_image": has}

    def sample_inputs(self) -> dict[str, np.ndarray]:
        images = _sample_images(2, self.image.size, seed=0)
        return self.encode([("导出样例 sample text", images[0]), ("第二个例子，长一点的句子", images[1])])

    def parity_inputs(self) -> list[dict[str, np.ndarray]]:
        images = _sample_images(5, self.image.size, seed=9)
        return [self.encode([(PARITY_TEXTS[i], images[i] if i % 2 == 0 else None) for i in range(n)])
                for n in (1, 3, 5)]

    def length(self, record: Any) -> int:
        return self.text.length(self._parts(record)[0])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text.to_dict(), "image": self.image.to_dict()}

    def save(self, folder: str | Path) -> Path:
        bundled = bundle_tokenizer(self.text.tokenizer, folder)
        text = {**self.text.to_dict(), "tokenizer": bundled.to_dict()}
        return _write(folder, {"kind": self.kind, "text": text, "image": self.image.to_dict()})


# -- sequences --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SequencePreprocessor:
    """Sequences (a [days, features] array each, NaN where a day has no value) → `values` float32
    [batch, days, features] (NaN as 0, after `(x - mean) / std` per feature) and `mask` float32
    [batch, days, features] (1: observed). `mean`/`std` come from the training period only."""

    features: tuple[str, ...]
    days: int = 60
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    kind: ClassVar[str] = "sequence"

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.mean and len(self.mean) != n or self.std and len(self.std) != n:
            raise ValueError(f"mean/std need one value per feature ({n})")

    @classmethod
    def fit(cls, sequences: np.ndarray, features: Sequence[str]) -> SequencePreprocessor:
        """Statistics per feature over `sequences` [N, days, features] (NaN ignored)."""
        flat = np.asarray(sequences, np.float64).reshape(-1, len(features))
        mean = np.nan_to_num(np.nanmean(flat, axis=0)) if flat.size else np.zeros(len(features))
        std = np.nan_to_num(np.nanstd(flat, axis=0), nan=1.0) if flat.size else np.ones(len(features))
        std = np.where(std > 1e-12, std, 1.0)
        return cls(features=tuple(features), days=int(np.shape(sequences)[1]),
                   mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("values", "mask")

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"values": {0: "batch", 1: "days"}, "mask": {0: "batch", 1: "days"}}

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        n = len(self.features)
        arrays = [np.asarray(r, np.float32).reshape(-1, n) for r in records]
        days = max([self.days, *(len(a) for a in arrays)]) if arrays else self.days
        values = np.full((len(arrays), days, n), np.nan, np.float32)
        for i, a in enumerate(arrays):
            values[i, days - len(a):] = a  # right-aligned: the last day is the window's end
        mask = (~np.isnan(values)).astype(np.float32)
        mean = np.asarray(self.mean or [0.0] * n, np.float32)
        std = np.asarray(self.std or [1.0] * n, np.float32)
        return {"values": np.nan_to_num((values - mean) / std).astype(np.float32), "mask": mask}

    def _random(self, batch: int, days: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        data = rng.normal(size=(batch, days, len(self.features))).astype(np.float32)
        data[rng.random(data.shape) < 0.1] = np.nan
        return self.encode(list(data))

    def sample_inputs(self) -> dict[str, np.ndarray]:
        return self._random(2, self.days, seed=0)

    def parity_inputs(self) -> list[dict[str, np.ndarray]]:
        return [self._random(1, self.days, 1), self._random(3, self.days + 5, 2),
                self._random(7, self.days, 3)]

    def length(self, record: Any) -> int:
        return int(np.shape(record)[0])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "features": list(self.features), "days": self.days,
                "mean": list(self.mean), "std": list(self.std)}

    def save(self, folder: str | Path) -> Path:
        return _write(folder, self.to_dict())


# -- loading ----------------------------------------------------------------------------------------
def _tokenizer_in(folder: Path | None, data: Mapping[str, Any]) -> Tokenizer:
    data = dict(data)
    if folder is not None and data.get("kind") == "transformers" and (folder / data["path"]).is_dir():
        data["path"] = str(folder / data["path"])
    return tokenizer_from_dict(data)


def preprocessor_from_dict(data: Mapping[str, Any], folder: str | Path | None = None) -> Preprocessor:
    """Rebuild a preprocessor from `to_dict()` (a tokenizer's relative files from `folder`)."""
    folder = None if folder is None else Path(folder)
    kind = data.get("kind")
    if kind == TextPreprocessor.kind:
        return TextPreprocessor(_tokenizer_in(folder, data["tokenizer"]), clean=data.get("clean", "none"))
    if kind == TextNgramPreprocessor.kind:
        text = data["text"]
        ngrams = tokenizer_from_dict(data["ngrams"])
        if not isinstance(ngrams, HashedNgramTokenizer):
            raise ValueError(f"a text_ngrams preprocessor needs a hashed n-gram tokenizer, not {ngrams.kind!r}")
        return TextNgramPreprocessor(TextPreprocessor(_tokenizer_in(folder, text["tokenizer"]),
                                                      clean=text.get("clean", "none")), ngrams)
    if kind == ImagePreprocessor.kind:
        return ImagePreprocessor(**{k: v for k, v in data.items() if k != "kind"})
    if kind == ImageTextPreprocessor.kind:
        text = data["text"]
        return ImageTextPreprocessor(
            TextPreprocessor(_tokenizer_in(folder, text["tokenizer"]), clean=text.get("clean", "none")),
            ImagePreprocessor(**{k: v for k, v in data["image"].items() if k != "kind"}))
    if kind == SequencePreprocessor.kind:
        return SequencePreprocessor(features=tuple(data["features"]), days=int(data["days"]),
                                    mean=tuple(data["mean"]), std=tuple(data["std"]))
    raise ValueError(f"unknown preprocessor kind {kind!r}")


def load_preprocessor(folder: str | Path) -> Preprocessor:
    """The preprocessor saved in a model folder; a clear error naming the file otherwise."""
    path = Path(folder) / PREPROCESSOR_FILE
    try:
        return preprocessor_from_dict(json.loads(path.read_text(encoding="utf-8")), path.parent)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read preprocessor {path}: {exc}") from exc
