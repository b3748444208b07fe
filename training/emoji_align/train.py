"""Train emoji_align, read top to bottom: config, data, the folds over whole videos, one fit (the
shared loop in `training/loop.py`), evaluation beside the baselines, the all-data retrain, save.

The protocol, `video_folds(k)`:

1. **Folds** (`splits.video_folds`): the videos are dealt into k folds of about equal comment
   counts. Fold i tests on its videos; its validation videos are drawn from the other videos;
   comments without a video only ever train.
2. **Labels per fold**: an emote is a label of a fold when more than `min_comments` of the fold's
   train and validation comments carry it, ordered by that count; the test videos are never counted.
   A comment trains when it carries a label; its target is its labels weighted by occurrences.
3. **Per fold**, on the same rows: the model (its epoch chosen on the validation videos by early
   stopping on `monitor`), TF-IDF char 1-3-grams + logistic regression (C chosen on the same
   validation videos from a grid reaching strong regularisation) and the majority class.
4. **Test comments**: every comment of the fold's test videos that carries an emote with more than
   `min_comments` comments in all the data (the registered model's labels); its main emote is its
   most frequent such emote. When that emote is not a label of the fold, the comment is a miss for
   every method (counted as `unknown_main`). Top-1/Top-5 strict and any-match, on the natural
   distribution and on a balanced sample (up to 35 comments per main emote).
5. **Figures**: mean ± sd over the folds for the model and each baseline, and every fold's own.
6. **The registered model** is retrained on every comment, with the labels from all of them, for
   the median of the folds' best epochs on the same schedule. `metrics` say so: the figures
   describe the protocol, the module is the retrain.

`prepare_data` (text features, images) is separate from `cross_validate` and `retrain`, so an
ablation prepares once and varies the config: `cross_validate(data, replace(cfg, dropout=0.1))`
(a field the inputs depend on, `PREPARED`, needs them prepared again; a run refuses otherwise).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..baselines import TFIDF_CS, majority_baseline, tfidf_logreg_baseline
from ..checkpoint import load_checkpoint
from ..config import from_profile, text_tokenizer
from ..data import emote_comments
from ..emote_images import EmoteImages, build_emote_images
from ..encoders.emote_image import augment, to_pixels
from ..encoders.tokenizers import HashedNgramTokenizer, Tokenizer
from ..evaluation import METRICS, detailed_report, evaluate_ranking, mean_sd
from ..features import encoder_fingerprint, text_features
from ..loop import FitResult, Hooks, LoopConfig, ParamGroup, config_dict, fit, pick_device, torch_threads
from ..metrics import ranking_metrics, topk_accuracy
from ..preprocess import TextPreprocessor, preprocessor_from_dict
from ..report import PROTOCOLS, eval_summary_markdown, markdown_table, one_fit_report, write_json
from ..result import Head, TrainResult
from ..splits import Split, video_folds
from .losses import hardest_negative_triplet, prototype_cross_entropy
from .model import EmojiAlign, EmojiAlignConfig, EmoteRanker, build_text_encoder

__all__ = ["NAME", "PROFILES", "TASK", "Data", "TrainConfig", "View", "cross_validate", "fit_model", "label_view",
           "load_ranker", "prepare_data", "profile_config", "retrain", "train_emoji_align"]

NAME = "emoji_align"
TASK = "emoji"
log = logging.getLogger(__name__)


# -- config: flat defaults (the cpu profile); a profile overrides a few; saved with the checkpoint ---
@dataclass
class TrainConfig:
    profile: str = "cpu"
    seed: int = 0
    device: str = "auto"  # auto: cuda when torch sees one
    threads: int | None = 1  # torch CPU threads while training (None: torch's default); on a small
    # shared machine one thread ran these small steps 4-10x faster than two (same figures)
    # data
    min_comments: int = 300  # an emote is a label when more than this many comments carry it
    # text encoder
    text_encoder: str = "transformers"  # or "ngrams"
    text_encoder_path: str | None = None  # a folder (e.g. $EMOPULSE_HOME/models/multilingual-e5-small) or hub id
    text_prefix: str = "query: "  # e5 models expect it; "" for others
    text_pooling: str = "last4"  # transformers: "mean" of the last layer, or "last4" (mean of the last four)
    max_len: int = 96
    freeze_text_encoder: bool = True  # frozen: features computed once and cached
    ngram_buckets: int = 1 << 15
    ngram_max_n: int = 3
    ngram_dim: int = 64
    # towers and space (every field that EmojiAlignConfig also has is passed on to the model)
    embed_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.1
    image_encoder: str = "efficientnet"  # frozen Lite0 features of the emote images; or "scratch": the CNN, trained
    image_channels: tuple[int, ...] = (24, 48, 96, 192)
    emote_offsets: bool = True
    prior_bias: bool = False  # a per-emote logit bias, initialised to the log prior of the training rows
    augment: bool = True  # random affine draws of the emote images each step (the scratch CNN only)
    # loss
    tau_init: float = 0.07
    tau_min: float = 0.03
    tau_max: float = 0.20
    ce_weight: float = 1.0
    triplet_weight: float = 0.5
    triplet_margin: float = 0.2
    label_smoothing: float = 0.1  # share of each target moved to emotes that co-occur with (or share a
    # Unicode twin with) its emotes in the training rows
    # optimisation (training/loop.py)
    epochs: int = 12  # the schedule's length: the most epochs a fold runs
    patience: int | None = 3  # epochs without a better validation figure before a fold stops
    monitor: str = "ce"  # the validation figure that picks the epoch: ce (lower is better), top1_strict, top5_strict
    batch_size: int = 128
    warmup_frac: float = 0.05
    lr_text_encoder: float = 2e-5
    lr_image_encoder: float = 1e-3
    lr_projection: float = 1e-3
    lr_tau: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    amp: bool = False  # bf16 autocast on CUDA; off by default (the seed saw NaN gradients with AMP)
    # protocol
    folds: int = 5
    val_frac: float = 0.15  # of a fold's non-test videos' comments, as whole videos
    balanced_per_emote: int = 35
    tfidf_cs: tuple[float, ...] = TFIDF_CS
    tfidf_blend: bool = False  # also report the model's log-probabilities blended with TF-IDF's, the
    # weight chosen on the validation videos (an evaluation: the registered module is the model alone)
    retrain_epochs: int | None = None  # None: the median of the folds' best epochs
    protocol: str = "folds"  # or "fit": no folds, one fit for retrain_epochs (else epochs) epochs
    fold_checkpoints: bool = True  # write each fold's best and last checkpoints (gpu: kept in memory)
    quality_records: int = 300
    embed_batch_size: int = 64


CHOICES = {"protocol": PROTOCOLS, "text_encoder": ("transformers", "ngrams"), "text_pooling": ("mean", "last4"),
           "image_encoder": ("efficientnet", "scratch"), "monitor": ("ce", "top1_strict", "top5_strict")}


def check_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg`, or a ValueError naming the first setting out of its range (before any work is done)."""
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}, not {getattr(cfg, name)!r}")
    if not 0 <= cfg.label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), not {cfg.label_smoothing}")
    if cfg.folds < 2 or cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"need folds >= 2, epochs >= 1 and batch_size >= 1 (got {cfg.folds}, {cfg.epochs}, "
                         f"{cfg.batch_size})")
    return cfg


