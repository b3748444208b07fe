"""Train emoji_align, read top to bottom: config, data, emote images, text inputs, the training run
(`fit`), evaluation beside the baselines, save.

Two runs share the data. "unseen_videos" holds out whole videos for test (comments without a video
stay in training): the figures we quote. "by_comment" splits train/val/test by comment: the model
that is exported and registered. Each run keeps the epoch with the best validation Top-1 (strict)
and the last one, and is evaluated once on its test part beside the majority and TF-IDF baselines.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress

from ..baselines import majority_baseline, tfidf_logreg_baseline
from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import emote_comments
from ..emote_images import EmoteImages, build_emote_images
from ..encoders.emote_image import augment, to_pixels
from ..encoders.text import embed_texts
from ..encoders.tokenizers import HashedNgramTokenizer, TextTokenizer, Tokenizer, save_tokenizer, tokenizer_from_dict
from ..evaluation import detailed_report, evaluate_ranking, results_table
from ..metrics import ranking_metrics
from ..report import eval_summary_markdown, markdown_table
from ..splits import Split, split_by_comment, split_by_video
from .losses import hardest_negative_triplet, prototype_cross_entropy
from .model import EmojiAlign, EmojiAlignConfig, EmoteRanker, build_text_encoder

__all__ = ["NAME", "PROFILES", "TASK", "TrainConfig", "TrainResult", "load_ranker", "profile_config",
           "train_emoji_align"]

NAME = "emoji_align"
TASK = "emoji"
log = logging.getLogger(__name__)


# -- config: flat defaults (the cpu profile); a profile overrides a few; saved with the checkpoint ---
@dataclass
class TrainConfig:
    profile: str = "cpu"
    seed: int = 0
    device: str = "auto"  # auto: cuda when torch sees one
    # text encoder
    text_encoder: str = "transformers"  # or "ngrams"
    text_encoder_path: str | None = None  # a folder (e.g. $EMOPULSE_HOME/models/multilingual-e5-small) or hub id
    text_prefix: str = "query: "  # e5 models expect it; "" for others
    max_len: int = 96
    freeze_text_encoder: bool = True  # frozen: embeddings computed once and cached
    ngram_buckets: int = 1 << 15
    ngram_max_n: int = 3
    ngram_dim: int = 64
    # towers and space
    embed_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.2
    image_channels: tuple[int, ...] = (24, 48, 96, 192)
    emote_offsets: bool = True
    augment: bool = True
    # loss
    tau_init: float = 0.07
    tau_min: float = 0.03
    tau_max: float = 0.20
    ce_weight: float = 1.0
    triplet_weight: float = 0.5
    triplet_margin: float = 0.2
    # optimisation
    epochs: int = 12
    batch_size: int = 128
    warmup_frac: float = 0.05
    lr_text_encoder: float = 2e-5
    lr_image_encoder: float = 1e-3
    lr_projection: float = 1e-3
    lr_tau: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    amp: bool = False  # bf16 mixed precision on CUDA; off by default (the seed saw NaN gradients with AMP)
    # splits and evaluation
    val_frac: float = 0.15
    test_frac: float = 0.15
    video_test_frac: float = 0.3
    balanced_per_emote: int = 35
    tfidf_cs: tuple[float, ...] = (0.5, 2.0, 8.0)
    unseen_videos: bool = True  # also run the unseen-videos evaluation
    embed_batch_size: int = 64


PROFILES: dict[str, dict[str, Any]] = {
    # frozen e5, cached embeddings; trains the projections, the image tower, the offsets and tau
    "cpu": {},
    # fine-tunes the text encoder too (on a GPU)
    "gpu": {"freeze_text_encoder": False, "epochs": 6, "batch_size": 64, "lr_projection": 5e-4},
    # the demo's: hashed character n-grams trained from scratch, no pretrained weights
    "light": {"text_encoder": "ngrams", "freeze_text_encoder": False, "text_prefix": "", "max_len": 256,
              "epochs": 6, "lr_text_encoder": 5e-3, "lr_projection": 3e-3, "lr_image_encoder": 3e-3,
              "image_channels": (8, 16, 32, 64), "hidden_dim": 128, "embed_dim": 64},
}


def profile_config(profile: str = "cpu", **overrides: Any) -> TrainConfig:
    """The named profile's config with `overrides` (None values ignored)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: one of {sorted(PROFILES)}")
    return TrainConfig(profile=profile, **{**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass
class TrainResult:
    """What training leaves: the registered run's ranker (eval mode), its preprocessing, files."""

    name: str
    task: str
    model: EmoteRanker
    tokenizer: Tokenizer
    labels: list[str]
    config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    split: Split
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class Data:
    """Everything a run needs, for all comments (a split picks rows)."""

    comments: pd.DataFrame
    labels: list[str]
    main: np.ndarray  # [N] main emote index
    label_sets: list[list[int]]
    target: torch.Tensor  # [N, E] distribution over the comment's emotes (by occurrences)
    own: torch.Tensor  # [N, E] bool: the comment carries the emote
    pixels: torch.Tensor  # [M, 3, 72, 72] every image of every emote
    owner: torch.Tensor  # [M] the emote of each image
    features: torch.Tensor | None = None  # [N, H] frozen-encoder outputs
    ids: torch.Tensor | None = None  # [N, L] token ids (trained encoder)
    mask: torch.Tensor | None = None


def train_emoji_align(rows: pd.DataFrame, *, out_dir: str | Path, config: TrainConfig | None = None,
                      bilibili_images: Mapping[str, str | Path] | None = None, map_file: str | Path | None = None,
                      cache_dir: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train on `emoji_training_set`-shaped rows (`rpid, emoji_alt, sentence`, optionally `bvid`,
    `message`/`occurrences`); write checkpoints, tokenizer, labels, splits, metrics and the eval
    summary into `out_dir`. `bilibili_images` maps `[emote]` to its downloaded image file."""
    cfg = config or TrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))

    # -- data: one row per comment; emotes ordered by frequency --------------------------------------
    comments = emote_comments(rows)
    if comments.empty:
        raise ValueError("no training rows: the emoji training set is empty")
    freq = pd.Series([lab for labs in comments["labels"] for lab in labs]).value_counts()
    labels = sorted(freq.index, key=lambda lab: (-freq[lab], lab))
    index = {lab: i for i, lab in enumerate(labels)}
    target = np.zeros((len(comments), len(labels)), dtype=np.float32)
    for i, (labs, counts) in enumerate(zip(comments["labels"], comments["counts"], strict=True)):
        for lab, count in zip(labs, counts, strict=True):
            target[i, index[lab]] = count

    # -- emote images: every source, every emote -----------------------------------------------------
    images = build_emote_images(labels, bilibili_images=bilibili_images, map_file=map_file)

    # -- text: a tokenizer, an encoder, and (frozen) its cached outputs --------------------------------
    tokenizer = _tokenizer(cfg)
    model_config = _model_config(cfg, num_emotes=len(labels))
    encoder = build_text_encoder(model_config, pretrained=True)
    model_config.text_dim = int(encoder.dim)
    model_args = asdict(model_config)
    data = Data(comments=comments, labels=labels, main=comments["main"].map(index).to_numpy(np.int64),
                label_sets=[[index[lab] for lab in labs] for labs in comments["labels"]],
                target=torch.from_numpy(target / target.sum(axis=1, keepdims=True)),
                own=torch.from_numpy(target > 0), pixels=to_pixels(images.images),
                owner=torch.from_numpy(images.owner))
    texts = comments["text"].tolist()
    if cfg.freeze_text_encoder:
        data.features = torch.from_numpy(embed_texts(encoder, tokenizer, texts, cache_dir=cache_dir,
                                                     batch_size=cfg.embed_batch_size, progress=progress))
    else:
        ids, mask = tokenizer.encode(texts, pad_to_max=True)
        data.ids, data.mask = torch.from_numpy(ids), torch.from_numpy(mask)
    embed_seconds = time.perf_counter() - started

    # -- the runs: unseen videos (quoted), then by comment (registered) ---------------------------------
    splits = {}
    if cfg.unseen_videos:
        frame = pd.DataFrame({"rpid": comments["id"], "bvid": comments["video"]})
        splits["unseen_videos"] = split_by_video(frame, test_frac=cfg.video_test_frac, val_frac=cfg.val_frac,
                                                 seed=cfg.seed)
    splits["by_comment"] = split_by_comment(comments["id"], val_frac=cfg.val_frac, test_frac=cfg.test_frac,
                                            seed=cfg.seed)
    runs = {name: _run(name, split, data, cfg, model_args, encoder, tokenizer, out_dir / name, device, progress)
            for name, split in splits.items()}
    seconds = time.perf_counter() - started

    # -- metrics: the quoted run's figures at the top, both runs in full below ------------------------
    quoted = runs.get("unseen_videos", runs["by_comment"])
    metrics: dict[str, Any] = {
        "evaluation": "unseen_videos" if "unseen_videos" in runs else "by_comment",
        **quoted["results"][NAME]["natural"],
        **{f"balanced_{k}": v for k, v in quoted["results"][NAME]["balanced"].items()},
        **{f"{base}_{k}": v for base in ("majority", "tfidf") for k, v in quoted["results"][base]["natural"].items()},
        **{f"{base}_balanced_{k}": v for base in ("majority", "tfidf")
           for k, v in quoted["results"][base]["balanced"].items()},
        "mean_rank": quoted["report"]["mean_rank"], "macro_f1": quoted["report"]["macro_f1"],
        "n_labels": len(labels), "profile": cfg.profile, "train_seconds": round(seconds, 1),
        "embed_seconds": round(embed_seconds, 1), "image_coverage": images.coverage(),
        "runs": {name: _run_metrics(run) for name, run in runs.items()},
    }

    # -- save: the registered run's checkpoints, preprocessing, splits, metrics, summary ---------------
    registered = runs["by_comment"]
    files = {
        "checkpoint": _copy(registered["files"]["best"], out_dir / "ckpt.pt"),
        "checkpoint_last": _copy(registered["files"]["last"], out_dir / "ckpt_last.pt"),
        "tokenizer": save_tokenizer(tokenizer, out_dir / "tokenizer.json"),
        "labels": _write_json(out_dir / "labels.json", labels),
        "split": registered["split"].save(out_dir / "split.json"),
        "metrics": _write_json(out_dir / "metrics.json", metrics),
    }
    if "unseen_videos" in runs:
        files["split_unseen_videos"] = runs["unseen_videos"]["split"].save(out_dir / "split_unseen_videos.json")
    summary = _summary(runs, images, cfg, labels, seconds, embed_seconds)
    (out_dir / "eval_summary.md").write_text(summary, encoding="utf-8")
    files["eval_summary"] = out_dir / "eval_summary.md"
    log.info("emoji_align: %s", {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    return TrainResult(name=NAME, task=TASK, model=registered["ranker"], tokenizer=tokenizer, labels=labels,
                       config=cfg, metrics=metrics, history=registered["history"], split=registered["split"],
                       out_dir=out_dir, files=files)


# -- one run: fit on train, pick the epoch by val, evaluate on test beside the baselines -------------
def _run(name: str, split: Split, data: Data, cfg: TrainConfig, model_args: dict[str, Any], encoder: torch.nn.Module,
         tokenizer: Tokenizer, run_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    part = split.assign(data.comments["id"])
    rows = {p: np.flatnonzero(part == p) for p in ("train", "val", "test")}
    if not rows["train"].size:
        raise ValueError(f"{name}: the split leaves no comment for training")
    trained_encoder = None if cfg.freeze_text_encoder else copy.deepcopy(encoder)
    model, history, best_epoch, files = fit(data, rows, cfg, model_args, trained_encoder, tokenizer,
                                            run_dir, device, progress=progress, label=name)
    bank = prototype_bank(model, data, device)
    test = rows["test"]
    scores = _scores(model, data, test, bank, device)
    main, sets = data.main[test], [data.label_sets[i] for i in test]
    evaluate = {"per_emote": cfg.balanced_per_emote, "seed": cfg.seed}
    texts = data.comments["text"].to_numpy()
    tfidf, tfidf_info = tfidf_logreg_baseline(texts[rows["train"]], data.main[rows["train"]],
                                              num_labels=len(data.labels), val_texts=texts[rows["val"]],
                                              val_main=data.main[rows["val"]], test_texts=texts[test],
                                              Cs=cfg.tfidf_cs, seed=cfg.seed)
    majority = majority_baseline(data.main[rows["train"]], num_labels=len(data.labels), n=len(test))
    results = {NAME: evaluate_ranking(scores, main=main, label_sets=sets, **evaluate),
               "tfidf": evaluate_ranking(tfidf, main=main, label_sets=sets, **evaluate),
               "majority": evaluate_ranking(majority, main=main, label_sets=sets, **evaluate)}
    if cfg.freeze_text_encoder:  # attach the frozen encoder: the ranker embeds raw text
        model.text.encoder = encoder
    ranker = EmoteRanker(model.text, bank, model.tau.item()).cpu().eval()
    return {"split": split, "sizes": {p: int(r.size) for p, r in rows.items()}, "history": history,
            "best_epoch": best_epoch, "results": results, "tfidf": tfidf_info, "ranker": ranker,
            "report": detailed_report(scores, main=main, labels=data.labels), "files": files}


def fit(data: Data, rows: Mapping[str, np.ndarray], cfg: TrainConfig, model_args: dict[str, Any],
        encoder: torch.nn.Module | None, tokenizer: Tokenizer, run_dir: Path, device: torch.device, *,
        progress: bool = True, label: str = NAME) -> tuple[EmojiAlign, list[dict[str, Any]], int, dict[str, Path]]:
    """The training loop. `encoder` is the text encoder to train (None: frozen, cached features).
    Returns the model at its best validation epoch (eval mode), the history, that epoch and the files."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = EmojiAlign(EmojiAlignConfig(**model_args), text_encoder=encoder).to(device)

    # -- optimiser: one learning rate per part, warm-up then cosine ------------------------------------
    groups = {"text_encoder": list(encoder.parameters()) if encoder is not None else [],
              "image_encoder": list(model.image.encoder.parameters()),
              "projection": [*model.text.proj.parameters(), *model.image.proj.parameters(),
                             *([model.offsets] if model.offsets is not None else [])],
              "tau": [model.tau]}
    lrs = {"text_encoder": cfg.lr_text_encoder, "image_encoder": cfg.lr_image_encoder,
           "projection": cfg.lr_projection, "tau": cfg.lr_tau}
    optimizer = torch.optim.AdamW([{"params": p, "lr": lrs[g], "name": g, "weight_decay": 0.0 if g == "tau"
                                    else cfg.weight_decay} for g, p in groups.items() if p])
    train_rows = rows["train"]
    steps_per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, round(cfg.warmup_frac * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.5 * (1 + math.cos(math.pi * min(1.0, max(0, s - warmup) / max(1, total - warmup))))))
    use_amp = cfg.amp and device.type == "cuda"
    pixels, owner = data.pixels.to(device), data.owner.to(device)

    # -- training loop: per step, prototypes from a fresh augmented draw of every image (so both
    #    losses reach the image encoder); per epoch, the bank rebuilt from all clean images ------------
    history: list[dict[str, Any]] = []
    best = {"top1": -1.0, "epoch": 0}
    files = {"best": run_dir / "ckpt_best.pt", "last": run_dir / "ckpt_last.pt"}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{label}", total=total)
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            sums = {"loss": 0.0, "ce": 0.0, "triplet": 0.0}
            order = rng.permutation(train_rows)
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start:start + cfg.batch_size]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):  # bf16: no loss scaling
                    drawn = augment(pixels, generator=generator) if cfg.augment else pixels
                    prototypes = model.prototypes(drawn.to(device), owner)
                    text = _text(model, data, batch, device)
                    ce = prototype_cross_entropy(text, prototypes, data.target[batch].to(device), model.tau)
                    triplet = hardest_negative_triplet(text, prototypes, torch.from_numpy(data.main[batch]).to(device),
                                                       data.own[batch].to(device), margin=cfg.triplet_margin)
                    loss = cfg.ce_weight * ce + cfg.triplet_weight * triplet
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                model.clamp_tau_()
                for key, value in (("loss", loss), ("ce", ce), ("triplet", triplet)):
                    sums[key] += value.item() * len(batch)
                bar.advance(task)
            bank = prototype_bank(model, data, device)
            val = (ranking_metrics(_scores(model, data, rows["val"], bank, device), main=data.main[rows["val"]],
                                   label_sets=[data.label_sets[i] for i in rows["val"]]) if rows["val"].size else {})
            row = {"epoch": epoch, **{k: v / len(train_rows) for k, v in sums.items()},
                   "val_top1": val.get("top1_strict", float("nan")), "val_top5": val.get("top5_strict", float("nan")),
                   "tau": model.tau.item(), **{f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups}}
            history.append(row)
            bar.update(task, description=f"{label} epoch {epoch}/{cfg.epochs} loss {row['loss']:.3f} "
                                         f"val top1 {row['val_top1']:.3f} tau {row['tau']:.3f}")
            log.info("%s epoch %d: loss %.4f (ce %.4f, triplet %.4f), val top1 %.4f top5 %.4f, tau %.4f, lr %s",
                     label, epoch, row["loss"], row["ce"], row["triplet"], row["val_top1"], row["val_top5"],
                     row["tau"], {g["name"]: f"{g['lr']:.2e}" for g in optimizer.param_groups})
            state = _save(model, files["last"], cfg, model_args, data.labels, tokenizer, bank, row)
            score = row["val_top1"] if rows["val"].size else float(epoch)
            if score > best["top1"]:
                best = {"top1": score, "epoch": epoch}
                _copy(state, files["best"])
    model.load_state_dict(load_checkpoint(files["best"])["state_dict"])
    return model.eval(), history, best["epoch"], files


