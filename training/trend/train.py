"""Train trend, read top to bottom: config, data (the day matrix and the labelled windows), the
walk-forward folds, one fit (the shared loop), evaluation beside the baselines, the ablation, the
all-data retrain.

The protocol (the seed fed 60 shuffled rows as "60 days", ignored the year in its label and
reported 100% on 6 test windows; here every window is 60 calendar days and time is respected):

1. **Windows**: every (category, window_end) of `trend_windows` with a label. A window is
   *eligible* when its 60 days hold at least `min_window_posts` posts in all and its target month
   at least `min_month_posts` (months with a handful of posts make labels by chance). Windows are
   read out of a (day, category) `DayMatrix` by indexing, never materialised.
2. **Walk-forward folds** (`splits.walk_forward_folds`), expanding, one per test month: a fold
   tests on the windows ending in that month and trains only on windows whose target month ended
   before its first test window_end; its validation windows (early stopping, the interval's
   residuals) are the last admissible month's, and its training windows those admissible before
   them. The numbers' statistics are fitted on the training days only. Never shuffled across time.
3. **Per fold, on the same windows**: the model; persistence (the share over the window's last
   30 days stands for the target month); the window's 60-day share; an aggregate model
   (scikit-learn gradient boosting on window aggregates, trained on training + validation
   windows); the class prior for the trend. Baseline shares become trend classes by the same
   terciles across categories as labels (`metrics.tercile_classes`).
4. **Figures** (`metrics.forecast_metrics`): share MAE, Spearman across categories per forecast
   day (mean over the test month's days), trend accuracy and macro-F1; per month, mean ± sd, and
   the paired per-month difference of the model to each baseline; the empirical coverage of the
   share interval (quantiles of validation residuals).
5. **Ablation** on the same folds: without numbers, texts, images; GRU instead of LSTM (the
   aggregate model is a baseline above). A modality the data do not hold is not trained again
   (it would be the same model): the report says so.
6. **The registered model** is retrained on every eligible labelled window for the median of the
   folds' best epochs; its interval comes from all folds' test residuals (out of sample).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import from_profile, text_tokenizer
from ..daymatrix import DayMatrix, read_day_matrix, read_windows
from ..encoders.image import ImageEncoder, default_weights
from ..encoders.text import TextEncoder
from ..evaluation import mean_sd
from ..features import encoder_fingerprint, image_features, text_features
from ..loop import FitResult, LoopConfig, ParamGroup, config_dict, fit, pick_device, torch_threads
from ..metrics import forecast_metrics, interval_coverage, spearman_by_group, tercile_classes
from ..plots import forecast_plot
from ..preprocess import TextPreprocessor, WindowPreprocessor
from ..report import eval_summary_markdown, markdown_table, write_json
from ..result import Head, TrainResult
from ..splits import TimeFold, walk_forward_folds
from .model import RNNS, TREND_LABELS, TrendConfig, TrendModel, trend_loss

__all__ = ["NAME", "PROFILES", "TASK", "Data", "TrainConfig", "ablate", "check_config", "cross_validate", "fit_model",
           "predict", "prepare_data", "profile_config", "retrain", "train_trend"]

NAME = "trend"
TASK = "trend"
METHODS = ("model", "persistence", "share_60d", "aggregate", "class_prior")
BASELINE_NAMES = {"persistence": "persistence (last 30 days' share)", "share_60d": "the window's 60-day share",
                  "aggregate": "aggregate model (gradient boosting)", "class_prior": "class prior (trend only)"}
FORECAST_FILE = "forecast.json"  # the interval and the trend rule forecasts use
TREND_RULES = ("head", "share", "auto")
MIN_CATEGORIES = 3
FIGURES = ("spearman", "spearman_daily", "mae", "trend_macro_f1", "trend_accuracy")
HIGHER_IS_BETTER = {"spearman": True, "spearman_daily": True, "mae": False, "trend_macro_f1": True,
                    "trend_accuracy": True}
log = logging.getLogger(__name__)


# -- config: flat defaults (the cpu profile); a profile overrides a few; saved with the checkpoint ---
@dataclass
class TrainConfig:
    profile: str = "cpu"
    seed: int = 0
    device: str = "auto"
    threads: int | None = 1
    # encoders (frozen, features cached)
    text_encoder_path: str | None = None  # None: no texts (the numbers and images only)
    text_prefix: str = "query: "
    text_clean: str = "social"
    max_len: int = 128
    embed_batch_size: int = 64
    use_images: bool = True  # embed local post images (EfficientNet-Lite0)
    image_weights: str | None = None
    # model (every field TrendConfig also has is passed on)
    width: int = 64
    attention_heads: int = 4
    rnn: str = "lstm"
    hidden: int = 64
    rnn_layers: int = 1
    dropout: float = 0.1
    share_eps: float = 1e-3
    use_numbers: bool = True
    day_volumes: bool = True
    use_text: bool = True
    trend_weight: float = 1.0
    # optimisation (training/loop.py)
    epochs: int = 12  # the schedule's length, or longer where it would be fewer than min_steps steps
    min_steps: int = 400
    patience: int | None = 3
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    amp: bool = False
    # protocol
    days: int = 60
    recent_days: int = 30
    val_months: int = 1
    max_test_months: int | None = None  # only the last this many test months (None: every month with a fold)
    min_window_posts: int = 100  # posts of all categories in the window's 60 days
    min_month_posts: int = 100  # posts in the target month
    interval: float = 0.8  # central share interval from residual quantiles
    trend_from: str = "auto"  # head, share (terciles of forecast shares), auto: chosen on validation
    ratio_scale: float | None = None  # None: chosen on validation from RATIO_SCALES
    ablation: bool = True
    retrain_epochs: int | None = None  # None: the median of the folds' best epochs
    quality_records: int = 200


PROFILES: dict[str, dict[str, Any]] = {
    "cpu": {},
    "gpu": {"width": 128, "hidden": 128, "batch_size": 512, "amp": True, "epochs": 20, "patience": 4},
    "light": {"width": 16, "hidden": 16, "attention_heads": 2, "epochs": 3, "min_steps": 200, "patience": None,
              "ablation": False, "batch_size": 64, "quality_records": 32},
}


def check_config(cfg: TrainConfig) -> TrainConfig:
    if cfg.rnn not in RNNS:
        raise ValueError(f"rnn must be one of {RNNS}, not {cfg.rnn!r}")
    if cfg.trend_from not in TREND_RULES:
        raise ValueError(f"trend_from must be one of {TREND_RULES}, not {cfg.trend_from!r}")
    if not 0 < cfg.interval < 1:
        raise ValueError(f"interval must be in (0, 1), not {cfg.interval}")
    if not 1 <= cfg.recent_days <= cfg.days:
        raise ValueError(f"need 1 <= recent_days <= days, got {cfg.recent_days} and {cfg.days}")
    if cfg.max_test_months is not None and cfg.max_test_months < 1:
        raise ValueError("max_test_months must be >= 1 (or None: every month)")
    if cfg.val_months < 1:
        raise ValueError("val_months must be >= 1: early stopping and the interval need validation windows")
    return cfg


def profile_config(profile: str = "cpu", **overrides: Any) -> TrainConfig:
    return from_profile(TrainConfig, PROFILES, profile, overrides, check_config)


def _model_config(cfg: TrainConfig, data: Data) -> TrendConfig:
    fields = {k: getattr(cfg, k) for k in TrendConfig.__dataclass_fields__ if hasattr(cfg, k)}
    return TrendConfig(**{**fields, "text_dim": data.preprocessor.text_dim, "image_dim": data.preprocessor.image_dim,
                          "summary_dim": len(data.preprocessor.summaries),
                          "summary_shares": data.preprocessor.share_summaries,
                          "use_text": cfg.use_text and data.matrix.has_text,
                          "use_images": cfg.use_images and data.matrix.has_images})


# -- data: the day matrix, the labelled windows, who is eligible ---------------------------------------
@dataclass
class Data:
    matrix: DayMatrix
    windows: pd.DataFrame  # labelled windows: window_end, category, target_month, label_share, label_trend, ...
    end: np.ndarray  # grid positions of window_end
    cat: np.ndarray  # positions of category
    y_share: np.ndarray
    y_trend: np.ndarray  # 0, 1, 2 (down, flat, up)
    eligible: np.ndarray
    preprocessor: WindowPreprocessor  # not fitted: each fit fits its statistics on its training days
    encoders: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def arrays(self, rows: np.ndarray, pre: WindowPreprocessor) -> dict[str, np.ndarray]:
        raw = self.matrix.window(self.end[rows], self.cat[rows], pre.days)
        return pre.arrays(**raw)

    def raw(self, rows: np.ndarray) -> dict[str, np.ndarray | None]:
        return self.matrix.window(self.end[rows], self.cat[rows], self.preprocessor.days)


def embedders(cfg: TrainConfig, cache_dir: str | Path | None, *, progress: bool = False
              ) -> tuple[Callable | None, Callable | None, dict[str, str], int]:
    """`text_embed`, `image_embed` for `read_day_matrix` (encoders loaded on first use, vectors
    through the shared feature cache), the encoders' fingerprints, and the text width."""
    root = None if cache_dir is None else Path(cache_dir) / "features"
    fingerprints: dict[str, str] = {}
    text_embed, text_dim = None, 384
    if cfg.use_text and cfg.text_encoder_path:
        tokenizer = text_tokenizer(cfg)
        cleaner = TextPreprocessor(tokenizer, clean=cfg.text_clean)
        encoder = TextEncoder.from_pretrained(cfg.text_encoder_path)
        text_dim = int(encoder.dim)
        fingerprints["text"] = encoder_fingerprint(cfg.text_encoder_path)

        def text_embed(texts: list[str]) -> np.ndarray:
            return text_features(encoder, tokenizer, cleaner.texts(texts), root=root, batch_size=cfg.embed_batch_size,
                                 progress=progress)
    image_embed = None
    if cfg.use_images:
        fingerprints["image"] = encoder_fingerprint(cfg.image_weights or default_weights())
        loaded: list[ImageEncoder] = []

        def image_embed(paths: list[Path]) -> np.ndarray:
            if not loaded:
                loaded.append(ImageEncoder.pretrained(cfg.image_weights))
            return image_features(loaded[0], paths, root=root, weights=cfg.image_weights, progress=progress)
    return text_embed, image_embed, fingerprints, text_dim


