"""Train emoji_bow on (comment, emote) rows, read top to bottom: config, data, model, loop, evaluation, save.

The split is by comment; the target of a comment is the distribution of its emotes (by occurrences).
The head's bias starts at the log prior of the training targets, so the untrained model ranks like
the majority baseline and only moves away from it with evidence from the text. Training stops once
validation Top-1 (strict) has not improved for `patience` epochs; the best epoch is kept and
evaluated once on the test part beside the majority baseline.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from rich.progress import Progress

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import emote_comments
from ..metrics import majority_scores, ranking_metrics
from ..report import eval_summary_markdown
from ..splits import Split, split_by_comment
from .model import EmojiBow, EmojiBowConfig
from .tokenize import HashedNgramTokenizer

__all__ = ["NAME", "TASK", "TrainConfig", "TrainResult", "load_emoji_bow", "predict_proba",
           "train_emoji_classifier"]

NAME = "emoji_bow"
TASK = "emoji"
log = logging.getLogger(__name__)


# -- config: flat defaults; the whole dataclass is saved with the checkpoint -------------------------
@dataclass
class TrainConfig:
    seed: int = 0
    epochs: int = 12
    patience: int = 3
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    dim: int = 32
    dropout: float = 0.5
    buckets: int = 1 << 14
    max_n: int = 2
    max_len: int = 512
    val_frac: float = 0.15
    test_frac: float = 0.15


@dataclass
class TrainResult:
    """What a training run leaves: the best model (eval mode), how to feed it, and its files."""

    name: str
    task: str
    model: EmojiBow
    tokenizer: HashedNgramTokenizer
    labels: list[str]
    config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    split: Split
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


def train_emoji_classifier(rows: pd.DataFrame, *, out_dir: str | Path, config: TrainConfig | None = None,
                           seed: int | None = None, epochs: int | None = None, split: Split | None = None,
                           progress: bool = True) -> TrainResult:
    """Train on `emoji_training_set`-shaped rows (`rpid, emoji_alt, sentence`, optionally `bvid`,
    `message`/`occurrences`) and write checkpoint, tokenizer, labels, split, metrics and eval summary
    into `out_dir`. `seed`/`epochs` override the config; `split` (comment ids) replaces the default."""
    cfg = config or TrainConfig()
    cfg = replace(cfg, **{k: v for k, v in {"seed": seed, "epochs": epochs}.items() if v is not None})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    # -- data: one row per comment, split by comment, labels by training frequency ------------------
    comments = emote_comments(rows)
    if comments.empty:
        raise ValueError("no training rows: the emoji training set is empty")
    split = split or split_by_comment(comments["id"], val_frac=cfg.val_frac, test_frac=cfg.test_frac,
                                      seed=cfg.seed)
    part = split.assign(comments["id"])
    train_main = comments.loc[part == "train", "main"]
    if train_main.empty:
        raise ValueError("the split leaves no comment for training")
    freq = pd.Series([lab for labs in comments["labels"] for lab in labs]).value_counts()
    train_freq = train_main.value_counts().reindex(freq.index, fill_value=0)
    labels = sorted(freq.index, key=lambda lab: (-train_freq[lab], -freq[lab], lab))
    index = {lab: i for i, lab in enumerate(labels)}
    main = comments["main"].map(index).to_numpy(np.int64)
    label_sets = [[index[lab] for lab in labs] for labs in comments["labels"]]
    targets = np.zeros((len(comments), len(labels)), dtype=np.float32)
    for i, (labs, counts) in enumerate(zip(comments["labels"], comments["counts"], strict=True)):
        for lab, count in zip(labs, counts, strict=True):
            targets[i, index[lab]] = count
    targets /= targets.sum(axis=1, keepdims=True)

    tokenizer = HashedNgramTokenizer(buckets=cfg.buckets, max_n=cfg.max_n, max_len=cfg.max_len)
    ids, mask = tokenizer.encode(comments["text"].tolist())
    rows_of = {name: np.flatnonzero(part == name) for name in ("train", "val", "test")}

    # -- model and optimiser -----------------------------------------------------------------------
    model_args = asdict(EmojiBowConfig(vocab_size=tokenizer.vocab_size, num_labels=len(labels),
                                       dim=cfg.dim, dropout=cfg.dropout))
    model = EmojiBow(EmojiBowConfig(**model_args))
    prior = targets[rows_of["train"]].mean(axis=0)  # an emote never seen in training gets log(1e-6)
    with torch.no_grad():
        model.head.bias.copy_(torch.from_numpy(np.log(np.maximum(prior, 1e-6))))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    # -- training loop: shuffle, step, evaluate on val, keep the best by val Top-1, stop early --------
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"top1": -1.0, "epoch": 0, "state": None}
    train_rows = rows_of["train"]
    steps = -(-len(train_rows) // cfg.batch_size)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("emoji_bow", total=cfg.epochs * steps)
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order = rng.permutation(train_rows)
            total = 0.0
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start:start + cfg.batch_size]
                logits = model(*_batch(ids, mask, batch))
                loss = F.cross_entropy(logits, torch.from_numpy(targets[batch]),
                                       label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                bar.advance(task)
            val = _evaluate(model, ids, mask, rows_of["val"], main, label_sets, cfg.batch_size)
            row = {"epoch": epoch, "train_loss": total / len(order),
                   "val_top1": val.get("top1_strict", float("nan")),
                   "val_top5": val.get("top5_strict", float("nan"))}
            history.append(row)
            bar.update(task, description=f"emoji_bow epoch {epoch} loss {row['train_loss']:.3f} "
                                         f"val top1 {row['val_top1']:.3f}")
            log.info("epoch %d: loss %.4f, val top1 %.4f, val top5 %.4f", epoch, row["train_loss"],
                     row["val_top1"], row["val_top5"])
            score = row["val_top1"] if rows_of["val"].size else float(epoch)
            if score > best["top1"]:
                best = {"top1": score, "epoch": epoch,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            elif epoch - best["epoch"] >= cfg.patience:
                break
    model.load_state_dict(best["state"])
    model.eval()

    # -- evaluation on the held-out test comments, beside the majority baseline ---------------------
    test = rows_of["test"]
    test_metrics = _evaluate(model, ids, mask, test, main, label_sets, cfg.batch_size)
    baseline = ranking_metrics(majority_scores(main[train_rows], num_labels=len(labels), n=len(test)),
                               main=main[test], label_sets=[label_sets[i] for i in test]) if test.size else {}
    seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {
        **test_metrics, **{f"majority_{k}": v for k, v in baseline.items()},
        "val_top1_strict": best["top1"] if rows_of["val"].size else None,
        "best_epoch": best["epoch"], "n_train": int(train_rows.size), "n_val": int(rows_of["val"].size),
        "n_test": int(test.size), "n_labels": len(labels), "train_seconds": round(seconds, 2)}
    log.info("test: %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})

    # -- save: checkpoint, preprocessing, split, metrics and the eval summary -----------------------
    files = {
        "checkpoint": save_checkpoint(out_dir / "ckpt.pt", model_args=model_args, config=asdict(cfg),
                                      state_dict=model.state_dict(), metrics=metrics,
                                      extra={"name": NAME, "task": TASK, "labels": labels,
                                             "tokenizer": tokenizer.to_dict()}),
        "tokenizer": tokenizer.save(out_dir / "tokenizer.json"),
        "labels": _write_json(out_dir / "labels.json", labels),
        "split": split.save(out_dir / "split.json"),
        "metrics": _write_json(out_dir / "metrics.json", metrics),
    }
    summary = eval_summary_markdown(
        title=f"{NAME}: emote classifier over comment text",
        results={NAME: test_metrics, "majority": baseline},
        data={"comments (train/val/test)": f"{train_rows.size}/{rows_of['val'].size}/{test.size}",
              "emotes": len(labels), "split": f"{split.method}, seed {split.seed}",
              "best epoch (val Top-1 strict)": best["epoch"], "training seconds": f"{seconds:.1f}"},
        history=history)
    (out_dir / "eval_summary.md").write_text(summary, encoding="utf-8")
    files["eval_summary"] = out_dir / "eval_summary.md"
    return TrainResult(name=NAME, task=TASK, model=model, tokenizer=tokenizer, labels=labels, config=cfg,
                       metrics=metrics, history=history, split=split, out_dir=out_dir, files=files)


def predict_proba(model: EmojiBow, ids: np.ndarray, mask: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities [N, labels] in eval mode, batch by batch."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            batch = np.arange(start, min(start + batch_size, len(ids)))
            out.append(torch.softmax(model(*_batch(ids, mask, batch)), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)


def load_emoji_bow(path: str | Path) -> tuple[EmojiBow, HashedNgramTokenizer, list[str]]:
    """Rebuild the model (eval mode), its tokenizer and labels from a checkpoint alone."""
    ckpt = load_checkpoint(path)
    model = EmojiBow(EmojiBowConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    extra = ckpt["extra"]
    return model, HashedNgramTokenizer.from_dict(extra["tokenizer"]), list(extra["labels"])


def _batch(ids: np.ndarray, mask: np.ndarray, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows' ids and mask, trimmed to the longest row in the batch."""
    width = max(1, int(mask[rows].sum(axis=1).max()))
    return torch.from_numpy(ids[rows, :width]), torch.from_numpy(mask[rows, :width])


def _evaluate(model: EmojiBow, ids: np.ndarray, mask: np.ndarray, rows: np.ndarray, main: np.ndarray,
              label_sets: list[list[int]], batch_size: int) -> dict[str, float]:
    if not rows.size:
        return {}
    was_training = model.training
    scores = predict_proba(model, ids[rows], mask[rows], batch_size=batch_size)
    model.train(was_training)
    return ranking_metrics(scores, main=main[rows], label_sets=[label_sets[i] for i in rows])


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