@torch.no_grad()
def prototype_bank(model: EmojiAlign, data: Data, device: torch.device) -> torch.Tensor:
    """The prototypes from every clean image (eval mode): what validation, test and export use."""
    was_training = model.training
    model.eval()
    bank = model.prototypes(data.pixels.to(device), data.owner.to(device))
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
    was_training = model.training
    model.eval()
    out = [(_text(model, data, rows[s:s + batch_size], device) @ bank.T).float().cpu().numpy()
           for s in range(0, len(rows), batch_size)]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, len(data.labels)), np.float32)


# -- checkpoints -------------------------------------------------------------------------------------
def _save(model: EmojiAlign, path: Path, cfg: TrainConfig, model_args: dict[str, Any], labels: list[str],
          tokenizer: Tokenizer, bank: torch.Tensor, row: dict[str, Any]) -> Path:
    """A self-describing checkpoint; a frozen encoder's weights are left out (they are its files)."""
    state = {k: v for k, v in model.state_dict().items()
             if not (cfg.freeze_text_encoder and k.startswith("text.encoder."))}
    return save_checkpoint(path, model_args=model_args, config=_plain(asdict(cfg)), state_dict=state, metrics=row,
                           extra={"name": NAME, "task": TASK, "labels": labels, "tokenizer": tokenizer.to_dict(),
                                  "prototypes": bank.detach().cpu(), "tau": model.tau.item(),
                                  "encoder_in_state": not cfg.freeze_text_encoder})