PROFILES: dict[str, dict[str, Any]] = {
    # frozen e5 (the mean of its last four layers) and frozen EfficientNet-Lite0 emote features,
    # cached; trains the projections, the offsets and tau. Chosen on the folds' validation videos
    # (bench/emoji_ablation.py; README "The emoji model")
    "cpu": {},
    # fine-tunes the text encoder too (on a GPU)
    "gpu": {"freeze_text_encoder": False, "epochs": 6, "batch_size": 64, "lr_projection": 5e-4,
            "fold_checkpoints": False, "threads": None},
    # the demo's: hashed character n-grams and the emote CNN trained from scratch, no pretrained
    # weights, the log-prior bias; 3 folds (settings chosen on the demo's validation videos)
    "light": {"text_encoder": "ngrams", "freeze_text_encoder": False, "text_prefix": "", "max_len": 256,
              "epochs": 6, "lr_text_encoder": 2e-3, "lr_projection": 1e-3, "lr_image_encoder": 1e-3,
              "image_encoder": "scratch", "image_channels": (8, 16, 32, 64), "hidden_dim": 128, "embed_dim": 64,
              "folds": 3, "prior_bias": True, "dropout": 0.2},
}


def profile_config(profile: str = "cpu", **overrides: Any) -> TrainConfig:
    """The named profile's config with `overrides` (None values ignored)."""
    return from_profile(TrainConfig, PROFILES, profile, overrides, check_config)


# -- data: one row per comment, every emote with more than N comments in all the data ---------------
@dataclass
class Data:
    """Everything the runs share. `labels` are the emotes more than `min_comments` comments carry
    in all the data (the registered model's; a fold picks its own among them), most frequent first."""

    comments: pd.DataFrame  # id, text (cleaned as the preprocessor cleans), raw, video, labels, counts
    labels: list[str]
    counts: np.ndarray  # [N, L] occurrences of each label in each comment
    rank: np.ndarray  # [N, L] order of first appearance (ties of the main emote go to the first)
    main: np.ndarray  # [N] the main emote among `labels`
    images: EmoteImages
    pixels: torch.Tensor  # [M, 3, 72, 72] every image of every label
    image_inputs: torch.Tensor  # what the image tower reads: `pixels`, or their frozen features [M, 1280]
    owner: torch.Tensor  # [M] the label of each image
    preprocessor: TextPreprocessor
    encoder: torch.nn.Module  # frozen (its features below), or the initial weights to train
    prepared: dict[str, Any]  # the config fields the inputs above were prepared with (PREPARED)
    features: torch.Tensor | None = None  # [N, H] frozen-encoder outputs
    ids: torch.Tensor | None = None  # [N, L] token ids (trained encoder)
    mask: torch.Tensor | None = None
    cache_dir: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)  # baselines, by fold and labels


