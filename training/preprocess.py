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
with a mask), `window` (a trend window's raw days: counts, totals, text and image vectors).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
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
    "WINDOW_COUNTS",
    "WindowPreprocessor",
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


# -- trend windows ----------------------------------------------------------------------------------
WINDOW_COUNTS = ("posts", "likes", "collects", "comments")


@dataclass(frozen=True)
class WindowPreprocessor:
    """Trend windows → the trend model's inputs. A record is a mapping of one window's raw days,
    oldest first: `counts` [days, 4] (the category's posts, likes, collects, comments), `totals`
    [days] (all posts of the day), and optionally `text` [days, text_dim] with `text_mask` [days]
    (the mean text vector of the day's posts, 1 where the day has one) and `image`, `image_mask`
    (the same for images). Out:

    * `numbers` float32 [batch, days, 6]: log1p of the four counts and of the total, and the
      day's share (posts / total, 0 on a day without posts), each standardised with `mean`/`std`
      (fitted on the training period only: `fit`);
    * `text`, `text_mask`, `image`, `image_mask` (zeros where absent);
    * `summary` float32 [batch, 9]: figures of the whole window (`summary`), raw; the first is
      the category's share of all posts over the last `recent_days` days (persistence), the
      second over the whole window.

    `arrays(...)` does the same over batched arrays (training gathers them from a day matrix);
    `encode(records)` stacks records (left-padded with empty days to the longest) and calls it."""

    text_dim: int = 384
    image_dim: int = 1280
    days: int = 60
    recent_days: int = 30
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    kind: ClassVar[str] = "window"
    features: ClassVar[tuple[str, ...]] = ("log_posts", "log_likes", "log_collects", "log_comments",
                                           "log_all_posts", "share")
    summaries: ClassVar[tuple[str, ...]] = ("share_recent", "share_all", "share_7d", "share_14d", "share_slope",
                                            "log_share_change", "log_likes_per_post", "log_collects_per_post",
                                            "log_comments_per_post")
    share_summaries: ClassVar[int] = 4  # the first four are shares

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.mean and len(self.mean) != n or self.std and len(self.std) != n:
            raise ValueError(f"mean/std need one value per feature ({n})")
        if min(self.text_dim, self.image_dim, self.days, self.recent_days) < 1:
            raise ValueError("text_dim, image_dim, days and recent_days must be >= 1")

    @staticmethod
    def raw_numbers(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """[..., days, 6] before standardising (see the class docstring)."""
        counts = np.clip(np.asarray(counts, np.float64), 0, None)
        totals = np.clip(np.asarray(totals, np.float64), 0, None)
        share = np.divide(counts[..., 0], totals, out=np.zeros_like(totals), where=totals > 0)
        return np.concatenate([np.log1p(counts), np.log1p(totals)[..., None], share[..., None]], axis=-1)

    def fit(self, counts: np.ndarray, totals: np.ndarray) -> WindowPreprocessor:
        """This preprocessor with `mean`/`std` per feature over the days given ([..., 4], [...])."""
        flat = self.raw_numbers(counts, totals).reshape(-1, len(self.features))
        mean = flat.mean(axis=0) if len(flat) else np.zeros(len(self.features))
        std = flat.std(axis=0) if len(flat) else np.ones(len(self.features))
        std = np.where(std > 1e-9, std, 1.0)
        return replace(self, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("numbers", "text", "text_mask", "image", "image_mask", "summary")

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {**{name: {0: "batch", 1: "days"} for name in self.input_names[:-1]}, "summary": {0: "batch"}}

    def summary(self, counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """float64 [batch, 9] of whole windows (`summaries`), each free of the platform's volume
        (which grows; a level learned in one month would not hold in the next): the category's
        share of all posts over the last `recent_days` days (persistence), over the whole window,
        over the last 7 and 14 days; the least-squares slope of the daily share times the
        window's length; log of the last 14 days' share over the first 30 days' (each + 0.001);
        log of its likes, collects and comments per post ((n + 1) / (posts + 1))."""
        counts, totals = np.asarray(counts, np.float64), np.asarray(totals, np.float64)
        posts, days = counts[..., 0], counts.shape[1]

        def share(p: np.ndarray, t: np.ndarray) -> np.ndarray:
            p, t = p.sum(1), t.sum(1)
            return np.divide(p, t, out=np.zeros_like(t), where=t > 0)

        daily = np.divide(posts, totals, out=np.zeros_like(totals), where=totals > 0)
        x = np.arange(days) - (days - 1) / 2
        slope = (daily * x).sum(1) / max((x ** 2).sum(), 1e-12)
        recent = [share(posts[:, -n:], totals[:, -n:]) for n in (self.recent_days, days, 7, 14)]
        change = np.log((recent[3] + 1e-3) / (share(posts[:, :30], totals[:, :30]) + 1e-3))
        per_post = [np.log((counts[..., j].sum(1) + 1) / (posts.sum(1) + 1)) for j in (1, 2, 3)]
        return np.stack([*recent, slope * days, change, *per_post], axis=1)

    def arrays(self, counts: np.ndarray, totals: np.ndarray, text: np.ndarray | None = None,
               text_mask: np.ndarray | None = None, image: np.ndarray | None = None,
               image_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The graph's inputs from batched raw arrays: counts [B, D, 4], totals [B, D], ...."""
        counts = np.asarray(counts)
        if counts.ndim != 3 or counts.shape[-1] != len(WINDOW_COUNTS):
            raise ValueError(f"counts must be [batch, days, {len(WINDOW_COUNTS)}], not {list(counts.shape)}")
        b, d = counts.shape[:2]
        if np.shape(totals) != (b, d):
            raise ValueError(f"totals must be [batch, days] = {[b, d]}, not {list(np.shape(totals))}")
        n = len(self.features)
        mean = np.asarray(self.mean or [0.0] * n)
        std = np.asarray(self.std or [1.0] * n)
        numbers = ((self.raw_numbers(counts, totals) - mean) / std).astype(np.float32)

        def media(values: np.ndarray | None, mask: np.ndarray | None, dim: int, name: str) -> tuple[np.ndarray, np.ndarray]:
            if values is None:
                return np.zeros((b, d, dim), np.float32), np.zeros((b, d), np.float32)
            values = np.asarray(values, np.float32)
            if values.shape != (b, d, dim):
                raise ValueError(f"{name} must be [batch, days, {dim}] = {[b, d, dim]}, not {list(values.shape)}")
            m = (np.abs(values).sum(-1) > 0) if mask is None else np.asarray(mask) > 0
            m = m & np.isfinite(values).all(-1)
            return np.where(m[..., None], np.nan_to_num(values), 0.0).astype(np.float32), m.astype(np.float32)

        text_v, text_m = media(text, text_mask, self.text_dim, "text")
        image_v, image_m = media(image, image_mask, self.image_dim, "image")
        return {"numbers": numbers, "text": text_v, "text_mask": text_m, "image": image_v, "image_mask": image_m,
                "summary": self.summary(counts, totals).astype(np.float32)}

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        days = max([self.days, *(len(np.asarray(r["totals"])) for r in records)]) if records else self.days
        b = len(records)
        counts, totals = np.zeros((b, days, len(WINDOW_COUNTS))), np.zeros((b, days))
        parts: dict[str, np.ndarray] = {}
        for i, record in enumerate(records):
            n = len(np.asarray(record["totals"]))
            if np.shape(record["counts"]) != (n, len(WINDOW_COUNTS)):
                raise ValueError(f"window {i}: counts must be [{n}, {len(WINDOW_COUNTS)}], "
                                 f"not {list(np.shape(record['counts']))}")
            counts[i, days - n:], totals[i, days - n:] = record["counts"], record["totals"]  # right-aligned
            for name, dim in (("text", self.text_dim), ("image", self.image_dim)):
                if record.get(name) is None:
                    continue
                values = parts.setdefault(name, np.zeros((b, days, dim), np.float32))
                mask = parts.setdefault(f"{name}_mask", np.zeros((b, days), np.float32))
                values[i, days - n:] = record[name]
                given = record.get(f"{name}_mask")
                mask[i, days - n:] = 1.0 if given is None else np.asarray(given, np.float32)
        return self.arrays(counts, totals, parts.get("text"), parts.get("text_mask"), parts.get("image"),
                           parts.get("image_mask"))

    def _random(self, batch: int, days: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        totals = rng.integers(0, 60, (batch, days)).astype(np.float64)
        counts = np.stack([rng.binomial(totals.astype(int), 0.1), rng.integers(0, 500, (batch, days)),
                           rng.integers(0, 200, (batch, days)), rng.integers(0, 50, (batch, days))], axis=-1)
        text_mask = (rng.random((batch, days)) < 0.4).astype(np.float32)
        image_mask = (rng.random((batch, days)) < 0.3).astype(np.float32)
        image_mask[0] = 0.0  # a window without any image
        text = rng.normal(size=(batch, days, self.text_dim)).astype(np.float32) * text_mask[..., None]
        image = rng.normal(size=(batch, days, self.image_dim)).astype(np.float32) * image_mask[..., None]
        return self.arrays(counts, totals, text, text_mask, image, image_mask)

    def sample_inputs(self) -> dict[str, np.ndarray]:
        return self._random(2, self.days, seed=0)

    def parity_inputs(self) -> list[dict[str, np.ndarray]]:
        return [self._random(1, self.days, 1), self._random(3, self.days + 5, 2), self._random(7, self.days - 3, 3)]

    def length(self, record: Any) -> int:
        return len(np.asarray(record["totals"]))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text_dim": self.text_dim, "image_dim": self.image_dim, "days": self.days,
                "recent_days": self.recent_days, "mean": list(self.mean), "std": list(self.std)}

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
    if kind == WindowPreprocessor.kind:
        return WindowPreprocessor(text_dim=int(data["text_dim"]), image_dim=int(data["image_dim"]),
                                  days=int(data["days"]), recent_days=int(data["recent_days"]),
                                  mean=tuple(float(m) for m in data["mean"]), std=tuple(float(v) for v in data["std"]))
    raise ValueError(f"unknown preprocessor kind {kind!r}")


def load_preprocessor(folder: str | Path) -> Preprocessor:
    """The preprocessor saved in a model folder; a clear error naming the file otherwise."""
    path = Path(folder) / PREPROCESSOR_FILE
    try:
        return preprocessor_from_dict(json.loads(path.read_text(encoding="utf-8")), path.parent)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read preprocessor {path}: {exc}") from exc