def load_ranker(path: str | Path) -> tuple[EmoteRanker, Tokenizer, list[str]]:
    """Rebuild the ranker (eval mode), its tokenizer and labels from a checkpoint (a frozen encoder
    is loaded from its folder or id, as recorded)."""
    ckpt = load_checkpoint(path)
    config = EmojiAlignConfig(**{**ckpt["model_args"], "image_channels": tuple(ckpt["model_args"]["image_channels"])})
    extra = ckpt["extra"]
    encoder = build_text_encoder(config, pretrained=not extra["encoder_in_state"])
    model = EmojiAlign(config, text_encoder=encoder)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    missing = [k for k in missing if extra["encoder_in_state"] or not k.startswith("text.encoder.")]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit its model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    ranker = EmoteRanker(model.text, extra["prototypes"], extra["tau"]).eval()
    return ranker, tokenizer_from_dict(extra["tokenizer"]), list(extra["labels"])


# -- helpers -----------------------------------------------------------------------------------------
def _tokenizer(cfg: TrainConfig) -> Tokenizer:
    if cfg.text_encoder == "ngrams":
        return HashedNgramTokenizer(buckets=cfg.ngram_buckets, max_n=cfg.ngram_max_n, max_len=cfg.max_len)
    if not cfg.text_encoder_path:
        raise ValueError("no text encoder: set text_encoder_path to a folder or model id "
                         "(offline: `emopulse models prepare` writes multilingual-e5-small)")
    return TextTokenizer(path=str(cfg.text_encoder_path), max_len=cfg.max_len, prefix=cfg.text_prefix)