def prepare_data(rows: pd.DataFrame, cfg: TrainConfig, *, bilibili_images: Mapping[str, str | Path] | None = None,
                 map_file: str | Path | None = None, cache_dir: str | Path | None = None,
                 progress: bool = False) -> Data:
    """(comment, emote) rows (`rpid, emoji_alt`, `message` and/or `sentence`, optionally `bvid`,
    `occurrences`) → comments, labels, images and text inputs. Texts are cleaned by the model's own
    preprocessor (emote tokens removed from `message`; `sentence` where there is no message), so
    training and scoring see the same text. `cache_dir` holds the feature cache (`features/`)
    and the baselines' (`baselines/`)."""
    started = time.perf_counter()
    check_config(cfg)
    torch.manual_seed(cfg.seed)  # a trained encoder's initial weights
    tokenizer = _tokenizer(cfg)
    preprocessor = TextPreprocessor(tokenizer, clean="strip_emotes")
    if rows.empty:
        raise ValueError("no training rows: the emoji comments are empty")
    raw = rows["message"] if "message" in rows else rows["sentence"]
    if "message" in rows and "sentence" in rows:
        raw = raw.where(raw.notna() & (raw.astype(str) != ""), rows["sentence"])
    rows = rows.assign(raw=raw.fillna("").astype(str))
    rows = rows.assign(text=preprocessor.texts(rows["raw"].tolist()))
    comments = emote_comments(rows, text_col="text")
    first = rows.drop_duplicates("rpid")
    raw_of = dict(zip(first["rpid"].astype(str), first["raw"], strict=True))
    comments["raw"] = comments["id"].map(raw_of)

    # labels: emotes carried by more than N comments (the warehouse's emoji_training_set rule)
    carried = pd.Series([lab for labs in comments["labels"] for lab in labs]).value_counts()
    labels = sorted((lab for lab, n in carried.items() if n > cfg.min_comments), key=lambda lab: (-carried[lab], lab))
    if not labels:
        raise ValueError(f"no emote has more than {cfg.min_comments} comments (min_comments); the largest has "
                         f"{int(carried.max()) if len(carried) else 0}")
    index = {lab: i for i, lab in enumerate(labels)}
    keep = comments["labels"].map(lambda labs: any(lab in index for lab in labs)).to_numpy(bool)
    comments = comments[keep].reset_index(drop=True)
    counts = np.zeros((len(comments), len(labels)), np.float32)
    rank = np.full((len(comments), len(labels)), len(labels), np.int64)
    for i, (labs, cnts) in enumerate(zip(comments["labels"], comments["counts"], strict=True)):
        for position, (lab, n) in enumerate((lab, n) for lab, n in zip(labs, cnts, strict=True) if lab in index):
            counts[i, index[lab]] += n
            rank[i, index[lab]] = min(rank[i, index[lab]], position)
    main = _main(counts, rank)

    # emote images, every source, every label
    images = build_emote_images(labels, bilibili_images=bilibili_images, map_file=map_file)

    # text: an encoder, and (frozen) its cached features
    encoder = build_text_encoder(_model_config(cfg, num_emotes=len(labels)), pretrained=True)
    pixels = to_pixels(images.images)
    if cfg.image_encoder == "efficientnet":
        image_inputs = torch.from_numpy(_emote_image_features(images.images, cache_dir, progress))
    else:
        image_inputs = pixels
    data = Data(comments=comments, labels=labels, counts=counts, rank=rank, main=main, images=images,
                pixels=pixels, image_inputs=image_inputs, owner=torch.from_numpy(images.owner),
                preprocessor=preprocessor,
                encoder=encoder, prepared=_prepared(cfg), cache_dir=None if cache_dir is None else Path(cache_dir))
    texts = comments["text"].tolist()
    if cfg.freeze_text_encoder:
        root = None if cache_dir is None else Path(cache_dir) / "features"
        data.features = torch.from_numpy(text_features(encoder, tokenizer, texts, root=root,
                                                       batch_size=cfg.embed_batch_size, progress=progress))
    else:
        ids, mask = tokenizer.encode(texts, pad_to_max=True)
        data.ids, data.mask = torch.from_numpy(ids), torch.from_numpy(mask)
    data.seconds["prepare"] = round(time.perf_counter() - started, 1)
    return data


def _main(counts: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per row, the column with the most occurrences (ties: the first to appear); -1 for none."""
    key = np.where(counts > 0, counts * (rank.shape[1] + 1) - rank, -np.inf)
    main = key.argmax(axis=1) if key.size else np.zeros(len(counts), np.int64)
    return np.where(counts.sum(axis=1) > 0, main, -1).astype(np.int64)


@dataclass
class View:
    """One run's labels (a subset of `Data.labels`, its own order) and what every comment means in them."""

    labels: list[str]
    cols: np.ndarray  # [E] their indices in Data.labels
    main: np.ndarray  # [N] each comment's main emote among them (-1: it carries none)
    label_sets: list[list[int]]
    target: torch.Tensor  # [N, E] occurrences as a distribution (zeros where it carries none)
    own: torch.Tensor  # [N, E] bool
    images: torch.Tensor  # the image tower's inputs for these labels' images
    owner: torch.Tensor
    twins: list[str | None]  # [E] each label's Unicode twin

    def of(self, global_index: np.ndarray) -> np.ndarray:
        """Data.labels indices → this view's (-1 where it has no such label)."""
        size = max(int(self.cols.max(initial=-1)), int(np.max(global_index, initial=-1))) + 1
        lookup = np.full(max(size, 1), -1, np.int64)
        lookup[self.cols] = np.arange(len(self.cols))
        return np.where(global_index >= 0, lookup[np.maximum(global_index, 0)], -1)


def label_view(data: Data, rows: np.ndarray, min_comments: int) -> View:
    """The labels of a run that may see `rows`: emotes more than `min_comments` of those comments carry."""
    carried = (data.counts[rows] > 0).sum(axis=0)
    cols = np.array(sorted((j for j in range(len(data.labels)) if carried[j] > min_comments),
                           key=lambda j: (-carried[j], data.labels[j])), dtype=np.int64)
    if not cols.size:
        raise ValueError(f"no emote has more than {min_comments} comments in the training videos of this fold")
    counts, rank = data.counts[:, cols], data.rank[:, cols]
    total = counts.sum(axis=1, keepdims=True)
    own = counts > 0
    images = np.isin(data.owner.numpy(), cols)
    remap = np.full(len(data.labels), -1, np.int64)
    remap[cols] = np.arange(len(cols))
    return View(labels=[data.labels[j] for j in cols], cols=cols, main=_main(counts, rank),
                label_sets=[np.flatnonzero(r).tolist() for r in own],
                target=torch.from_numpy(np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)),
                own=torch.from_numpy(own), images=data.image_inputs[torch.from_numpy(images)],
                owner=torch.from_numpy(remap[data.owner.numpy()[images]]),
                twins=[data.images.twins.get(data.labels[j]) for j in cols])


def smoothed_target(view: View, train: np.ndarray, eps: float) -> torch.Tensor:
    """`view.target` with a share `eps` of each row moved to related emotes. Two relations, each
    normalised per emote: how often emote i's comments in `train` also carry each other emote, and
    the emotes sharing its Unicode twin (equally); an emote with both splits its share between them
    half and half, one with either gives it all to that one, one with neither keeps its mass."""
    if eps <= 0:
        return view.target
    own = view.own[train].float()
    co = own.T @ own
    twins = view.twins
    twin = torch.tensor([[float(bool(a) and a == b) for b in twins] for a in twins]).reshape(co.shape)
    relations = []
    for relation in (co, twin):
        relation = relation.clone().fill_diagonal_(0)
        total = relation.sum(dim=1, keepdim=True)
        relations.append((relation / total.clamp(min=1e-12), total.squeeze(1) > 0))
    (co, has_co), (twin, has_twin) = relations
    weight_co = torch.where(has_co & has_twin, 0.5, has_co.float()).unsqueeze(1)
    related = weight_co * co + (1 - weight_co) * twin  # a row without twins is zeros
    lonely = ~(has_co | has_twin)
    related[lonely, lonely] = 1.0
    return (1 - eps) * view.target + eps * view.target @ related