def prepare_data(con: Any, cfg: TrainConfig, *, cache_dir: str | Path | None = None, home: str | Path = ".",
                 progress: bool = False, exclude_months: Collection[str] = ()) -> Data:
    """The day matrix and the labelled windows of a warehouse connection (`trend_windows`), less
    the windows whose target month is in `exclude_months` (YYYY-MM-DD: a frozen evaluation set)."""
    started = time.perf_counter()
    check_config(cfg)
    text_embed, image_embed, fingerprints, text_dim = embedders(cfg, cache_dir, progress=progress)
    matrix = read_day_matrix(con, text_embed=text_embed, text_dim=text_dim, image_embed=image_embed, home=home)
    if len(matrix.categories) < MIN_CATEGORIES:
        raise ValueError(f"the trend model needs at least {MIN_CATEGORIES} categories (Spearman across categories and "
                         f"the trend's terciles mean nothing with fewer); the posts have {len(matrix.categories)}")
    windows = read_windows(con, labelled=True)
    if exclude_months:
        months = pd.to_datetime(windows["target_month"]).dt.strftime("%Y-%m-%d")
        windows = windows[~months.isin(set(exclude_months))].reset_index(drop=True)
    if windows.empty:
        raise ValueError("no labelled trend windows: a window's label needs its target month complete in the data "
                         "(import more posts, then `emopulse windows`)")
    unknown = sorted(set(windows["label_trend"].dropna().astype(int)) - {-1, 0, 1})
    if unknown:
        raise ValueError(f"trend_windows.label_trend holds {unknown}: the trend model needs -1, 0, 1")
    end, cat = matrix.day_index(windows["window_end"]), matrix.category_index(windows["category"])
    cumulative = np.concatenate([[0.0], np.cumsum(matrix.totals)])
    window_posts = cumulative[end + 1] - cumulative[np.maximum(end + 1 - cfg.days, 0)]
    month = pd.Series(pd.Timestamp(matrix.start) + pd.to_timedelta(np.arange(matrix.num_days), "D")).dt.to_period("M")
    month_posts = pd.Series(matrix.totals).groupby(month.to_numpy()).sum()
    target_posts = pd.to_datetime(windows["target_month"]).dt.to_period("M").map(month_posts).fillna(0).to_numpy()
    eligible = (window_posts >= cfg.min_window_posts) & (target_posts >= cfg.min_month_posts)
    used = [k for k in ("text", "image") if k in fingerprints and
            (matrix.has_text if k == "text" else matrix.has_images)]
    preprocessor = WindowPreprocessor(text_dim=text_dim, image_dim=matrix.image_vectors.shape[1] or 1280,
                                      days=cfg.days, recent_days=cfg.recent_days)
    data = Data(matrix=matrix, windows=windows.reset_index(drop=True), end=end, cat=cat,
                y_share=windows["label_share"].to_numpy(np.float64),
                y_trend=windows["label_trend"].to_numpy(np.int64) + 1, eligible=eligible, preprocessor=preprocessor,
                encoders={k: fingerprints[k] for k in used})
    data.seconds["prepare"] = round(time.perf_counter() - started, 1)
    log.info("%s: %d labelled windows, %d eligible (>= %d posts in the window, >= %d in the target month), "
             "%d categories, texts on %d cells, images on %d", NAME, len(windows), int(eligible.sum()),
             cfg.min_window_posts, cfg.min_month_posts, len(matrix.categories), len(matrix.text_vectors),
             len(matrix.image_vectors))
    return data