def _model_config(cfg: TrainConfig, *, num_emotes: int) -> EmojiAlignConfig:
    """The model's settings from the training config (same names); text_dim is the encoder's, set later."""
    shared = {f.name for f in fields(EmojiAlignConfig)} & {f.name for f in fields(TrainConfig)}
    return EmojiAlignConfig(num_emotes=num_emotes, ngram_vocab_size=cfg.ngram_buckets + 1,
                            **{name: getattr(cfg, name) for name in shared})


def _run_metrics(run: dict[str, Any]) -> dict[str, Any]:
    return {"sizes": run["sizes"], "best_epoch": run["best_epoch"], "results": run["results"],
            "tfidf": run["tfidf"], "report": run["report"], "split_seed": run["split"].seed,
            "split_method": run["split"].method, "history": run["history"]}


def _summary(runs: dict[str, dict[str, Any]], images: EmoteImages, cfg: TrainConfig, labels: list[str],
             seconds: float, embed_seconds: float) -> str:
    sections: dict[str, list[str]] = {}
    titles = {"unseen_videos": "Unseen videos (whole videos held out; the figures we quote)",
              "by_comment": "Split by comment (the registered model)"}
    for name, run in runs.items():
        sizes = run["sizes"]
        body = [f"Comments train/val/test: {sizes['train']}/{sizes['val']}/{sizes['test']}; split "
                f"{run['split'].method}, seed {run['split'].seed}; best epoch {run['best_epoch']} "
                f"(validation Top-1 strict); TF-IDF C = {run['tfidf'].get('C')}.", "",
                "Natural distribution:", "", *results_table(run["results"], part="natural"), "",
                f"Balanced sample (up to {cfg.balanced_per_emote} comments per main emote, "
                f"{run['results'][NAME]['n_balanced']} comments):", "",
                *results_table(run["results"], part="balanced")]
        if run["split"].params.get("test_videos"):
            body += ["", "Held-out videos: " + ", ".join(run["split"].params["test_videos"])]
        sections[titles[name]] = body
    quoted = runs.get("unseen_videos", runs["by_comment"])
    report = quoted["report"]
    sections["Per emote (quoted run, Top-1 against the main emote)"] = [
        f"Mean rank of the main emote: {report['mean_rank']:.2f}; macro F1 {report['macro_f1']:.3f}.", "",
        *markdown_table(["emote", "support", "precision", "recall", "F1", "mean rank", "predicted"],
                        [[lab, v["support"], v["precision"], v["recall"], v["f1"], v["mean_rank"], v["predicted"]]
                         for lab, v in report["per_emote"].items()])]
    sections["Most common confusions (main → predicted)"] = markdown_table(
        ["main emote", "predicted", "comments"], [[c["true"], c["predicted"], c["count"]] for c in report["confusions"]])
    sections["Top-1 predictions"] = markdown_table(["emote", "comments"], list(report["top1_distribution"].items()))
    coverage = images.coverage()
    sections["Emote images"] = [
        f"{len(images.images)} images for {len(labels)} emotes.", "",
        *markdown_table(["source", "emotes", "share"], [[s, v["emotes"], v["share"]] for s, v in coverage.items()]), "",
        "No Unicode twin: " + (", ".join(e for e, t in images.twins.items() if not t) or "none")]
    hist = quoted["history"]
    sections["Training (quoted run)"] = [
        f"Profile {cfg.profile}: text encoder {cfg.text_encoder} ({cfg.text_encoder_path or 'trained from scratch'}), "
        f"{'frozen with cached embeddings' if cfg.freeze_text_encoder else 'trained'}; {seconds:.0f} s in all, "
        f"{embed_seconds:.0f} s of it preparing text inputs.", "",
        *markdown_table(list(hist[0]), [[(f"{v:.2e}" if k.startswith("lr_") else v) for k, v in r.items()] for r in hist])]
    return eval_summary_markdown(title=f"{NAME}: emotes ranked by text-image alignment", sections=sections)


def _plain(value: Any) -> Any:
    """Tuples to lists, so the config survives weights-only unpickling and JSON alike."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return dst


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return path