# -- one fit: the model-specific step, validation and hooks around the shared loop ------------------
def fit_model(data: Data, view: View, train: np.ndarray, val: np.ndarray, cfg: TrainConfig, *,
              out_dir: Path | None = None, stop_after: int | None = None, progress: bool = False,
              label: str = NAME) -> tuple[EmojiAlign, FitResult, torch.Tensor]:
    """Train on `train` rows, early-stopping on `val` (none: the schedule's epochs, or `stop_after`).
    Returns the model at its best epoch (eval mode, the frozen encoder not attached), the loop's
    result, and the prototype bank from every clean image."""
    if not train.size:
        raise ValueError(f"{label}: no comment to train on")
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    encoder = None if cfg.freeze_text_encoder else copy.deepcopy(data.encoder)
    if _prepared(cfg) != data.prepared:
        changed = sorted(k for k, v in _prepared(cfg).items() if data.prepared.get(k) != v)
        raise ValueError(f"the data were prepared with other {changed}: prepare_data again with this config")
    model_config = _model_config(cfg, num_emotes=len(view.labels))  # this run's settings, not the preparation's
    model_config.text_dim = int(data.encoder.dim)
    model_config.image_feature_dim = int(data.image_inputs.shape[1]) if data.image_inputs.dim() == 2 else 1280
    model_args = config_dict(model_config)
    model = EmojiAlign(_emoji_config(model_args), text_encoder=encoder).to(device)
    owner = view.owner.to(device)
    generator = torch.Generator()
    target = smoothed_target(view, train, cfg.label_smoothing)
    model.init_bias_(target[train].sum(dim=0))
    bank: dict[str, torch.Tensor] = {"value": prototype_bank(model, view, device)}
    draws = cfg.augment and cfg.image_encoder == "scratch"

    def batches(epoch: int):  # a seeded order per epoch, so a resumed run draws the same
        generator.manual_seed(cfg.seed * 1_000_003 + epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(train)
        for start in range(0, len(order), cfg.batch_size):
            yield order[start:start + cfg.batch_size]

    def step(batch: np.ndarray):  # prototypes from a fresh augmented draw of every image: both losses reach the CNN
        drawn = augment(view.images, generator=generator) if draws else view.images
        prototypes = model.prototypes(drawn.to(device), owner)
        text = _text(model, data, batch, device)
        ce = prototype_cross_entropy(text, prototypes, target[batch].to(device), model.tau, model.bias)
        triplet = hardest_negative_triplet(text, prototypes, torch.from_numpy(view.main[batch]).to(device),
                                           view.own[batch].to(device), margin=cfg.triplet_margin)
        return cfg.ce_weight * ce + cfg.triplet_weight * triplet, {"ce": ce.detach(), "triplet": triplet.detach()}

    def on_epoch_end(epoch: int) -> dict[str, float]:  # the bank that validation, test and export use
        bank["value"] = prototype_bank(model, view, device)
        return {"tau": model.tau.item()}

    def validate() -> dict[str, float]:
        scores = _scores(model, data, val, bank["value"], device)
        return _figures(scores, view.main[val], [view.label_sets[i] for i in val])

    groups = [ParamGroup("text_encoder", list(encoder.parameters()) if encoder is not None else [],
                         cfg.lr_text_encoder, cfg.weight_decay),
              ParamGroup("image_encoder", list(model.image.encoder.parameters()), cfg.lr_image_encoder,
                         cfg.weight_decay),
              ParamGroup("projection", [*model.text.proj.parameters(), *model.image.proj.parameters(),
                                        *([model.offsets] if model.offsets is not None else [])],
                         cfg.lr_projection, cfg.weight_decay),
              ParamGroup("bias", [model.bias] if model.bias is not None else [], cfg.lr_projection, 0.0),
              ParamGroup("tau", [model.tau], cfg.lr_tau, 0.0)]
    loop = LoopConfig(epochs=cfg.epochs, stop_after=stop_after, warmup_frac=cfg.warmup_frac, grad_clip=cfg.grad_clip,
                      amp=cfg.amp, monitor=cfg.monitor, mode="min" if cfg.monitor == "ce" else "max",
                      patience=cfg.patience,  # a fine-tuned transformer's optimiser state would triple the file
                      save_optimizer=cfg.freeze_text_encoder or cfg.text_encoder != "transformers")
    result = fit(model, groups=groups, batches=batches, steps_per_epoch=math.ceil(len(train) / cfg.batch_size),
                 step=step, validate=validate if val.size else None, config=loop, out_dir=out_dir,
                 model_args=model_args, run_config=config_dict(cfg), device=device, progress=progress, label=label,
                 hooks=Hooks(on_step_end=lambda _: model.clamp_tau_(), on_epoch_end=on_epoch_end),
                 extra=lambda: {"name": NAME, "task": TASK, "labels": view.labels,
                                "preprocessor": data.preprocessor.to_dict(), "prototypes": bank["value"].cpu(),
                                "tau": model.tau.item(), "bias": _bias(model),
                                "encoder_in_state": not cfg.freeze_text_encoder})
    return model.eval(), result, prototype_bank(model, view, device)


def _bias(model: EmojiAlign) -> torch.Tensor | None:
    return None if model.bias is None else model.bias.detach().cpu().clone()


def _figures(logits: np.ndarray, main: np.ndarray, label_sets: list[list[int]]) -> dict[str, float]:
    """Validation figures: Top-1/Top-5 strict and the cross-entropy of the main emote."""
    figures = ranking_metrics(logits, main=main, label_sets=label_sets)
    figures["ce"] = (float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(main))) if len(main)
                     else float("nan"))
    return {k: figures[k] for k in ("top1_strict", "top5_strict", "ce")}


