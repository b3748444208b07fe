"""Train emotions (EQN), read top to bottom: config, data (texts, multi-hot gold, frozen cached
features), one fit (the shared loop), the out-of-fold expansion, thresholds and evaluation beside
the baselines, the registered model.

The method (Expansion Quantization Network, arXiv 2411.06160), with its leak closed:

1. **Model A** learns the multi-hot gold of the training texts (loss `mse`, the seed's choice, or
   `bce`; both are trained and compared in the report), its epoch chosen on dev.
2. **Expansion, out of fold**: the training texts are dealt into `expansion_folds` folds; A_i
   trains on every fold but i and scores fold i, so a text's soft labels never come from a model
   that saw it (the seed scored the texts A had trained on). Gold emotions stay 1.0; every other
   emotion takes A_i's intensity, quantised. `expansion.json` records each text's fold.
3. **Model B** learns these soft labels, its epoch chosen on dev against the gold.
4. **Quantisation**: intensities above 1 → 1, below 0.01 → 0, else two decimals; energy = 10 x.
5. **Decisions**: one threshold per emotion, the F1-best on dev (never on test), over quantised
   intensities, turns intensities into labels; each is shrunk towards the one threshold best for
   all emotions by its number of gold dev texts (`threshold_shrink`), so a rare emotion's noisy
   optimum does not decide alone.

Figures: macro-F1 over the emotions (primary), micro-F1, per-emotion F1, argmax accuracy, and the
same for GoEmotions' Ekman and sentiment groupings (a group's intensity is its members' maximum).
On dev, thresholds are **cross-fitted**: tuned on one half of dev, measured on the other, swapped.
When a test split was imported, it is reported with thresholds tuned on all of dev; nothing is
trained or selected on it. Beside the model: A alone (no expansion), A with the other loss, and
TF-IDF one-vs-rest logistic regression, all with their thresholds chosen the same way.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..baselines import tfidf_multilabel
from ..checkpoint import save_checkpoint
from ..config import from_profile, text_tokenizer
from ..encoders.text import TextEncoder, tunable_copy
from ..encoders.tokenizers import HashedNgramTokenizer
from ..features import encoder_fingerprint, text_features
from ..loop import FitResult, LoopConfig, ParamGroup, config_dict, fit, pick_device, torch_threads
from ..metrics import argmax_accuracy, choose_shrink, cross_fitted_decisions, multilabel_metrics, tune_thresholds
from ..preprocess import TextNgramPreprocessor, TextPreprocessor
from ..report import eval_summary_markdown, markdown_table, write_json
from ..result import Head, TrainResult, quantize_intensity
from .model import LOSSES, EmotionConfig, EmotionHead, EmotionModel, EnsembleHead, intensity_loss

__all__ = ["GROUPINGS", "NAME", "PROFILES", "TASK", "Data", "TrainConfig", "check_config", "evaluate", "expand",
           "fit_head", "group_scores", "predict_rows", "prepare_data", "profile_config", "train_emotions"]

NAME = "emotions"
TASK = "emotions"
log = logging.getLogger(__name__)

# GoEmotions' own groupings (google-research/goemotions, data/ekman_mapping.json and
# sentiment_mapping.json); neutral is its own group in both
EKMAN = {"anger": ("anger", "annoyance", "disapproval"), "disgust": ("disgust",), "fear": ("fear", "nervousness"),
         "joy": ("joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride",
                 "admiration", "desire", "caring"),
         "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
         "surprise": ("surprise", "realization", "confusion", "curiosity"), "neutral": ("neutral",)}
SENTIMENT = {"positive": ("amusement", "excitement", "joy", "love", "desire", "optimism", "caring", "pride",
                          "admiration", "gratitude", "relief", "approval"),
             "negative": ("fear", "nervousness", "remorse", "embarrassment", "disappointment", "sadness", "grief",
                          "disgust", "anger", "annoyance", "disapproval"),
             "ambiguous": ("realization", "surprise", "curiosity", "confusion"), "neutral": ("neutral",)}
GROUPINGS = {"ekman": EKMAN, "sentiment": SENTIMENT}
FIGURES = ("macro_f1", "micro_f1", "argmax_accuracy")


# -- config: flat defaults (the cpu profile); a profile overrides a few; saved with the checkpoint ---
@dataclass
class TrainConfig:
    profile: str = "cpu"
    seed: int = 0
    device: str = "auto"  # auto: cuda when torch sees one
    threads: int | None = 1  # torch CPU threads while training (None: torch's default)
    # the text encoder (frozen, features cached, unless finetune_layers > 0)
    text_encoder_path: str | None = None  # a folder (e.g. $EMOPULSE_HOME/models/multilingual-e5-small) or hub id
    text_prefix: str = "query: "
    text_pooling: str = "mean"
    text_clean: str = "social"  # links dropped, @handles anonymised (training.preprocess)
    max_len: int = 128
    finetune_layers: int = 0  # > 0: the encoder's top layers train too (tokens each step, no cache)
    # the head (every field EmotionConfig has but text_dim and num_labels)
    hidden_dim: int = 512
    layers: int = 1
    dropout: float = 0.2
    # the wide side: hashed n-grams of the cleaned text (0 buckets: none); char_wb n-grams + word n-grams
    ngram_buckets: int = 1 << 18
    ngram_min_n: int = 2
    ngram_max_n: int = 5
    ngram_word_max_n: int = 2
    ngram_max_len: int = 1024
    ensemble: int = 1  # heads of B (and of A with the same loss) from seeds seed, seed+1, ...; intensities averaged
    # the method
    loss: str = "bce"  # of A and B ("mse" is the seed's; the report trains A with both)
    expansion: str = "oof"  # "oof": B on out-of-fold soft labels; "none": the registered model is A
    expansion_folds: int = 5
    # what chooses B's epoch on dev: its loss against the gold punishes learning the soft labels, so
    # the dev macro-F1 (thresholds tuned on dev) by default; A's epoch: its dev loss
    monitor_b: str = "macro_f1_dev_tuned"
    dev_frac: float = 0.1  # without a dev split, this share of train (by seed) is dev, and said so
    # optimisation (training/loop.py)
    epochs: int = 20
    patience: int | None = 4
    batch_size: int = 128
    lr: float = 1e-3
    lr_text_encoder: float = 3e-5
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    amp: bool = False
    # protocol
    compare_losses: bool = True  # also A with the other loss, for the report
    tfidf: bool = True
    tfidf_cs: tuple[float, ...] = (1.0, 4.0, 16.0)
    split_seed: int = 0  # the halves of dev the thresholds are cross-fitted over
    threshold_shrink: float | str = "auto"  # thresholds pulled towards one for all emotions; "auto": chosen on dev
    quality_records: int = 200
    embed_batch_size: int = 64


CHOICES = {"loss": LOSSES, "expansion": ("oof", "none"), "monitor_b": ("loss", "macro_f1_dev_tuned"), "text_clean": ("none", "social", "strip_emotes"),
           "text_pooling": ("mean", "last4")}

PROFILES: dict[str, dict[str, Any]] = {
    # frozen e5 features, cached (README "The micro-emotion model")
    "cpu": {},
    # fine-tunes e5's top 4 layers (tokens every step: on a GPU)
    "gpu": {"finetune_layers": 4, "epochs": 6, "patience": 2, "batch_size": 32, "threads": None},
    # small and quick: 2 expansion folds, a narrow head, few epochs
    "light": {"expansion_folds": 2, "hidden_dim": 64, "epochs": 6, "patience": 2, "quality_records": 50,
              "tfidf_cs": (4.0,), "ngram_buckets": 1 << 12, "ngram_max_len": 512},
}


def check_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg`, or a ValueError naming the first setting out of its range (before any work is done)."""
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}, not {getattr(cfg, name)!r}")
    if cfg.expansion_folds < 2 or cfg.epochs < 1 or cfg.batch_size < 1 or cfg.ensemble < 1:
        raise ValueError(f"need expansion_folds >= 2, epochs >= 1, batch_size >= 1 and ensemble >= 1 (got "
                         f"{cfg.expansion_folds}, {cfg.epochs}, {cfg.batch_size}, {cfg.ensemble})")
    if not 0 < cfg.dev_frac < 1 or not 0 <= cfg.dropout < 1 or (cfg.threshold_shrink != "auto" and (
            not isinstance(cfg.threshold_shrink, int | float) or cfg.threshold_shrink < 0)):
        raise ValueError(f"dev_frac must be in (0, 1), dropout in [0, 1) and threshold_shrink auto or >= 0 (got "
                         f"{cfg.dev_frac}, {cfg.dropout}, {cfg.threshold_shrink})")
    if cfg.finetune_layers < 0 or (cfg.finetune_layers and cfg.ensemble > 1):
        raise ValueError(f"finetune_layers must be >= 0, and ensemble 1 when fine-tuning (got {cfg.finetune_layers}, "
                         f"{cfg.ensemble})")
    EmotionConfig(**_model_fields(cfg))
    return cfg


