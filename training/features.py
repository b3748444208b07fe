"""A cache of frozen-encoder features, shared by every model and every fold.

A frozen encoder (e5 over texts, EfficientNet-Lite0 over images) maps the same input to the same
vector, so each input is encoded once per encoder and setting, whichever model or fold asks. The
cache lives under `<root>/<kind>-<fingerprint>/` (the flows use `$EMOPULSE_HOME/cache/features`):

* the **fingerprint** names the encoder by content and settings, never by where it lies: the
  relative names and sizes of its files, each file hashed whole when small, by its first and last
  MiB when large, plus the settings that change its output (prefix, max_len, pooling, ...). A moved
  home or a copied encoder folder hits the same cache; another encoder or setting misses it;
* a **key** is the sha1 of the input (the text's UTF-8, an image file's bytes);
* vectors are appended in **shards** (`part-*.npz`, float32 `vectors` beside their `keys`), each
  written to a temporary name and renamed into place, so a run killed mid-write leaves the cache as
  it was (at worst a stray `*.tmp` file, which is ignored). A shard that cannot be read is skipped
  and its inputs are encoded again. Many shards are merged into one now and then.

`cached_features` is the general function (inputs, keys, a compute function); `text_features` and
`image_features` wrap it for the two encoders.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FeatureCache", "array_image_features", "cached_features", "encoder_fingerprint", "image_features",
           "input_key", "text_features"]

log = logging.getLogger(__name__)

WHOLE_FILE_BYTES = 4 << 20  # files up to this size are hashed whole
EDGE_BYTES = 1 << 20  # larger ones by their first and last MiB (and their size)
MAX_SHARDS = 16  # more shards than this are merged into one
STALE_TMP_SECONDS = 3600  # temporary files older than this are left-overs of a killed write


def _file_digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= WHOLE_FILE_BYTES:
            h.update(f.read())
        else:
            h.update(f.read(EDGE_BYTES))
            f.seek(size - EDGE_BYTES)
            h.update(f.read(EDGE_BYTES))
    return h.hexdigest()


def encoder_fingerprint(source: str | Path, settings: Mapping[str, Any] | None = None) -> str:
    """16 hex digits naming an encoder by content: a folder by its files' relative names, sizes and
    digests (hidden files skipped), a single weight file by its size and digest (not its name), a
    hub id by the id; `settings` (JSON-able) are hashed in too."""
    h = hashlib.sha256()
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        for f in files:
            size = f.stat().st_size
            h.update(f"{f.relative_to(path).as_posix()}\0{size}\0{_file_digest(f, size)}\n".encode())
    elif path.is_file():
        size = path.stat().st_size
        h.update(f"file\0{size}\0{_file_digest(path, size)}\n".encode())
    else:
        h.update(f"id\0{source}\n".encode())
    h.update(json.dumps(dict(settings or {}), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def input_key(value: str | bytes) -> str:
    """The cache key of one input: sha1 of a text's UTF-8 or of raw bytes."""
    return hashlib.sha1(value.encode("utf-8") if isinstance(value, str) else value).hexdigest()