@torch.no_grad()
def prototype_bank(model: EmojiAlign, view: View, device: torch.device) -> torch.Tensor:
    """The prototypes from every clean image (eval mode): what validation, test and export use."""
    was_training = model.training
    model.eval()
    bank = model.prototypes(view.images.to(device), view.owner.to(device))
    model.train(was_training)
    return bank


def _text(model: EmojiAlign, data: Data, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Text embeddings of some comments: from cached features, or through the trained encoder."""
    if data.features is not None:
        return model.text.from_features(data.features[rows].to(device))
    mask = data.mask[rows]
    width = max(1, int(mask.sum(dim=1).max()))
    return model.text(data.ids[rows, :width].to(device), mask[:, :width].to(device))


@torch.no_grad()
def _scores(model: EmojiAlign, data: Data, rows: np.ndarray, bank: torch.Tensor, device: torch.device,
            batch_size: int = 256) -> np.ndarray:
    """Logits [rows, E]: cosine similarities / tau + bias, as the exported ranker computes them."""
    was_training = model.training
    model.eval()
    out = [model.logits(_text(model, data, rows[s:s + batch_size], device), bank).float().cpu().numpy()
           for s in range(0, len(rows), batch_size)]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, bank.shape[0]), np.float32)


# -- the folds: model and baselines on the same rows, mean ± sd --------------------------------------
def cross_validate(data: Data, cfg: TrainConfig, *, out_dir: Path | None = None,
                   progress: bool = False) -> dict[str, Any]:
    """Run every fold (see the module's docstring). Returns the folds' splits and figures, their
    mean ± sd per method, the pooled out-of-fold report and the epoch chosen for the retrain."""
    started = time.perf_counter()
    frame = pd.DataFrame({"rpid": data.comments["id"], "bvid": data.comments["video"]})
    splits = video_folds(frame, k=cfg.folds, val_frac=cfg.val_frac, seed=cfg.seed)
    texts = data.comments["text"].to_numpy()
    device = pick_device(cfg.device)
    oof = np.full((len(data.comments), len(data.labels)), -np.inf, np.float32)
    tested = np.zeros(len(data.comments), bool)
    folds = []
    for split in splits:
        f = split.params["fold"]
        part = split.assign(data.comments["id"])
        view = label_view(data, np.flatnonzero(part != "test"), cfg.min_comments)
        train = np.flatnonzero((part == "train") & (view.main >= 0))
        val = np.flatnonzero((part == "val") & (view.main >= 0))
        test = np.flatnonzero(part == "test")
        fold_dir = out_dir / f"fold-{f + 1}" if out_dir is not None and cfg.fold_checkpoints else None
        model, fitted, bank = fit_model(data, view, train, val, cfg, out_dir=fold_dir, progress=progress,
                                        label=f"{NAME} fold {f + 1}/{cfg.folds}")
        scores = _scores(model, data, test, bank, device)
        tfidf_val, tfidf, tfidf_info = _tfidf(data, view, split, train, val, test, texts, cfg)
        majority = majority_baseline(view.main[train], num_labels=len(view.labels), n=len(test))
        methods = {NAME: scores, "tfidf": tfidf, "majority": majority}
        if cfg.tfidf_blend:
            weight = _blend_weight(_scores(model, data, val, bank, device), tfidf_val, view.main[val])
            methods["blend"] = blend_scores(scores, tfidf, weight)
            tfidf_info = {**tfidf_info, "blend_weight": weight}
        main = view.of(data.main[test])  # -1: its main emote is no label of this fold, a miss for all
        sets = [view.label_sets[i] for i in test]
        evaluate = {"per_emote": cfg.balanced_per_emote, "seed": cfg.seed, "strata": data.main[test]}
        results = {name: evaluate_ranking(s, main=main, label_sets=sets, **evaluate) for name, s in methods.items()}
        oof[np.ix_(test, view.cols)] = scores
        tested[test] = True
        folds.append({"fold": f + 1, "test_videos": split.params["test_videos"],
                      "val_videos": split.params["val_videos"],
                      "sizes": {"train": int(train.size), "val": int(val.size), "test": int(test.size)},
                      "unknown_main": int((main < 0).sum()), "labels": view.labels,
                      "best_epoch": fitted.best_epoch, "epochs_run": fitted.epochs_run,
                      "stopped_early": fitted.stopped_early, "tfidf": tfidf_info, "results": results,
                      "history": fitted.history})
    rows = np.flatnonzero(tested)
    best_epochs = [fold["best_epoch"] for fold in folds]
    return {"k": cfg.folds, "splits": splits, "folds": folds, "summary": _aggregate(folds),
            "report": detailed_report(oof[rows], main=data.main[rows], labels=data.labels),
            "tested": int(rows.size), "best_epochs": best_epochs,
            "chosen_epochs": max(1, int(np.floor(np.median(best_epochs) + 0.5))),
            "seconds": round(time.perf_counter() - started, 1)}


def _tfidf(data: Data, view: View, split: Split, train: np.ndarray, val: np.ndarray, test: np.ndarray,
           texts: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """TF-IDF + LR on the fold's train rows, C chosen on its validation videos: its probabilities
    on the validation and the test rows, and its settings. Remembered per fold and labels (in
    memory, and on disk under the cache), so an ablation fits it once."""
    key = (split.params["fold"], split.params["k"], cfg.seed, tuple(view.labels), tuple(cfg.tfidf_cs),
           hash(split.parts["test"]), hash(split.parts["val"]))
    if key not in data.memo:
        cache = None if data.cache_dir is None else data.cache_dir / "baselines"
        scored, info = tfidf_logreg_baseline(texts[train], view.main[train], num_labels=len(view.labels),
                                             val_texts=texts[val], val_main=view.main[val],
                                             test_texts=texts[np.concatenate([val, test])], Cs=cfg.tfidf_cs,
                                             seed=cfg.seed, cache_dir=cache)
        data.memo[key] = (scored[:len(val)], scored[len(val):], info)
    return data.memo[key]


BLEND_WEIGHTS = tuple(round(w / 10, 1) for w in range(11))


def blend_scores(logits: np.ndarray, probs: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) x the model's log-softmax + weight x log(TF-IDF's probabilities + 1e-4)."""
    logits = torch.from_numpy(np.asarray(logits, np.float32))
    log_p = F.log_softmax(logits, dim=1).numpy() if logits.numel() else logits.numpy()
    return (1 - weight) * log_p + weight * np.log(np.asarray(probs, np.float32) + 1e-4)


def _blend_weight(val_logits: np.ndarray, val_probs: np.ndarray, val_main: np.ndarray) -> float:
    """The blend weight with the best validation Top-1 (strict; ties keep the smaller weight)."""
    if not len(val_main):
        return 0.0
    sets = [[int(m)] for m in val_main]
    scores = [topk_accuracy(blend_scores(val_logits, val_probs, w), sets, k=1) for w in BLEND_WEIGHTS]
    return BLEND_WEIGHTS[int(np.argmax(scores))]


def _aggregate(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """{method: {natural|balanced: {metric: {"mean", "sd", "folds": [...]}}}}."""
    out: dict[str, Any] = {}
    for method in folds[0]["results"]:
        out[method] = {}
        for part in ("natural", "balanced"):
            out[method][part] = {}
            for metric in METRICS:
                values = [fold["results"][method][part].get(metric) for fold in folds]
                mean, sd = mean_sd(values)
                out[method][part][metric] = {"mean": mean, "sd": sd, "folds": values}
    return out


# -- the registered model: every comment, the chosen epochs --------------------------------------------
def retrain(data: Data, cfg: TrainConfig, *, epochs: int, out_dir: Path | None = None,
            progress: bool = False) -> tuple[EmoteRanker, View, FitResult]:
    """Train on every comment with the labels from all of them for `epochs` of the schedule (no
    validation left: the last epoch is the best). Returns the exportable ranker (eval mode, on the
    CPU, the frozen encoder attached), its view and the loop's result."""
    everything = np.arange(len(data.comments))
    view = label_view(data, everything, cfg.min_comments)
    train = np.flatnonzero(view.main >= 0)
    model, fitted, bank = fit_model(data, view, train, np.zeros(0, np.int64), cfg, out_dir=out_dir,
                                    stop_after=min(epochs, cfg.epochs), progress=progress, label=f"{NAME} all data")
    if cfg.freeze_text_encoder:  # attach the frozen encoder: the ranker embeds raw ids
        model.text.encoder = data.encoder
    ranker = EmoteRanker(model.text, bank, model.tau.item(), _bias(model)).cpu().eval()
    return ranker, view, fitted


def train_emoji_align(rows: pd.DataFrame, *, out_dir: str | Path, config: TrainConfig | None = None,
                      bilibili_images: Mapping[str, str | Path] | None = None, map_file: str | Path | None = None,
                      cache_dir: str | Path | None = None, progress: bool = True) -> TrainResult:
    """The whole protocol on every emoji comment (`emoji_comments_keyed` rows: `rpid, bvid,
    emoji_alt, message, sentence`): folds, then the all-data retrain, which is returned (see the
    module's docstring). Writes checkpoints, the folds, metrics and `eval_summary.md` to `out_dir`;
    `bilibili_images` maps `[emote]` to its downloaded image file."""
    cfg = config or TrainConfig()
    with torch_threads(cfg.threads):
        return _train(rows, out_dir=Path(out_dir), cfg=cfg, bilibili_images=bilibili_images, map_file=map_file,
                      cache_dir=cache_dir, progress=progress)


def _train(rows: pd.DataFrame, *, out_dir: Path, cfg: TrainConfig, bilibili_images: Mapping[str, str | Path] | None,
           map_file: str | Path | None, cache_dir: str | Path | None, progress: bool) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = prepare_data(rows, cfg, bilibili_images=bilibili_images, map_file=map_file, cache_dir=cache_dir,
                        progress=progress)
    if cfg.protocol == "fit":  # a scheduled retrain: no folds (the gate judges it)
        epochs = cfg.retrain_epochs or cfg.epochs
        ranker, view, fitted = retrain(data, cfg, epochs=epochs, out_dir=out_dir, progress=progress)
        seconds = {"prepare": data.seconds["prepare"], "total": round(time.perf_counter() - started, 1)}
        metrics, summary = one_fit_report(NAME, profile=cfg.profile, epochs=epochs, rows=int((view.main >= 0).sum()),
                                          seconds=seconds, labels=view.labels)
        files = {"checkpoint": fitted.files["best"], "checkpoint_last": fitted.files["last"],
                 "metrics": write_json(out_dir / "metrics.json", metrics)}
    else:
        cv = cross_validate(data, cfg, out_dir=out_dir / "folds", progress=progress)
        epochs = cfg.retrain_epochs or cv["chosen_epochs"]
        t0 = time.perf_counter()
        ranker, view, fitted = retrain(data, cfg, epochs=epochs, out_dir=out_dir, progress=progress)
        seconds = {"prepare": data.seconds["prepare"], "folds": cv["seconds"],
                   "retrain": round(time.perf_counter() - t0, 1), "total": round(time.perf_counter() - started, 1)}
        metrics = _metrics(cv, data, view, cfg, epochs, seconds)
        files = {"checkpoint": fitted.files["best"], "checkpoint_last": fitted.files["last"],
                 "folds": write_json(out_dir / "folds.json", [s.to_dict() for s in cv["splits"]]),
                 "metrics": write_json(out_dir / "metrics.json", metrics)}
        summary = _summary(cv, data, view, cfg, epochs, fitted, seconds)
    (out_dir / "eval_summary.md").write_text(summary, encoding="utf-8")
    files["eval_summary"] = out_dir / "eval_summary.md"
    rng = np.random.default_rng(cfg.seed)
    picked = np.sort(rng.permutation(len(data.comments))[:cfg.quality_records])
    log.info("%s: %s", NAME, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    encoders = {}
    if cfg.text_encoder == "transformers":  # by content, never by folder (training.features)
        key = "text" if cfg.freeze_text_encoder else "text_fine_tuned_from"
        encoders[key] = encoder_fingerprint(cfg.text_encoder_path)
    return TrainResult(name=NAME, task=TASK, module=ranker, preprocessor=data.preprocessor,
                       head=Head("ranking", tuple(view.labels)), config=config_dict(cfg), metrics=metrics,
                       files=files, quality_records=data.comments["raw"].iloc[picked].tolist(),
                       output_names=("logits",), entity_kinds=("comment",), history=fitted.history, out_dir=out_dir,
                       encoders=encoders)


def _metrics(cv: dict[str, Any], data: Data, view: View, cfg: TrainConfig, epochs: int,
             seconds: dict[str, float]) -> dict[str, Any]:
    """Flat means (and `_sd`) first: the model's, then `tfidf_` and `majority_`; `balanced_` for the
    balanced sample. Then what they describe, every fold, and the retrain."""
    flat: dict[str, Any] = {"evaluation": f"video_folds(k={cv['k']})", "registered": "all_data_retrain"}
    for method in cv["summary"]:
        prefix = "" if method == NAME else f"{method}_"
        for part in ("natural", "balanced"):
            for metric in METRICS:
                value = cv["summary"][method][part][metric]
                name = f"{prefix}{'balanced_' if part == 'balanced' else ''}{metric}"
                flat[name], flat[f"{name}_sd"] = value["mean"], value["sd"]
    report = cv["report"]
    return {
        **flat,
        "describes": (f"means ± sd over {cv['k']} folds of whole videos ({cv['tested']} test comments); labels, "
                      f"thresholds, epochs and TF-IDF's C chosen without the test videos. The registered module "
                      f"is a retrain on all {int((view.main >= 0).sum())} comments for {epochs} epochs (the median "
                      f"of the folds' best epochs), which no fold measures."),
        "mean_rank": report["mean_rank"], "macro_f1": report["macro_f1"], "n_labels": len(view.labels),
        "min_comments": cfg.min_comments, "profile": cfg.profile, "folds": [_fold_metrics(f) for f in cv["folds"]],
        "report": report,
        "retrain": {"epochs": epochs, "best_epochs": cv["best_epochs"], "comments": int((view.main >= 0).sum()),
                    "labels": view.labels},
        "image_coverage": data.images.coverage(), "seconds": seconds, "train_seconds": seconds["total"],
    }


def _fold_metrics(fold: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fold.items() if k != "history"}


# -- the summary --------------------------------------------------------------------------------------
def _summary(cv: dict[str, Any], data: Data, view: View, cfg: TrainConfig, epochs: int, fitted: FitResult,
             seconds: dict[str, float]) -> str:
    k, summary, folds = cv["k"], cv["summary"], cv["folds"]
    names = {NAME: f"**{NAME} ({cfg.profile})**", "tfidf": "TF-IDF char 1-3-grams + LR", "majority": "majority",
             "blend": "model + TF-IDF (log-probabilities, weight on validation)"}
    methods = list(summary)

    def mean_table(part: str) -> list[str]:
        return markdown_table(["model", *METRICS], [
            [names[m], *(f"{summary[m][part][x]['mean']:.3f} ± {summary[m][part][x]['sd']:.3f}" for x in METRICS)]
            for m in methods])

    def fold_table(part: str) -> list[str]:
        figures = [f"{m} {x}" for m in methods for x in ("top1_strict", "top5_strict")]
        if part == "balanced":
            return markdown_table(["fold", "comments sampled", *figures], [
                [f["fold"], f["results"][NAME]["n_balanced"],
                 *(f["results"][m][part].get(x) for m in methods for x in ("top1_strict", "top5_strict"))]
                for f in folds])
        return markdown_table(
            ["fold", "test comments", "main not a label", "labels", "best epoch", "TF-IDF C", *figures],
            [[f["fold"], f["results"][NAME]["n"], f["unknown_main"], len(f["labels"]), f["best_epoch"],
              f["tfidf"].get("C"), *(f["results"][m][part].get(x) for m in methods for x in ("top1_strict", "top5_strict"))]
             for f in folds])

    report = cv["report"]
    protocol = [
        f"Evaluation `video_folds(k={k})`: {k} folds over whole videos, each video the test of one fold; "
        f"validation videos drawn from each fold's other videos (about {cfg.val_frac:.0%} of their comments); "
        "comments without a video only train. Per fold, the labels are the emotes more than "
        f"{cfg.min_comments} train+validation comments carry (test videos never counted); the model's epoch is "
        f"chosen on the validation videos (early stopping on `{cfg.monitor}`, patience {cfg.patience}, at most "
        f"{cfg.epochs} epochs); TF-IDF's C on the same videos from {list(cfg.tfidf_cs)}.",
        "",
        f"Test comments: those of the test videos carrying an emote more than {cfg.min_comments} comments carry "
        f"in all the data ({cv['tested']} over the folds); the main emote is their most frequent such emote. When "
        "it is no label of the fold (`main not a label` below), the comment is a miss for every method.",
        "",
        f"**The registered model is not any of these runs**: it is retrained on all {int((view.main >= 0).sum())} "
        f"comments with all {len(view.labels)} labels for {epochs} epochs (the median of the folds' best epochs "
        f"{cv['best_epochs']}) on the same schedule. The figures below describe the protocol that chose it.",
    ]
    sections: dict[str, list[str]] = {
        "How these figures were measured": protocol,
        f"Natural distribution (mean ± sd over {k} folds)": mean_table("natural"),
        f"Balanced sample (up to {cfg.balanced_per_emote} comments per main emote; mean ± sd)": mean_table("balanced"),
        "Per fold, natural": [*fold_table("natural"), "",
                              *(f"- fold {f['fold']}: test videos {', '.join(f['test_videos'])}; validation "
                                f"{', '.join(f['val_videos'])}" for f in folds)],
        "Per fold, balanced": fold_table("balanced"),
        "Per emote (out-of-fold predictions, Top-1 against the main emote)": [
            f"Mean rank of the main emote: {report['mean_rank']:.2f} of {len(data.labels)}; macro F1 "
            f"{report['macro_f1']:.3f}.", "",
            *markdown_table(["emote", "support", "precision", "recall", "F1", "mean rank", "predicted"],
                            [[lab, v["support"], v["precision"], v["recall"], v["f1"], v["mean_rank"], v["predicted"]]
                             for lab, v in report["per_emote"].items()])],
        "Most common confusions (main → predicted)": markdown_table(
            ["main emote", "predicted", "comments"],
            [[c["true"], c["predicted"], c["count"]] for c in report["confusions"]]),
        "Top-1 predictions": markdown_table(["emote", "comments"], list(report["top1_distribution"].items())),
    }
    coverage = data.images.coverage()
    sections["Emote images"] = [
        f"{len(data.images.images)} images for {len(data.labels)} emotes.", "",
        *markdown_table(["source", "emotes", "share"], [[s, v["emotes"], v["share"]] for s, v in coverage.items()]), "",
        "No Unicode twin: " + (", ".join(e for e, t in data.images.twins.items() if not t) or "none")]
    hist = fitted.history
    source = Path(cfg.text_encoder_path).name if cfg.text_encoder_path else "trained from scratch"
    sections["Training the registered model"] = [
        f"Profile {cfg.profile}: text encoder {cfg.text_encoder} ({source}), "
        f"{'frozen with cached features' if cfg.freeze_text_encoder else 'trained'}; {seconds['total']:.0f} s in all: "
        f"{seconds['prepare']:.0f} s preparing text and images, {seconds['folds']:.0f} s for the folds, "
        f"{seconds['retrain']:.0f} s for the retrain.", "",
        *markdown_table(list(hist[0]), [[(f"{v:.2e}" if k.startswith("lr_") else v) for k, v in r.items()] for r in hist])]
    return eval_summary_markdown(title=f"{NAME}: emotes ranked by text-image alignment", sections=sections)


# -- checkpoints ---------------------------------------------------------------------------------------
def load_ranker(path: str | Path) -> tuple[EmoteRanker, TextPreprocessor, Head]:
    """Rebuild the ranker (eval mode), its preprocessor and head from a checkpoint written by
    `fit_model` (a frozen encoder is loaded from its folder or id, as recorded)."""
    ckpt = load_checkpoint(path)
    config = _emoji_config(ckpt["model_args"])
    extra = ckpt["extra"]
    encoder = build_text_encoder(config, pretrained=not extra["encoder_in_state"])
    model = EmojiAlign(config, text_encoder=encoder)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    missing = [k for k in missing if extra["encoder_in_state"] or not k.startswith("text.encoder.")]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit its model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    ranker = EmoteRanker(model.text, extra["prototypes"], extra["tau"], extra.get("bias")).eval()
    preprocessor = preprocessor_from_dict(extra["preprocessor"])
    return ranker, preprocessor, Head("ranking", tuple(extra["labels"]))


# -- helpers -------------------------------------------------------------------------------------------
def _tokenizer(cfg: TrainConfig) -> Tokenizer:
    if cfg.text_encoder == "ngrams":
        return HashedNgramTokenizer(buckets=cfg.ngram_buckets, max_n=cfg.ngram_max_n, max_len=cfg.max_len)
    return text_tokenizer(cfg)


# what prepare_data computes its inputs from: a run with other values needs the data prepared again
PREPARED = ("text_encoder", "text_encoder_path", "text_prefix", "text_pooling", "max_len", "freeze_text_encoder",
            "ngram_buckets", "ngram_max_n", "ngram_dim", "image_encoder", "min_comments")


def _prepared(cfg: TrainConfig) -> dict[str, Any]:
    out = {name: getattr(cfg, name) for name in PREPARED}
    if not cfg.freeze_text_encoder:
        out["seed"] = cfg.seed  # a trained encoder starts from weights drawn with it
    return out


def _model_config(cfg: TrainConfig, *, num_emotes: int) -> EmojiAlignConfig:
    """The model's settings from the training config (same names); text_dim is the encoder's, set later."""
    shared = {f.name for f in fields(EmojiAlignConfig)} & {f.name for f in fields(TrainConfig)}
    return EmojiAlignConfig(num_emotes=num_emotes, ngram_vocab_size=cfg.ngram_buckets + 1,
                            **{name: getattr(cfg, name) for name in shared})


def _emoji_config(model_args: Mapping[str, Any]) -> EmojiAlignConfig:
    # checkpoints from before the bias, the image encoder choice and the pooling choice had none of them
    defaults = {"prior_bias": False, "image_encoder": "scratch", "text_pooling": "mean"}
    return EmojiAlignConfig(**{**defaults, **model_args, "image_channels": tuple(model_args["image_channels"])})


def _emote_image_features(images: np.ndarray, cache_dir: str | Path | None, progress: bool) -> np.ndarray:
    """Frozen EfficientNet-Lite0 features of the emote images, through the shared feature cache."""
    from ..encoders.image import ImageEncoder
    from ..features import array_image_features

    root = None if cache_dir is None else Path(cache_dir) / "features"
    return array_image_features(ImageEncoder.pretrained(), images, root=root, progress=progress)