def profile_config(profile: str = "cpu", **overrides: Any) -> TrainConfig:
    """The named profile's config with `overrides` (None values ignored)."""
    return from_profile(TrainConfig, PROFILES, profile, overrides, check_config)


def _model_fields(cfg: TrainConfig) -> dict[str, Any]:
    return {"hidden_dim": cfg.hidden_dim, "layers": cfg.layers, "dropout": cfg.dropout,
            "ngram_buckets": cfg.ngram_buckets}


def _ngram_tokenizer(cfg: TrainConfig) -> HashedNgramTokenizer | None:
    if not cfg.ngram_buckets:
        return None
    return HashedNgramTokenizer(buckets=cfg.ngram_buckets, min_n=cfg.ngram_min_n, max_n=cfg.ngram_max_n,
                                max_len=cfg.ngram_max_len, char_wb=1, word_max_n=cfg.ngram_word_max_n)


# -- data: texts cleaned as scoring cleans them, the multi-hot gold, frozen features -------------------
@dataclass
class Data:
    """Everything the fits share: one row per text (`texts`: source, split, text_id, text
    (cleaned), raw), the gold `y` [N, labels] (0/1), the rows of each split, the cached features."""

    texts: pd.DataFrame
    labels: tuple[str, ...]
    y: np.ndarray  # float32 [N, labels]
    splits: dict[str, np.ndarray]  # "train", "dev" (and "test" when imported): row indices
    features: torch.Tensor | None  # [N, dim] frozen-encoder vectors (None when fine-tuning)
    ngrams: list[np.ndarray] | None  # per text its hashed n-gram ids (None: no wide side)
    preprocessor: TextPreprocessor | TextNgramPreprocessor
    encoder: TextEncoder
    prepared: dict[str, Any]
    dev_from_train: bool = False  # no dev split was imported: dev was carved out of train
    seconds: dict[str, float] = field(default_factory=dict)