class FeatureCache:
    """Vectors by key for one encoder and setting, in `<root>/<kind>-<fingerprint>/`."""

    def __init__(self, root: str | Path, kind: str, fingerprint: str, *,
                 meta: Mapping[str, Any] | None = None) -> None:
        self.folder = Path(root) / f"{kind}-{fingerprint}"
        self.kind, self.fingerprint = kind, fingerprint
        self.meta = dict(meta or {})
        self._vectors: dict[str, np.ndarray] | None = None

    # -- reading ---------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.npz")) if self.folder.is_dir() else []

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            for shard in self.shards():
                try:
                    with np.load(shard, allow_pickle=False) as f:
                        keys, vectors = f["keys"].tolist(), np.asarray(f["vectors"], np.float32)
                except FileNotFoundError:  # merged away by another process meanwhile
                    continue
                except Exception as exc:  # a damaged shard: its inputs are encoded again
                    log.warning("feature cache: skipping unreadable shard %s (%s)", shard, exc)
                    continue
                if len(keys) != len(vectors):
                    log.warning("feature cache: skipping shard %s (%d keys, %d vectors)", shard, len(keys),
                                len(vectors))
                    continue
                self._vectors.update(zip(keys, vectors, strict=True))
        return self._vectors

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: str) -> bool:
        return key in self._load()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys`."""
        vectors = self._load()
        return {k: vectors[k] for k in keys if k in vectors}

    # -- writing ---------------------------------------------------------------------------------
    def _write_npz(self, keys: Sequence[str], vectors: np.ndarray) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".{final.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.asarray(list(keys), dtype=str), vectors=np.asarray(vectors, np.float32))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Append vectors (one row per key) as a new shard; merge the shards when there are many."""
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys but {len(vectors)} vectors")
        if not len(keys):
            return None
        self._write_meta(int(np.shape(vectors)[1]))
        shard = self._write_npz(keys, vectors)
        self._load().update(zip(keys, np.asarray(vectors, np.float32), strict=True))
        if len(self.shards()) > MAX_SHARDS:
            self.compact()
        return shard

    def compact(self) -> None:
        """Merge every shard into one (written first, then the old ones removed: a kill in between
        leaves duplicates, which read the same), and drop stale temporary files."""
        old = self.shards()
        vectors = self._load()
        if len(old) > 1 and vectors:
            self._write_npz(list(vectors), np.stack(list(vectors.values())))
            for shard in old:
                shard.unlink(missing_ok=True)
        now = time.time()
        for tmp in self.folder.glob(".*.tmp"):
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                    tmp.unlink()
            except FileNotFoundError:
                pass

    def _write_meta(self, dim: int) -> None:
        path = self.folder / "meta.json"
        if path.is_file():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".meta.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"kind": self.kind, "fingerprint": self.fingerprint, "dim": dim, **self.meta},
                                  ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)


def cached_features(items: Sequence[Any], keys: Sequence[str], compute: Callable[[list[Any]], np.ndarray], *,
                    dim: int, cache: FeatureCache | None, batch_size: int = 64, flush_every: int = 2048,
                    order: Callable[[Any], Any] | None = None, progress: bool = False,
                    description: str = "encoding") -> np.ndarray:
    """float32 [len(items), dim]: cached vectors where the key is known, `compute(batch)` for the
    rest (each distinct key once, batches in `order`), appended to the cache every `flush_every`
    rows, so an interrupted run keeps what it computed."""
    found = cache.get(keys) if cache is not None else {}
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k not in found:
            first.setdefault(k, i)
    todo = list(first.values())
    if order is not None:
        todo.sort(key=lambda i: order(items[i]))
    pending_keys: list[str] = []
    pending: list[np.ndarray] = []
    from rich.progress import Progress

    with Progress(disable=not progress or not todo, transient=True) as bar:
        task = bar.add_task(description, total=len(todo))
        for start in range(0, len(todo), batch_size):
            rows = todo[start:start + batch_size]
            vectors = np.asarray(compute([items[i] for i in rows]), np.float32)
            for i, v in zip(rows, vectors, strict=True):
                found[keys[i]] = v
                pending_keys.append(keys[i])
                pending.append(v)
            if cache is not None and len(pending_keys) >= flush_every:
                cache.put(pending_keys, np.stack(pending))
                pending_keys, pending = [], []
            bar.advance(task, len(rows))
    if cache is not None and pending_keys:
        cache.put(pending_keys, np.stack(pending))
    if not len(keys):
        return np.zeros((0, dim), np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32)


# -- the two frozen encoders ---------------------------------------------------------------------------
def text_features(encoder: Any, tokenizer: Any, texts: Sequence[Any], *, root: str | Path | None,
                  source: str | Path | None = None, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """float32 [N, hidden]: a frozen `TextEncoder`'s mean-pooled vectors of `texts` (through a
    `TextTokenizer`), cached under `root` (None: no cache). The encoder is fingerprinted from
    `source` (default: the tokenizer's folder or id) with the tokenizer's prefix and max_len."""
    import torch

    texts = [t if isinstance(t, str) else "" for t in texts]
    cache = None
    if root is not None:
        settings = {"encoder": type(encoder).__name__, "pooling": getattr(encoder, "pooling", "mean"), "prefix": tokenizer.prefix,
                    "max_len": tokenizer.max_len}
        src = source if source is not None else tokenizer.path
        cache = FeatureCache(root, "text", encoder_fingerprint(src, settings),
                             meta={"source": Path(str(src)).name, **settings})

    was_training = encoder.training
    encoder.eval()

    @torch.inference_mode()
    def compute(batch: list[str]) -> np.ndarray:
        ids, mask = tokenizer.encode(batch)
        return encoder(torch.from_numpy(ids), torch.from_numpy(mask)).float().cpu().numpy()

    try:
        return cached_features(texts, [input_key(t) for t in texts], compute, dim=int(encoder.dim), cache=cache,
                               batch_size=batch_size, order=len, progress=progress, description="embedding texts")
    finally:
        encoder.train(was_training)


def _image_cache(encoder: Any, root: str | Path | None, weights: str | Path | None) -> FeatureCache | None:
    from .encoders.image import default_weights

    if root is None:
        return None
    settings = {"encoder": getattr(encoder, "name", type(encoder).__name__),
                "preprocess": repr(getattr(encoder, "preprocess", None))}
    return FeatureCache(root, "image", encoder_fingerprint(weights or default_weights(), settings), meta=settings)


def image_features(encoder: Any, paths: Sequence[str | Path], *, root: str | Path | None,
                   weights: str | Path | None = None, progress: bool = False) -> np.ndarray:
    """float32 [N, 1280]: an `ImageEncoder`'s L2-normalised EfficientNet-Lite0 vectors of image
    files, cached under `root` by the weight file's content, the preprocessing and each file's bytes.
    Files must be readable (`ImageEncoder.embed_files` reports unreadable ones)."""
    from PIL import Image

    paths = [Path(p) for p in paths]
    keys = [input_key(p.read_bytes()) for p in paths]

    def compute(batch: list[Path]) -> np.ndarray:
        images = []
        for p in batch:
            with Image.open(p) as image:
                images.append(image.convert("RGB"))
        return encoder.embed_images(images)

    return cached_features(paths, keys, compute, dim=int(encoder.dim), cache=_image_cache(encoder, root, weights),
                           batch_size=getattr(encoder, "batch_size", 16), progress=progress,
                           description="embedding images")


def array_image_features(encoder: Any, images: np.ndarray, *, root: str | Path | None,
                         weights: str | Path | None = None, progress: bool = False) -> np.ndarray:
    """float32 [N, 1280]: as `image_features`, for images already in memory (uint8 [N, H, W, 3],
    e.g. the emote images), keyed by their shape and pixels; the same cache as files."""
    from PIL import Image

    images = np.ascontiguousarray(images, dtype=np.uint8)
    keys = [input_key(f"{im.shape}".encode() + im.tobytes()) for im in images]

    def compute(batch: list[np.ndarray]) -> np.ndarray:
        return encoder.embed_images([Image.fromarray(im, "RGB") for im in batch])

    return cached_features(list(images), keys, compute, dim=int(encoder.dim), cache=_image_cache(encoder, root, weights),
                           batch_size=getattr(encoder, "batch_size", 16), progress=progress,
                           description="embedding emote images")