def folds_of(data: Data, cfg: TrainConfig) -> list[TimeFold]:
    folds = walk_forward_folds(data.windows["window_end"], data.windows["target_month"], val_months=cfg.val_months,
                               eligible=data.eligible)
    if cfg.max_test_months is not None:
        folds = folds[-cfg.max_test_months:]
    if not folds:
        raise ValueError("no walk-forward fold: the eligible windows need a test month with earlier admissible "
                         "training and validation months (more months of posts, or lower min_window_posts / "
                         "min_month_posts)")
    return folds


def fit_statistics(data: Data, rows: np.ndarray, pre: WindowPreprocessor) -> WindowPreprocessor:
    """`pre` with its statistics fitted on the days up to the last training window's end."""
    last = int(data.end[rows].max()) + 1
    counts = data.matrix.counts[:last].reshape(-1, data.matrix.counts.shape[-1])
    totals = np.repeat(data.matrix.totals[:last], data.matrix.counts.shape[1])
    return pre.fit(counts, totals)


# -- one fit --------------------------------------------------------------------------------------------
def _tensors(arrays: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}


@torch.no_grad()
def predict(model: TrendModel, pre: WindowPreprocessor, data: Data, rows: np.ndarray, *,
            batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Shares [N] and trend probabilities [N, 3] of windows `rows`."""
    model.eval()
    device = next(model.parameters()).device
    shares, probs = [], []
    for start in range(0, len(rows), batch_size):
        logits, share = model(**_tensors(data.arrays(rows[start:start + batch_size], pre), device))
        shares.append(share[:, 0].float().cpu().numpy())
        probs.append(logits.float().softmax(-1).cpu().numpy())
    if not shares:
        return np.zeros(0), np.zeros((0, len(TREND_LABELS)))
    return np.concatenate(shares), np.concatenate(probs)


def _steps_per_epoch(n: int, cfg: TrainConfig) -> int:
    return math.ceil(n / cfg.batch_size) - (n > cfg.batch_size and n % cfg.batch_size == 1)


def schedule_epochs(n: int, cfg: TrainConfig) -> int:
    """The schedule's length for `n` training windows: `cfg.epochs`, or more where that would be
    fewer than `cfg.min_steps` optimiser steps (a small training set still gets its steps)."""
    return max(cfg.epochs, math.ceil(cfg.min_steps / max(1, _steps_per_epoch(n, cfg))))


def fit_model(data: Data, train: np.ndarray, val: np.ndarray, cfg: TrainConfig, *, stop_after: int | None = None,
              schedule: int | None = None, out_dir: Path | None = None, progress: bool = False,
              label: str = NAME) -> tuple[TrendModel, WindowPreprocessor, FitResult]:
    """Train on windows `train`, early-stopping on `val` (empty: the schedule's epochs, or
    `stop_after`); `schedule` epochs (default `schedule_epochs`). The numbers' statistics come
    from the training days only."""
    if not len(train):
        raise ValueError(f"{label}: no window to train on")
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    pre = fit_statistics(data, train, data.preprocessor)
    model_cfg = _model_config(cfg, data)
    model = TrendModel(model_cfg).to(device)

    def batches(epoch: int):  # a seeded order per epoch; a last batch of one window joins the one before
        order = np.random.default_rng([cfg.seed, epoch]).permutation(train)
        cuts = list(range(0, len(order), cfg.batch_size))[1:]
        if len(order) % cfg.batch_size == 1 and cuts:
            cuts.pop()
        yield from np.split(order, cuts)

    def step(batch: np.ndarray):
        logits, share = model(**_tensors(data.arrays(batch, pre), device))
        return trend_loss(model, logits, share, torch.from_numpy(data.y_share[batch]).float().to(device),
                          torch.from_numpy(data.y_trend[batch]).to(device), trend_weight=cfg.trend_weight)

    def validate() -> dict[str, float]:
        share, probs = predict(model, pre, data, val)
        model.train()
        eps = cfg.share_eps
        share_loss = float(np.mean((np.log(share + eps) - np.log(data.y_share[val] + eps)) ** 2))
        trend_ce = float(-np.mean(np.log(np.clip(probs[np.arange(len(val)), data.y_trend[val]], 1e-12, 1))))
        figures = forecast_metrics(data.y_share[val], share, data.y_trend[val] - 1, probs.argmax(1) - 1,
                                   groups=data.windows["window_end"].to_numpy()[val])
        return {"loss": share_loss + cfg.trend_weight * trend_ce, "spearman": figures["spearman"],
                "trend_macro_f1": figures["trend_macro_f1"]}

    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "norm" not in n)]
    groups = [ParamGroup("model", decay, cfg.lr, cfg.weight_decay), ParamGroup("model_no_decay", no_decay, cfg.lr)]
    steps = _steps_per_epoch(len(train), cfg)
    epochs = schedule or schedule_epochs(len(train), cfg)
    loop = LoopConfig(epochs=epochs, stop_after=None if stop_after is None else min(stop_after, epochs),
                      warmup_frac=cfg.warmup_frac, grad_clip=cfg.grad_clip, amp=cfg.amp, monitor="loss", mode="min",
                      patience=cfg.patience if len(val) else None)
    result = fit(model, groups=groups, batches=batches, steps_per_epoch=steps,
                 step=step, validate=validate if len(val) else None, config=loop, out_dir=out_dir,
                 model_args=vars(model_cfg), run_config=config_dict(cfg), device=device, progress=progress,
                 label=label, extra=lambda: {"name": NAME, "task": TASK, "labels": list(TREND_LABELS),
                                             "preprocessor": pre.to_dict()})
    model.eval()
    return model, pre, result


# -- baselines --------------------------------------------------------------------------------------------
def window_aggregates(data: Data, rows: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """The aggregate model's features: each window's summary (`WindowPreprocessor.summary`, what
    the model reads beside its sequence)."""
    out = [data.preprocessor.summary(**{k: v for k, v in data.raw(rows[s:s + chunk]).items() if k in ("counts", "totals")})
           for s in range(0, len(rows), chunk)]
    return np.concatenate(out) if out else np.zeros((0, len(data.preprocessor.summaries)))


def baselines(data: Data, fold: TimeFold, cfg: TrainConfig, feats: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Shares and trend classes (-1, 0, 1) of each baseline on the fold's test windows (`feats`:
    `window_aggregates` of every window)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    test = fold.test
    groups = data.windows["window_end"].to_numpy()[test]
    out = {"persistence": {"share": feats[test, 0]}, "share_60d": {"share": feats[test, 1]}}  # summary's shares
    for name in out:
        out[name]["trend"] = tercile_classes(out[name]["share"], groups)
    fit_rows = np.concatenate([fold.train, fold.val])
    eps = cfg.share_eps
    reg = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=cfg.seed)
    reg.fit(feats[fit_rows], np.log(data.y_share[fit_rows] + eps))
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=cfg.seed)
    y = data.y_trend[fit_rows]
    if len(np.unique(y)) > 1:
        clf.fit(feats[fit_rows], y)
        agg_trend = clf.predict(feats[test]) - 1
    else:
        agg_trend = np.full(len(test), int(y[0]) - 1)
    out["aggregate"] = {"share": np.clip(np.exp(reg.predict(feats[test])) - eps, 0, None), "trend": agg_trend}
    prior = int(np.bincount(data.y_trend[fold.train], minlength=3).argmax()) - 1
    out["class_prior"] = {"share": None, "trend": np.full(len(test), prior)}
    return out


def _figures(data: Data, rows: np.ndarray, share: np.ndarray | None, trend: np.ndarray) -> dict[str, float]:
    """`spearman`: across categories per target month (each category's forecasts and labels of
    the month's windows averaged); `spearman_daily`: across categories per window_end, averaged."""
    w = data.windows
    forecast = np.zeros(len(rows)) if share is None else share
    figures = forecast_metrics(data.y_share[rows], forecast, data.y_trend[rows] - 1, trend,
                               groups=w["target_month"].to_numpy()[rows], items=w["category"].to_numpy()[rows])
    figures["spearman_daily"] = spearman_by_group(data.y_share[rows], forecast, w["window_end"].to_numpy()[rows])["mean"]
    if share is None:  # the class prior forecasts no share
        figures["mae"] = figures["spearman"] = figures["spearman_daily"] = float("nan")
    return figures


RATIO_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


def choose_ratio_scale(data: Data, val: np.ndarray, model: TrendModel, pre: WindowPreprocessor,
                       cfg: TrainConfig) -> float:
    """How much of the learned ratio to persistence to apply (`TrendModel.ratio_scale`), the
    validation windows' best mean Spearman over `RATIO_SCALES` (ties: the larger); set on the
    model and returned. `cfg.ratio_scale` set: that, unchosen."""
    if cfg.ratio_scale is not None or not model.cfg.use_numbers:  # without numbers there is no persistence
        value = 1.0 if cfg.ratio_scale is None else float(cfg.ratio_scale)
        model.ratio_scale.fill_(value)
        return value
    eps = cfg.share_eps
    model.ratio_scale.fill_(1.0)
    share, _ = predict(model, pre, data, val)
    persistence = window_aggregates(data, val)[:, 0]
    ratio = np.log(share + eps) - np.log(persistence + eps)
    groups = data.windows["window_end"].to_numpy()[val]
    figures = {s: spearman_by_group(data.y_share[val], (persistence + eps) * np.exp(s * ratio) - eps, groups)["mean"]
               for s in RATIO_SCALES}
    best = max(RATIO_SCALES, key=lambda s: (np.nan_to_num(figures[s], nan=-2.0), s))
    model.ratio_scale.fill_(best)
    return float(best)


def trend_classes(data: Data, rows: np.ndarray, share: np.ndarray, probs: np.ndarray, rule: str) -> np.ndarray:
    """-1, 0, 1 per window: the trend head's argmax (`head`), or the terciles of the forecast shares
    across the categories of each window_end, as labels are made (`share`)."""
    if rule == "head":
        return probs.argmax(1) - 1
    return tercile_classes(share, data.windows["window_end"].to_numpy()[rows])


def choose_trend_rule(data: Data, val: np.ndarray, share: np.ndarray, probs: np.ndarray,
                      rule: str) -> tuple[str, dict[str, float]]:
    """`rule`, or for `auto` the one with the better trend macro-F1 on the validation windows."""
    figures = {r: forecast_metrics(data.y_share[val], share, data.y_trend[val] - 1,
                                   trend_classes(data, val, share, probs, r),
                                   groups=data.windows["window_end"].to_numpy()[val])["trend_macro_f1"]
               for r in ("head", "share")}
    return (max(figures, key=lambda r: (figures[r], r == "head")) if rule == "auto" else rule), figures


def interval_quantiles(y: np.ndarray, share: np.ndarray, level: float, eps: float) -> tuple[float, float]:
    """Quantiles of log(y + eps) - log(share + eps) for a central `level` interval."""
    residual = np.log(y + eps) - np.log(share + eps)
    lo, hi = np.quantile(residual, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def interval_bounds(share: np.ndarray, q: tuple[float, float], eps: float) -> tuple[np.ndarray, np.ndarray]:
    return (np.clip((share + eps) * np.exp(q[0]) - eps, 0, None), np.clip((share + eps) * np.exp(q[1]) - eps, 0, None))


# -- the folds ------------------------------------------------------------------------------------------------
def cross_validate(data: Data, cfg: TrainConfig, *, folds: Sequence[TimeFold] | None = None, with_baselines: bool = True,
                   progress: bool = False, label: str = NAME) -> dict[str, Any]:
    """Every walk-forward fold: the model (and the baselines); per-month figures and their summary."""
    started = time.perf_counter()
    folds = list(folds or folds_of(data, cfg))
    feats = window_aggregates(data, np.arange(len(data.windows))) if with_baselines else None
    eps = cfg.share_eps
    runs, residuals, plot_rows = [], [], []
    for i, fold in enumerate(folds):
        month = f"{fold.test_month:%Y-%m}"
        model, pre, fitted = fit_model(data, fold.train, fold.val, cfg, progress=progress, label=f"{label} {month}")
        scale = choose_ratio_scale(data, fold.val, model, pre, cfg)
        share, probs = predict(model, pre, data, fold.test)
        val_share, val_probs = predict(model, pre, data, fold.val)
        q = interval_quantiles(data.y_share[fold.val], val_share, cfg.interval, eps)
        lo, hi = interval_bounds(share, q, eps)
        trend_from, val_f1 = choose_trend_rule(data, fold.val, val_share, val_probs, cfg.trend_from)
        results = {"model": _figures(data, fold.test, share, trend_classes(data, fold.test, share, probs, trend_from))}
        results["model"]["coverage"] = interval_coverage(data.y_share[fold.test], lo, hi)
        if feats is not None:
            for name, out in baselines(data, fold, cfg, feats).items():
                results[name] = _figures(data, fold.test, out["share"], out["trend"])
                if name in ("persistence", "aggregate"):
                    plot_rows.append(pd.DataFrame({"method": name, "row": fold.test, "share": out["share"]}))
        plot_rows.append(pd.DataFrame({"method": "model", "row": fold.test, "share": share}))
        residuals.append(np.log(data.y_share[fold.test] + eps) - np.log(share + eps))
        runs.append({**fold.to_dict(data.windows["window_end"]), "fold": i, "test_month": month,
                     "target_month": f"{fold.test_month + pd.DateOffset(months=2):%Y-%m}", "best_epoch": fitted.best_epoch,
                     "schedule_epochs": schedule_epochs(len(fold.train), cfg),
                     "epochs_run": fitted.epochs_run, "ratio_scale": scale, "interval_quantiles": q,
                     "trend_from": trend_from,
                     "val_trend_macro_f1": val_f1, "results": results})
        log.info("%s %s: %s", label, month, {m: {k: round(v, 4) for k, v in r.items() if k != "n"}
                                              for m, r in results.items()})
    for k in range(1, len(runs)):  # the registered construction (earlier folds' test residuals), walk-forward
        q_pooled = tuple(np.quantile(np.concatenate(residuals[:k]), [(1 - cfg.interval) / 2, 1 - (1 - cfg.interval) / 2]))
        test = folds[k].test
        share_k = (data.y_share[test] + eps) * np.exp(-residuals[k]) - eps  # the fold's own forecasts
        lo, hi = interval_bounds(share_k, q_pooled, eps)
        runs[k]["results"]["model"]["coverage_pooled"] = interval_coverage(data.y_share[test], lo, hi)
    methods = [m for m in METHODS if m in runs[0]["results"]]
    summary = {m: {f: dict(zip(("mean", "sd"), mean_sd([r["results"][m].get(f) for r in runs])))
                   for f in (*FIGURES, *(("coverage", "coverage_pooled") if m == "model" else ()))} for m in methods}
    paired = {}
    for m in methods[1:]:
        paired[m] = {}
        for f in FIGURES:
            diffs = [r["results"]["model"][f] - r["results"][m][f] for r in runs]
            if all(np.isnan(d) for d in diffs):
                continue
            better = sum(1 for d in diffs if (d > 0 if HIGHER_IS_BETTER[f] else d < 0))
            paired[m][f] = {"per_month": diffs, **dict(zip(("mean", "sd"), mean_sd(diffs))), "model_better": better,
                            "months": len(diffs)}
    return {"folds": runs, "summary": summary, "paired": paired, "methods": methods,
            "best_epochs": [r["best_epoch"] for r in runs],
            "chosen_epochs": max(1, int(np.median([r["best_epoch"] for r in runs]))),
            "schedule_epochs": max(1, int(np.median([r["schedule_epochs"] for r in runs]))),
            "residuals": np.concatenate(residuals), "plot": pd.concat(plot_rows, ignore_index=True),
            "seconds": round(time.perf_counter() - started, 1)}


ABLATION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("without numbers", {"use_numbers": False}), ("without texts", {"use_text": False}),
    ("without images", {"use_images": False}), ("GRU instead of LSTM", {"rnn": "gru"}))


def ablate(data: Data, cfg: TrainConfig, *, base: Mapping[str, Any], progress: bool = False) -> dict[str, Any]:
    """The model's variants on the same folds (figures: mean over months, and the months each one
    beats the full model on Spearman)."""
    folds = folds_of(data, cfg)
    rows: dict[str, Any] = {"model (LSTM, every input)": {"summary": base["summary"]["model"], "note": ""}}
    for name, change in ABLATION:
        absent = (change.get("use_text") is False and not (cfg.use_text and data.matrix.has_text)) or \
                 (change.get("use_images") is False and not (cfg.use_images and data.matrix.has_images))
        if absent:
            rows[name] = {"summary": None, "note": "the data hold none: the same model as the full one"}
            continue
        if change.get("use_numbers") is False and not (cfg.use_text and data.matrix.has_text) and \
                not (cfg.use_images and data.matrix.has_images):
            rows[name] = {"summary": None, "note": "nothing left to read: the data hold neither texts nor images"}
            continue
        run = cross_validate(data, replace(cfg, **change), folds=folds, with_baselines=False, progress=progress,
                             label=f"{NAME} {name}")
        rows[name] = {"summary": run["summary"]["model"], "note": "",
                      "spearman_per_month": [r["results"]["model"]["spearman"] for r in run["folds"]]}
    if "aggregate" in base["summary"]:
        rows["aggregate model (no sequence)"] = {"summary": base["summary"]["aggregate"], "note": "a baseline above"}
    table = markdown_table(["variant", *FIGURES, "note"], [
        [name, *(("" if r["summary"] is None else _cell(r["summary"][f])) for f in FIGURES), r["note"]]
        for name, r in rows.items()])
    return {"rows": rows, "table": table}


def _cell(value: Mapping[str, float]) -> str:
    if value is None or np.isnan(value["mean"]):
        return "-"
    return f"{value['mean']:.3f} ± {value['sd']:.3f}"


# -- the registered model -------------------------------------------------------------------------------------
def retrain(data: Data, cfg: TrainConfig, *, epochs: int, schedule: int, out_dir: Path | None = None,
            progress: bool = False) -> tuple[TrendModel, WindowPreprocessor, FitResult]:
    """Every eligible labelled window: the first `epochs` epochs of a `schedule`-epoch schedule
    (the folds' median), so the retrain follows the trajectory the folds chose its epoch on."""
    rows = np.flatnonzero(data.eligible)
    if not len(rows):
        raise ValueError("no eligible labelled window to retrain on")
    schedule = max(schedule, epochs)
    return fit_model(data, rows, np.zeros(0, np.int64), cfg, stop_after=epochs, schedule=schedule, out_dir=out_dir,
                     progress=progress, label=f"{NAME} all data")


def _set_checkpoint_scale(path: Path, scale: float) -> None:
    """The chosen `ratio_scale` into the checkpoint's weights too, so it rebuilds the exported model."""
    ckpt = load_checkpoint(path)
    ckpt["state_dict"]["ratio_scale"] = torch.tensor(float(scale))
    save_checkpoint(path, model_args=ckpt["model_args"], config=ckpt["config"], state_dict=ckpt["state_dict"],
                    metrics=ckpt["metrics"], extra=ckpt.get("extra"), epoch=ckpt.get("epoch"))


def train_trend(data: Data, *, out_dir: str | Path, config: TrainConfig | None = None,
                progress: bool = True) -> TrainResult:
    """The whole protocol on prepared data (`prepare_data` with the same config): walk-forward folds
    beside the baselines (and the ablation when the config asks), then the all-data retrain, which
    is returned for export."""
    cfg = check_config(config or TrainConfig())
    with torch_threads(cfg.threads):
        return _train(data, out_dir=Path(out_dir), cfg=cfg, progress=progress)


def _train(data: Data, *, out_dir: Path, cfg: TrainConfig, progress: bool) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cv = cross_validate(data, cfg, progress=progress)
    ablation = ablate(data, cfg, base=cv, progress=progress) if cfg.ablation else None
    epochs = cfg.retrain_epochs or cv["chosen_epochs"]
    t0 = time.perf_counter()
    model, pre, fitted = retrain(data, cfg, epochs=epochs, schedule=cv["schedule_epochs"], out_dir=out_dir,
                                 progress=progress)
    scale = float(np.median([f["ratio_scale"] for f in cv["folds"]])) if cfg.ratio_scale is None else cfg.ratio_scale
    model.ratio_scale.fill_(scale)
    _set_checkpoint_scale(fitted.files["best"], scale)
    q = tuple(float(v) for v in np.quantile(cv["residuals"], [(1 - cfg.interval) / 2, 1 - (1 - cfg.interval) / 2]))
    seconds = {"prepare": data.seconds.get("prepare", 0.0), "folds": cv["seconds"],
               "retrain": round(time.perf_counter() - t0, 1),
               "total": round(time.perf_counter() - started + data.seconds.get("prepare", 0.0), 1)}
    rules = [f["trend_from"] for f in cv["folds"]]
    trend_from = cfg.trend_from if cfg.trend_from != "auto" else max(("share", "head"), key=rules.count)
    interval = {"level": cfg.interval, "log_ratio_quantiles": list(q), "share_eps": cfg.share_eps,
                "from": f"{len(cv['residuals'])} out-of-sample residuals of {len(cv['folds'])} walk-forward test months",
                "coverage_on_folds": cv["summary"]["model"]["coverage_pooled"], "trend_from": trend_from,
                "trend_from_per_fold": rules, "ratio_scale": scale,
                "ratio_scale_per_fold": [f["ratio_scale"] for f in cv["folds"]]}
    metrics = _metrics(cv, data, cfg, epochs, seconds, ablation, interval)
    plot = forecast_plot(_plot_frame(data, cv), out_dir / "forecast_vs_actual.png",
                         title=f"{NAME}: forecast vs actual share (walk-forward test months)")
    files = {"checkpoint": fitted.files["best"], "forecast": write_json(out_dir / FORECAST_FILE, interval),
             "folds": write_json(out_dir / "folds.json", [{k: v for k, v in f.items() if k != "results"} for f in cv["folds"]]),
             "metrics": write_json(out_dir / "metrics.json", metrics), "forecast_plot": plot}
    (out_dir / "eval_summary.md").write_text(_summary(cv, data, cfg, epochs, seconds, ablation, interval, fitted),
                                             encoding="utf-8")
    files["eval_summary"] = out_dir / "eval_summary.md"
    recent = np.flatnonzero(data.eligible)[-cfg.quality_records:]
    quality = data.matrix.records(data.end[recent], data.cat[recent], cfg.days)
    log.info("%s: %s", NAME, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    return TrainResult(name=NAME, task=TASK, module=model, preprocessor=pre, head=Head("ranking", TREND_LABELS,
                                                                                        output="trend_logits"),
                       config=config_dict(cfg), metrics=metrics, files=files, quality_records=quality,
                       output_names=("trend_logits", "share"), entity_kinds=("window",), history=fitted.history,
                       out_dir=out_dir, encoders=dict(data.encoders))


def _plot_frame(data: Data, cv: Mapping[str, Any]) -> pd.DataFrame:
    """Category x target month: the mean forecast of each method over the month's windows, and the actual share."""
    plot = cv["plot"].copy()
    plot["category"] = data.windows["category"].to_numpy()[plot["row"]]
    plot["target_month"] = pd.to_datetime(data.windows["target_month"].to_numpy()[plot["row"]])
    plot["actual"] = data.y_share[plot["row"]]
    return plot.groupby(["method", "category", "target_month"], as_index=False)[["share", "actual"]].mean()


def _metrics(cv: Mapping[str, Any], data: Data, cfg: TrainConfig, epochs: int, seconds: Mapping[str, float],
             ablation: Mapping[str, Any] | None, interval: Mapping[str, Any]) -> dict[str, Any]:
    months = [f["test_month"] for f in cv["folds"]]
    flat: dict[str, Any] = {"evaluation": f"walk_forward(test months {months[0]}..{months[-1]}, {len(months)} folds)",
                            "registered": "all_data_retrain"}
    for method, figures in cv["summary"].items():
        prefix = "" if method == "model" else f"{method}_"
        for name, value in figures.items():
            flat[f"{prefix}{name}"], flat[f"{prefix}{name}_sd"] = value["mean"], value["sd"]
    return {**flat,
            "describes": (f"means ± sd over {len(months)} walk-forward test months ({months[0]}..{months[-1]}) of "
                          f"{int(data.eligible.sum())} eligible labelled windows; each month's model trained only on "
                          "windows whose target month ended before its first test window_end and early-stopped on the "
                          f"last admissible month. The registered module is a retrain on all eligible windows for "
                          f"{epochs} epochs (the median of the folds' best epochs), which no fold measures."),
            "labels": list(TREND_LABELS), "profile": cfg.profile, "rnn": cfg.rnn, "retrain_epochs": epochs,
            "folds": [{k: v for k, v in f.items()} for f in cv["folds"]], "paired": cv["paired"],
            "ablation": None if ablation is None else {k: {kk: vv for kk, vv in v.items()} for k, v in ablation["rows"].items()},
            "interval": dict(interval), "windows": {"labelled": int(len(data.windows)), "eligible": int(data.eligible.sum())},
            "inputs": {"text_cells": int(len(data.matrix.text_vectors)), "image_cells": int(len(data.matrix.image_vectors)),
                       "categories": int(len(data.matrix.categories))},
            "seconds": dict(seconds), "train_seconds": seconds["total"]}


def _summary(cv: Mapping[str, Any], data: Data, cfg: TrainConfig, epochs: int, seconds: Mapping[str, float],
             ablation: Mapping[str, Any] | None, interval: Mapping[str, Any], fitted: FitResult) -> str:
    summary, folds, methods = cv["summary"], cv["folds"], cv["methods"]
    names = {"model": f"**{NAME} ({cfg.profile}: {cfg.rnn.upper()}, {cfg.width}-wide days)**", **BASELINE_NAMES}
    m = data.matrix
    sections: dict[str, list[str]] = {
        "How these figures were measured": [
            f"{len(data.windows)} labelled windows of {len(m.categories)} categories ({m.start} .. {m.end}); "
            f"{int(data.eligible.sum())} eligible (>= {cfg.min_window_posts} posts in the window's {cfg.days} days, "
            f">= {cfg.min_month_posts} in the target month). Texts on {len(m.text_vectors)} (day, category) cells, "
            f"images on {len(m.image_vectors)}.", "",
            f"{len(folds)} expanding walk-forward folds, one per test month: a fold trains only on windows whose "
            "target month ended before its first test window_end, early-stops on the last admissible month's windows "
            "and fits the numbers' statistics on its training days; never shuffled. `spearman` is across categories "
            "per target month (each category's forecasts of the month averaged), `spearman_daily` across categories "
            "per window_end, averaged over the month; baseline shares become trend classes by the terciles labels "
            "use.", "",
            f"**The registered model is not any of these runs**: it is retrained on all eligible windows for {epochs} "
            f"epochs (the median of the folds' best epochs {cv['best_epochs']})."],
        f"Mean ± sd over {len(folds)} test months": markdown_table(
            ["method", *FIGURES], [[names[k], *(_cell(summary[k][f]) for f in FIGURES)] for k in methods]),
        "Per test month (Spearman / trend macro-F1)": markdown_table(
            ["test month", "target month", "train", "val", "test", "best epoch", "ratio scale", "trend from", *methods],
            [[f["test_month"], f["target_month"], f["train"], f["val"], f["test"], f["best_epoch"], f["ratio_scale"],
              f["trend_from"],
              *(f"{_num(f['results'][k]['spearman'])} / {_num(f['results'][k]['trend_macro_f1'])}" for k in methods)]
             for f in folds]),
        "The model minus each baseline, month by month (paired)": [
            *markdown_table(["baseline", "figure", "per month", "mean ± sd", "months the model is better"],
                            [[BASELINE_NAMES[b], f, " ".join(_num(d) for d in v["per_month"]), _cell(v),
                              f"{v['model_better']} of {v['months']}"]
                             for b, figs in cv["paired"].items() for f, v in figs.items()]),
            "", "MAE: lower is better (a negative difference favours the model)."],
        "Share interval": [
            f"Central {cfg.interval:.0%} interval from quantiles of log-ratio residuals. From each test month's "
            f"validation windows: empirical coverage {_cell(summary['model']['coverage'])} over the test months. As "
            "the registered model builds it, from the test residuals of the months before (walk-forward, from the "
            f"second month): {_cell(summary['model']['coverage_pooled'])}. The registered model's quantiles "
            f"{[round(v, 3) for v in interval['log_ratio_quantiles']]} come from {interval['from']}.",
            "", f"The share applies {interval['ratio_scale']} of the learned ratio to persistence (`ratio_scale`, the "
            f"median of the folds' {interval['ratio_scale_per_fold']}, each the best validation Spearman of "
            f"{list(RATIO_SCALES)}; 0 would be persistence itself).",
            "", f"The model's trend class: `{interval['trend_from']}` (per fold, chosen on validation macro-F1: "
            f"{', '.join(interval['trend_from_per_fold'])}; `head`: the trend head's argmax, `share`: terciles of "
            "the forecast shares across categories, as labels are made)."],
    }
    if ablation is not None:
        sections["Ablation (same folds)"] = ablation["table"]
    hist = fitted.history
    sections["Training the registered model"] = [
        f"Profile {cfg.profile}; {seconds['total']:.0f} s in all ({seconds['prepare']:.0f} s preparing, "
        f"{seconds['folds']:.0f} s folds, {seconds['retrain']:.0f} s retrain); forecast_vs_actual.png plots each "
        "category's mean forecast per target month against the actual share.", "",
        *markdown_table(list(hist[0]), [[(f"{v:.2e}" if k.startswith("lr_") else v) for k, v in r.items()] for r in hist])]
    return eval_summary_markdown(title=f"{NAME}: category share and trend two months ahead", sections=sections)


def _num(value: float) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.3f}"