PREPARED = ("text_encoder_path", "text_prefix", "text_pooling", "text_clean", "max_len", "finetune_layers",
            "ngram_buckets", "ngram_min_n", "ngram_max_n", "ngram_word_max_n", "ngram_max_len")


def _prepared(cfg: TrainConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in PREPARED}



def prepare_data(rows: pd.DataFrame, labels: Sequence[str], cfg: TrainConfig, *,
                 cache_dir: str | Path | None = None, progress: bool = False) -> Data:
    """`emotion_texts` rows (split, text_id, text, labels: a list of names) and the label names in
    order → `Data`. A label not in `labels` is an error naming the text; a split other than
    train, dev and test is an error; without dev, `dev_frac` of train is dev."""
    started = time.perf_counter()
    check_config(cfg)
    missing = [c for c in ("split", "text_id", "text", "labels") if c not in rows.columns]
    if missing:
        raise ValueError(f"emotion texts lack column(s) {missing}")
    labels = tuple(labels)
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"need distinct label names, got {list(labels)}")
    rows = rows.reset_index(drop=True)
    unknown_splits = sorted(set(rows["split"]) - {"train", "dev", "test"})
    if unknown_splits:
        raise ValueError(f"unknown split(s) {unknown_splits}: train, dev and test are known")
    if not (rows["split"] == "train").any():
        raise ValueError("no training texts: import a dataset with a train.tsv (`emopulse import goemotions DIR`)")
    index = {name: j for j, name in enumerate(labels)}
    y = np.zeros((len(rows), len(labels)), np.float32)
    for i, names in enumerate(rows["labels"]):
        names = list(names) if names is not None else []
        bad = [n for n in names if n not in index]
        if bad or not names:
            raise ValueError(f"text {rows['text_id'].iat[i]} ({rows['split'].iat[i]}) has "
                             f"{'unknown label(s) ' + str(bad) if bad else 'no label'}; known: {list(labels)}")
        y[i, [index[n] for n in names]] = 1.0
    splits = {s: np.flatnonzero((rows["split"] == s).to_numpy()) for s in ("train", "dev", "test")}
    dev_from_train = not splits["dev"].size
    if dev_from_train:
        shuffled = np.random.default_rng(cfg.seed).permutation(splits["train"])
        cut = max(1, round(cfg.dev_frac * len(shuffled)))
        splits["dev"], splits["train"] = np.sort(shuffled[:cut]), np.sort(shuffled[cut:])
        log.warning("%s: no dev split: %d training texts (%.0f%%) are dev", NAME, cut, 100 * cfg.dev_frac)
    splits = {s: idx for s, idx in splits.items() if idx.size}
    tokenizer = text_tokenizer(cfg)
    text_pre = TextPreprocessor(tokenizer, clean=cfg.text_clean)
    ngram_tokenizer = _ngram_tokenizer(cfg)
    preprocessor = text_pre if ngram_tokenizer is None else TextNgramPreprocessor(text_pre, ngram_tokenizer)
    raw = rows["text"].fillna("").astype(str)
    cleaned = text_pre.texts(raw.tolist())
    ngrams = None if ngram_tokenizer is None else [np.asarray(ngram_tokenizer.ids(t), np.int64) for t in cleaned]
    texts = pd.DataFrame({"source": rows["source"] if "source" in rows else "", "split": rows["split"],
                          "text_id": rows["text_id"].astype(str), "text": cleaned, "raw": raw})
    encoder = TextEncoder.from_pretrained(cfg.text_encoder_path, pooling=cfg.text_pooling)
    features = None
    if cfg.finetune_layers == 0:
        root = None if cache_dir is None else Path(cache_dir) / "features"
        features = torch.from_numpy(text_features(encoder, tokenizer, cleaned, root=root,
                                                  batch_size=cfg.embed_batch_size, progress=progress))
    data = Data(texts=texts, labels=labels, y=y, splits=splits, features=features, ngrams=ngrams, preprocessor=preprocessor,
                encoder=encoder, prepared=_prepared(cfg), dev_from_train=dev_from_train)
    data.seconds["prepare"] = round(time.perf_counter() - started, 1)
    log.info("%s: %s texts, %d labels", NAME, {s: int(i.size) for s, i in splits.items()}, len(labels))
    return data


# -- one fit: the step and validation around the shared loop -------------------------------------------
def fit_head(data: Data, rows: np.ndarray, target: np.ndarray, cfg: TrainConfig, *, val: np.ndarray | None = None,
             monitor: str = "loss", progress: bool = False, label: str = NAME) -> tuple[EmotionHead, TextEncoder | None, FitResult]:
    """Train a head (and, fine-tuning, the encoder's top layers) on the texts `rows` (Data indices)
    towards `target` [len(rows), labels] (gold or soft), with `cfg.loss`, early-stopping on the
    `monitor` (the loss against the gold of `val`, default dev, or its macro-F1 with thresholds
    tuned on it). Returns head and tuned encoder (None when frozen) at their best epoch, in eval
    mode, and the loop's result."""
    if _prepared(cfg) != data.prepared:
        changed = sorted(k for k, v in _prepared(cfg).items() if data.prepared.get(k) != v)
        raise ValueError(f"the data were prepared with other {changed}: prepare_data again with this config")
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        raise ValueError(f"{label}: no text to train on")
    target_t = torch.as_tensor(np.asarray(target, dtype=np.float32))
    if target_t.shape != (len(rows), len(data.labels)):
        raise ValueError(f"{label}: targets of shape {tuple(target_t.shape)} for {len(rows)} texts")
    val = data.splits["dev"] if val is None else np.asarray(val, dtype=np.int64)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model_args = {**_model_fields(cfg), "text_dim": int(data.encoder.dim), "num_labels": len(data.labels)}
    head = EmotionHead(EmotionConfig(**model_args)).to(device)
    encoder = tunable_copy(data.encoder, cfg.finetune_layers).to(device) if cfg.finetune_layers else None
    val_gold = torch.from_numpy(data.y[val])

    def batches(epoch: int):  # a seeded order per epoch
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(rows))
        for start in range(0, len(order), cfg.batch_size):
            yield order[start:start + cfg.batch_size]

    def step(batch: np.ndarray):
        logits = head(_text_batch(data, rows[batch], encoder, device), *_ngram_batch(data, rows[batch], device))
        return intensity_loss(cfg.loss, logits, target_t[torch.from_numpy(batch)].to(device))

    def validate() -> dict[str, float]:
        scores = predict_rows(head, encoder, data, val, device=device)
        logits = torch.logit(torch.from_numpy(scores).clamp(1e-6, 1 - 1e-6)).float()
        return {"loss": float(intensity_loss(cfg.loss, logits, val_gold)),
                "macro_f1_dev_tuned": multilabel_metrics(data.y[val], scores >= tune_thresholds(data.y[val], scores),
                                                         labels=data.labels)["macro_f1"]}

    no_decay = [p for n, p in head.named_parameters() if n.endswith("bias") or "body.0" in n]
    decay = [p for n, p in head.named_parameters() if not (n.endswith("bias") or "body.0" in n)]
    groups = [ParamGroup("head", decay, cfg.lr, cfg.weight_decay), ParamGroup("head_no_decay", no_decay, cfg.lr, 0.0),
              ParamGroup("text_encoder", [p for p in encoder.parameters() if p.requires_grad] if encoder else [],
                         cfg.lr_text_encoder, cfg.weight_decay)]
    loop = LoopConfig(epochs=cfg.epochs, warmup_frac=cfg.warmup_frac, grad_clip=cfg.grad_clip,
                      amp=cfg.amp, monitor=monitor, mode="min" if monitor == "loss" else "max", patience=cfg.patience,
                      save_optimizer=encoder is None)
    modules = torch.nn.ModuleDict({"head": head, **({"text_encoder": encoder} if encoder is not None else {})})
    result = fit(modules, groups=groups, batches=batches, steps_per_epoch=math.ceil(len(rows) / cfg.batch_size),
                 step=step, validate=validate if val.size else None, config=loop,
                 model_args=model_args, run_config=config_dict(cfg), device=device, progress=progress, label=label,
                 extra=lambda: {"name": NAME, "task": TASK, "labels": list(data.labels),
                                "preprocessor": data.preprocessor.to_dict(), "encoder_in_state": encoder is not None})
    head.eval()
    if encoder is not None:
        encoder.eval()
    return head, encoder, result


def _text_batch(data: Data, idx: np.ndarray, encoder: TextEncoder | None, device: torch.device) -> torch.Tensor:
    if data.features is not None:
        return data.features[torch.from_numpy(np.asarray(idx, dtype=np.int64))].to(device)
    ids, mask = data.preprocessor.tokenizer.encode(data.texts["text"].iloc[idx].tolist())
    enc = encoder if encoder is not None else data.encoder
    return enc(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))


def _ngram_batch(data: Data, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | tuple[()]:
    """The texts' n-gram ids and mask, padded to the batch's longest (nothing without a wide side)."""
    if data.ngrams is None:
        return ()
    grams = [data.ngrams[i] for i in np.asarray(idx, dtype=np.int64)]
    ids = np.zeros((len(grams), max([1, *(len(g) for g in grams)])), np.int64)
    for i, g in enumerate(grams):
        ids[i, :len(g)] = g
    t = torch.from_numpy(ids)
    return t.to(device), (t > 0).long().to(device)


@torch.no_grad()
def predict_rows(head: torch.nn.Module, encoder: TextEncoder | None, data: Data, idx: np.ndarray, *,
                 device: torch.device | str | None = None, batch_size: int = 512) -> np.ndarray:
    """Intensities [len(idx), labels] in [0, 1] (sigmoid, not yet quantised), in eval mode."""
    device = torch.device(device) if device is not None else next(head.parameters()).device
    head.eval()
    idx = np.asarray(idx, dtype=np.int64)
    out = [torch.sigmoid(head(_text_batch(data, idx[s:s + batch_size], encoder, device),
                              *_ngram_batch(data, idx[s:s + batch_size], device)).float()).cpu().numpy()
           for s in range(0, len(idx), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(data.labels)), np.float32)


@dataclass
class Fitted:
    """A fit's heads (one, or `ensemble` from consecutive seeds), the tuned encoder, the loops' results."""

    heads: list[EmotionHead]
    encoder: TextEncoder | None
    fits: list[FitResult]

    def head(self) -> EmotionHead | EnsembleHead:
        return self.heads[0] if len(self.heads) == 1 else EnsembleHead(self.heads).eval()

    def predict(self, data: Data, idx: np.ndarray) -> np.ndarray:
        return np.mean([predict_rows(h, self.encoder, data, idx) for h in self.heads], axis=0)

    @property
    def best_epochs(self) -> list[int]:
        return [f.best_epoch for f in self.fits]


def fit_members(data: Data, rows: np.ndarray, target: np.ndarray, cfg: TrainConfig, *, members: int = 1,
                monitor: str = "loss", progress: bool = False, label: str = NAME) -> Fitted:
    heads, fits, encoder = [], [], None
    for j in range(members):
        head, encoder, result = fit_head(data, rows, target, replace(cfg, seed=cfg.seed + j), monitor=monitor,
                                         progress=progress, label=label if members == 1 else f"{label} member {j + 1}")
        heads.append(head)
        fits.append(result)
    return Fitted(heads=heads, encoder=encoder, fits=fits)


# -- the expansion: out-of-fold soft labels -------------------------------------------------------------
@dataclass
class Expansion:
    soft: np.ndarray  # [train texts, labels]: gold 1.0, the rest the out-of-fold intensity, quantised
    fold: np.ndarray  # [train texts]: the fold whose held-out model scored the text
    trained_on: list[np.ndarray]  # per fold: the Data rows its model A_i trained on
    best_epochs: list[int]


def expand(data: Data, cfg: TrainConfig, *, progress: bool = False) -> Expansion:
    """EQN's expansion without its leak: A_i trains on the training texts outside fold i (same
    settings as A, epochs chosen on dev) and scores fold i. Gold labels stay 1.0; the others take
    the quantised out-of-fold intensities."""
    train = data.splits["train"]
    k = cfg.expansion_folds
    if len(train) < k:
        raise ValueError(f"{len(train)} training texts cannot fill {k} expansion folds")
    # folds are dealt by text (case and spaces aside), so copies of a text (a dataset's repeats, or
    # one text imported under two sources) share a fold and never score each other
    norm = [" ".join(t.lower().split()) for t in data.texts["text"].iloc[train]]
    _, group = np.unique(np.asarray(norm, dtype=object), return_inverse=True)
    order = np.random.default_rng(cfg.seed + 101).permutation(group.max() + 1)
    fold = (np.argsort(order)[group] % k).astype(np.int64)
    scores = np.zeros((len(train), len(data.labels)), np.float64)
    trained_on, epochs = [], []
    for i in range(k):
        inside = train[fold != i]
        head, encoder, result = fit_head(data, inside, data.y[inside], cfg, progress=progress,
                                         label=f"{NAME} expansion fold {i + 1}/{k}")
        scores[fold == i] = predict_rows(head, encoder, data, train[fold == i])
        trained_on.append(inside)
        epochs.append(result.best_epoch)
    gold = data.y[train] > 0.5
    soft = np.where(gold, 1.0, quantize_intensity(scores)).astype(np.float32)
    return Expansion(soft=soft, fold=fold, trained_on=trained_on, best_epochs=epochs)


# -- evaluation: thresholds on dev, figures per grouping ------------------------------------------------
def group_scores(scores: np.ndarray, gold: np.ndarray, labels: Sequence[str],
                 grouping: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Intensities and gold of a grouping's groups: a group's intensity is its members' maximum,
    its gold on where any member's is. Groups whose members are not all among `labels` are an error."""
    index = {name: j for j, name in enumerate(labels)}
    missing = sorted({m for members in grouping.values() for m in members} - set(index))
    if missing:
        raise ValueError(f"the grouping names emotions not among the labels: {missing}")
    cols = [[index[m] for m in members] for members in grouping.values()]
    return (np.stack([scores[:, c].max(1) for c in cols], axis=1),
            np.stack([gold[:, c].max(1) for c in cols], axis=1), list(grouping))


def evaluate(data: Data, scores: Mapping[str, np.ndarray], cfg: TrainConfig) -> dict[str, Any]:
    """Figures of quantised intensities per split (`scores["dev"]`, `scores.get("test")`), for the
    emotions and each grouping GoEmotions defines (when its emotions are the labels): dev with
    thresholds cross-fitted over its halves, test with thresholds tuned on all of dev. The
    thresholds tuned on all of dev (the emotions') come back as `thresholds`."""
    out: dict[str, Any] = {}
    dev = quantize_intensity(scores["dev"])
    gold_dev = data.y[data.splits["dev"]]
    test = quantize_intensity(scores["test"]) if "test" in scores else None
    gold_test = data.y[data.splits["test"]] if test is not None else None
    views = {"emotions": (lambda s, g: (s, g, list(data.labels)))}
    for name, grouping in GROUPINGS.items():
        if {m for members in grouping.values() for m in members} == set(data.labels):
            views[name] = (lambda s, g, grouping=grouping: group_scores(s, g, data.labels, grouping))
    for name, view in views.items():
        s_dev, g_dev, names = view(dev, gold_dev)
        on, _ = cross_fitted_decisions(g_dev, s_dev, seed=cfg.split_seed, shrink=cfg.threshold_shrink)
        figures = {"dev_cross_fitted": {**multilabel_metrics(g_dev, on, labels=names),
                                        "argmax_accuracy": argmax_accuracy(g_dev, s_dev)}}
        shrink = choose_shrink(g_dev, s_dev) if cfg.threshold_shrink == "auto" else float(cfg.threshold_shrink)
        thresholds = tune_thresholds(g_dev, s_dev, shrink=shrink)
        if test is not None:
            s_test, g_test, _ = view(test, gold_test)
            figures["test"] = {**multilabel_metrics(g_test, s_test >= thresholds, labels=names),
                               "argmax_accuracy": argmax_accuracy(g_test, s_test)}
        figures["thresholds"] = {n: float(t) for n, t in zip(names, thresholds, strict=True)}
        figures["shrink"] = shrink
        out[name] = figures
    out["thresholds"] = [out["emotions"]["thresholds"][n] for n in data.labels]
    return out


# -- the whole protocol ----------------------------------------------------------------------------------
def train_emotions(rows: pd.DataFrame, labels: Sequence[str], *, out_dir: str | Path,
                   config: TrainConfig | None = None, cache_dir: str | Path | None = None,
                   progress: bool = True) -> TrainResult:
    """A, its loss comparison, the out-of-fold expansion and B, beside TF-IDF, on the
    `emotion_texts` rows; B (or A with `expansion="none"`) is returned for export."""
    cfg = check_config(config or TrainConfig())
    with torch_threads(cfg.threads):
        return _train(rows, labels, out_dir=Path(out_dir), cfg=cfg, cache_dir=cache_dir, progress=progress)


def _train(rows: pd.DataFrame, labels: Sequence[str], *, out_dir: Path, cfg: TrainConfig,
           cache_dir: str | Path | None, progress: bool) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = prepare_data(rows, labels, cfg, cache_dir=cache_dir, progress=progress)
    train, splits = data.splits["train"], [s for s in ("dev", "test") if s in data.splits]
    seconds: dict[str, float] = {"prepare": data.seconds["prepare"]}
    methods: dict[str, dict[str, Any]] = {}  # name -> {"scores": {split: ...}, "info": ...}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        value = fn()
        seconds[name] = round(time.perf_counter() - t0, 1)
        return value

    # A: the gold alone, with the configured loss (and the other, for the report)
    losses = [cfg.loss] + ([m for m in LOSSES if m != cfg.loss] if cfg.compare_losses else [])
    fitted_a: dict[str, Fitted] = {}
    for loss in losses:
        fitted_a[loss] = timed(f"A_{loss}", lambda loss=loss: fit_members(  # as many heads as B, for a fair comparison
            data, train, data.y[train], replace(cfg, loss=loss), members=cfg.ensemble if loss == cfg.loss else 1,
            progress=progress, label=f"{NAME} A ({loss})"))
        methods[f"A_{loss}"] = {"scores": {s: fitted_a[loss].predict(data, data.splits[s]) for s in splits},
                                "info": {"best_epochs": fitted_a[loss].best_epochs}}
    # the expansion and B
    registered: Fitted = fitted_a[cfg.loss]
    expansion = None
    if cfg.expansion == "oof":
        expansion = timed("expansion", lambda: expand(data, cfg, progress=progress))
        registered = timed("B", lambda: fit_members(data, train, expansion.soft, cfg, members=cfg.ensemble,
                                                     monitor=cfg.monitor_b,
                                                     progress=progress, label=f"{NAME} B"))
        methods["B"] = {"scores": {s: registered.predict(data, data.splits[s]) for s in splits},
                        "info": {"best_epochs": registered.best_epochs, "expansion_epochs": expansion.best_epochs}}
    if cfg.tfidf:
        def tfidf():
            texts = data.texts["text"]
            probs, info = tfidf_multilabel(texts.iloc[train].tolist(), data.y[train],
                                           texts.iloc[data.splits["dev"]].tolist(), data.y[data.splits["dev"]],
                                           *(texts.iloc[data.splits[s]].tolist() for s in splits[1:]),
                                           Cs=cfg.tfidf_cs, seed=cfg.seed)
            return {"scores": dict(zip(splits, probs, strict=True)), "info": info}
        methods["tfidf"] = timed("tfidf", tfidf)
    evaluations = {name: evaluate(data, m["scores"], cfg) for name, m in methods.items()}
    model_key = "B" if cfg.expansion == "oof" else f"A_{cfg.loss}"
    thresholds = evaluations[model_key]["thresholds"]

    # what the registered model ships: encoder + head(s), the head's thresholds, quantised
    text_encoder = registered.encoder if registered.encoder is not None else copy.deepcopy(data.encoder)
    module = EmotionModel(text_encoder.cpu().eval(), registered.head().cpu().eval()).eval()
    head = Head("multilabel", data.labels, thresholds=tuple(thresholds), quantize=True)
    files = _write_artifacts(out_dir, data, cfg, registered, expansion, methods, evaluations, model_key)
    seconds["total"] = round(time.perf_counter() - started, 1)
    metrics = _metrics(data, cfg, evaluations, methods, model_key, expansion, seconds)
    files["metrics"] = write_json(out_dir / "metrics.json", metrics)
    (out_dir / "eval_summary.md").write_text(_summary(data, cfg, evaluations, methods, model_key, expansion, seconds,
                                                      registered), encoding="utf-8")
    files["eval_summary"] = out_dir / "eval_summary.md"
    rng = np.random.default_rng(cfg.seed)
    dev = data.splits["dev"]
    quality = data.texts["raw"].iloc[np.sort(rng.permutation(dev)[:cfg.quality_records])].tolist()
    encoders = {"text" if cfg.finetune_layers == 0 else "text_fine_tuned_from": encoder_fingerprint(cfg.text_encoder_path)}
    log.info("%s: dev macro-F1 (cross-fitted) %s", NAME,
             {k: round(v["emotions"]["dev_cross_fitted"]["macro_f1"], 4) for k, v in evaluations.items()})
    return TrainResult(name=NAME, task=TASK, module=module, preprocessor=data.preprocessor, head=head,
                       config=config_dict(cfg), metrics=metrics, files=files, quality_records=quality,
                       output_names=("logits",), entity_kinds=("comment", "post"),
                       history=registered.fits[0].history, out_dir=out_dir, encoders=encoders)


def _write_artifacts(out_dir: Path, data: Data, cfg: TrainConfig, registered: Fitted, expansion: Expansion | None,
                     methods: Mapping[str, Any], evaluations: Mapping[str, Any], model_key: str) -> dict[str, Path]:
    from ..plots import heatmap

    files: dict[str, Path] = {}
    model_args = {**_model_fields(cfg), "text_dim": int(data.encoder.dim), "num_labels": len(data.labels),
                  "ensemble": len(registered.heads)}
    state = {f"head.{k}": v for k, v in registered.head().state_dict().items()}
    if registered.encoder is not None:
        state |= {f"text_encoder.{k}": v for k, v in registered.encoder.state_dict().items()}
    files["checkpoint"] = save_checkpoint(
        out_dir / "emotions.pt", model_args=model_args, config=config_dict(cfg),
        metrics=registered.fits[0].best, epoch=registered.fits[0].best_epoch, state_dict=state,
        extra={"name": NAME, "task": TASK, "labels": list(data.labels), "preprocessor": data.preprocessor.to_dict(),
               "thresholds": evaluations[model_key]["thresholds"], "encoder_in_state": registered.encoder is not None})
    if expansion is not None:  # which held-out model gave each training text its soft labels
        train = data.splits["train"]
        files["expansion"] = write_json(out_dir / "expansion.json", {
            "folds": cfg.expansion_folds, "rule": "fold i's soft labels come from A_i, trained on every other fold; "
                                                  "copies of a text share a fold", "key": "source:text_id",
            "fold_of": dict(zip((data.texts["source"].astype(str) + ":" + data.texts["text_id"]).iloc[train].tolist(),
                                expansion.fold.tolist(), strict=True)),
            "trained_on_sizes": [int(t.size) for t in expansion.trained_on]})
    dev_scores = quantize_intensity(methods[model_key]["scores"]["dev"])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(dev_scores, rowvar=False))
    files["heatmap"] = heatmap(corr, data.labels, out_dir / "correlation.png",
                               title=f"{NAME}: Pearson correlation of intensities over {len(dev_scores)} dev texts")
    files["correlation"] = write_json(out_dir / "correlation.json", {"labels": list(data.labels),
                                                                     "pearson": corr.round(4).tolist()})
    return files


METHOD_NAMES = {"B": "EQN: B on out-of-fold expanded labels", "A_mse": "A alone (MSE on the gold, no expansion)",
                "A_bce": "A alone (BCE on the gold, no expansion)", "tfidf": "TF-IDF + one-vs-rest LR"}


def _metrics(data: Data, cfg: TrainConfig, evaluations: Mapping[str, Any], methods: Mapping[str, Any],
             model_key: str, expansion: Expansion | None, seconds: Mapping[str, float]) -> dict[str, Any]:
    """Flat figures first (the model's unprefixed, each other method's with its prefix), then what
    they describe."""
    flat: dict[str, Any] = {"evaluation": "dev, thresholds cross-fitted over its halves" +
                            ("; test with thresholds tuned on dev" if "test" in data.splits else ""),
                            "registered": model_key}
    for method, ev in evaluations.items():
        prefix = "" if method == model_key else f"{method}_"
        for view, figures in ev.items():
            if view == "thresholds":
                continue
            vprefix = "" if view == "emotions" else f"{view}_"
            for part in ("dev_cross_fitted", "test"):
                if part in figures:
                    short = "dev" if part == "dev_cross_fitted" else "test"
                    for x in FIGURES:
                        flat[f"{prefix}{vprefix}{short}_{x}"] = figures[part][x]
    return {**flat,
            "describes": (f"{data.splits['dev'].size} dev texts{' (carved from train)' if data.dev_from_train else ''}; "
                          "each emotion's threshold tuned on one half of dev and applied to the other (and swapped); "
                          "the registered model's thresholds are tuned on all of dev"
                          + ("; the test split is measured with those, never used to train or select" if "test" in
                             data.splits else "; no test split was imported")),
            "labels": list(data.labels), "profile": cfg.profile, "loss": cfg.loss, "expansion": cfg.expansion,
            "texts": {s: int(i.size) for s, i in data.splits.items()},
            "per_label": {m: {lab: v["f1"] for lab, v in ev["emotions"]["dev_cross_fitted"]["per_label"].items()}
                          for m, ev in evaluations.items()},
            **({"per_label_test": {m: {lab: v["f1"] for lab, v in ev["emotions"]["test"]["per_label"].items()}
                                   for m, ev in evaluations.items()}} if "test" in data.splits else {}),
            "evaluations": {m: {view: {**{part: {x: f[x] for x in (*FIGURES, "macro_precision", "macro_recall", "n")}
                                          for part, f in figures.items() if part in ("dev_cross_fitted", "test")},
                                       "shrink": figures["shrink"]}
                                for view, figures in ev.items() if view != "thresholds"}
                            for m, ev in evaluations.items()},
            "thresholds": dict(zip(data.labels, evaluations[model_key]["thresholds"], strict=True)),
            "methods": {m: v["info"] for m, v in methods.items()},
            "expansion_folds": None if expansion is None else cfg.expansion_folds,
            "seconds": dict(seconds), "train_seconds": seconds["total"]}


def _summary(data: Data, cfg: TrainConfig, evaluations: Mapping[str, Any], methods: Mapping[str, Any],
             model_key: str, expansion: Expansion | None, seconds: Mapping[str, float], registered: Fitted) -> str:
    names = {**METHOD_NAMES, model_key: f"**{METHOD_NAMES[model_key]} ({cfg.profile}, {cfg.loss})**"}
    parts = [p for p in ("dev_cross_fitted", "test") if p in evaluations[model_key]["emotions"]]
    header = ["method", *(f"{'dev' if p == 'dev_cross_fitted' else 'test'} {x}" for p in parts for x in FIGURES)]

    def table(view: str) -> list[str]:
        return markdown_table(header, [[names.get(m, m), *(ev[view][p][x] for p in parts for x in FIGURES)]
                                       for m, ev in evaluations.items() if view in ev])

    ev = evaluations[model_key]["emotions"]
    per = ev["dev_cross_fitted"]["per_label"]
    counts = {s: int(i.size) for s, i in data.splits.items()}
    sections: dict[str, list[str]] = {
        "How these figures were measured": [
            f"Texts: {counts}{' (dev carved from train)' if data.dev_from_train else ''}, {len(data.labels)} emotions. "
            f"Epochs are chosen on dev (A by its loss, B by `{cfg.monitor_b}`), as are TF-IDF's C and each "
            "method's threshold shrink. Dev figures are **cross-fitted** for the thresholds: each emotion's "
            "threshold (and the shrink) is tuned on one half of dev and applied to the other half, and the other "
            "way round; the epoch and C choices did see all of dev. "
            + ("The test split is scored with thresholds tuned on all of dev; nothing trains or is selected on it."
               if "test" in data.splits else "No test split was imported, so there are no test figures."),
            "",
            (f"Expansion: {cfg.expansion_folds} folds over the training texts; fold i's soft labels come from A_i, "
             "trained on the other folds only (`expansion.json`)." if expansion is not None else
             "No expansion (`expansion=none`): the registered model is A.")],
        "The 28 emotions": table("emotions"),
    }
    for view in GROUPINGS:
        if view in evaluations[model_key]:
            sections[f"Grouped: {view}"] = table(view)
    test = ev["test"]["per_label"] if "test" in ev else None
    sections["Per emotion (the model; dev cross-fitted" + (", and test)" if test else ")")] = markdown_table(
        ["emotion", "support", "precision", "recall", "F1", "threshold (all dev)", *(["test support", "test F1"]
                                                                                     if test else [])],
        [[lab, v["support"], v["precision"], v["recall"], v["f1"], ev["thresholds"][lab],
          *([test[lab]["support"], test[lab]["f1"]] if test else [])] for lab, v in per.items()])
    hist = registered.fits[0].history
    sections["Training the registered model"] = [
        f"Profile {cfg.profile}: text encoder {Path(str(cfg.text_encoder_path)).name} "
        f"({'frozen, cached features' if cfg.finetune_layers == 0 else f'top {cfg.finetune_layers} layers tuned'}); "
        f"{len(registered.heads)} head(s); seconds {dict(seconds)}; settings of each method: "
        f"{ {m: v['info'] for m, v in methods.items()} }.", "",
        *markdown_table(list(hist[0]), [[(f"{v:.2e}" if k.startswith("lr_") else v) for k, v in r.items()] for r in hist]),
        "", "The correlation heatmap of the intensities over dev: `correlation.png`."]
    return eval_summary_markdown(title=f"{NAME}: micro-emotion intensities (EQN) over {len(data.labels)} emotions",
                                 sections=sections)
