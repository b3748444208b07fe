"""Trend forecasts into the warehouse: a registered `trend` model over the windows still open.

`forecast_trends(wh)` takes the latest (or a given) `trend` model, reads every `trend_windows`
row whose target month is not complete yet (its label is NULL), gathers those windows from a
`DayMatrix` of the last days (texts and images embedded only when the model was trained with
them, through the caller's encoders, which must be the ones it was trained with: checked by
fingerprint), runs the ONNX graph (fp32 or int8, as `load_scorer` chooses) and upserts
`trend_forecasts(model_id, forecast_at, category, window_end, target_month, share, share_lo,
share_hi, trend, p_down, p_flat, p_up)`, keyed by (model_id, category, window_end).

The interval and the trend rule come from the model folder's `forecast.json` (written by
training: residual quantiles of the walk-forward folds; `trend_from` `head`, the trend head's
argmax, or `share`, the terciles of the forecast shares across the window_end's categories, as
labels are made). Forecasts of windows whose month has completed since are kept: the view
`trend_forecast_outcomes` sets them beside what happened.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from emopulse.training.daymatrix import read_day_matrix, read_windows
from emopulse.training.metrics import tercile_classes
from emopulse.training.preprocess import WindowPreprocessor
from emopulse.warehouse.merge import merge_rows

from .registry import ModelRecord, find_model
from .runtime import Device
from .scorer import DEFAULT_INT8_MAX_CHANGE, Variant, load_scorer

if TYPE_CHECKING:
    from emopulse.warehouse import Warehouse

__all__ = ["FORECAST_COLUMNS", "ForecastSummary", "forecast_trends", "forecast_windows"]

log = logging.getLogger(__name__)
OUTPUTS = ("trend_logits", "share")
FORECAST_COLUMNS = ("model_id", "forecast_at", "category", "window_end", "target_month", "share", "share_lo",
                    "share_hi", "trend", "p_down", "p_flat", "p_up")


@dataclass
class ForecastSummary:
    model_id: str
    variant: str
    provider: str
    windows: int
    rows: int
    window_ends: list[str] = field(default_factory=list)  # first and last
    target_months: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _forecast_settings(record: ModelRecord) -> dict[str, Any]:
    if "forecast" not in record.artifacts:
        raise LookupError(f"model {record.model_id} has no forecast.json (interval, trend rule): is it a trend model?")
    path = record.verify(record.artifacts["forecast"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        lo, hi = (float(v) for v in data["log_ratio_quantiles"])
        rule, eps = data["trend_from"], float(data["share_eps"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if rule not in ("head", "share"):
        raise ValueError(f"{path}: trend_from must be head or share, not {rule!r}")
    return {"quantiles": (lo, hi), "trend_from": rule, "eps": eps}


def _check_encoders(record: ModelRecord, given: Mapping[str, str]) -> list[str]:
    """The kinds (text, image) the model was trained with; an error when the caller's encoder of
    one differs (another encoder's vectors would mean nothing to the model)."""
    trained = dict(record.params.get("encoders") or {})
    for kind, fingerprint in trained.items():
        if kind in given and given[kind] != fingerprint:
            raise ValueError(f"model {record.model_id} was trained with the {kind} encoder {fingerprint}, but the one "
                             f"configured here is {given[kind]}: configure that encoder, or train the trend model again")
    return sorted(trained)


def forecast_windows(wh: Warehouse, windows: pd.DataFrame, *, model: ModelRecord | str | None = None,
                     device: Device = "auto", variant: Variant = "auto",
                     int8_max_change: float = DEFAULT_INT8_MAX_CHANGE, text_embed: Callable | None = None,
                     image_embed: Callable | None = None, encoders: Mapping[str, str] | None = None,
                     batch_size: int = 1024) -> tuple[pd.DataFrame, Any]:
    """A trend model's forecasts of the given `trend_windows` rows (window_end, category,
    target_month), as `trend_forecasts` rows, without writing them; and the scorer used."""
    record = model if isinstance(model, ModelRecord) else find_model(wh, model_id=model, task="trend")
    if record.task != "trend":
        raise ValueError(f"model {record.model_id} is a {record.task!r} model: forecasts need a trend model")
    settings = _forecast_settings(record)
    kinds = _check_encoders(record, encoders or {})
    for kind, embed in (("text", text_embed), ("image", image_embed)):
        if kind in kinds and embed is None:
            raise ValueError(f"model {record.model_id} was trained with {kind}s: give its {kind} encoder")
    scorer = load_scorer(record, device=device, variant=variant, int8_max_change=int8_max_change)
    pre = scorer.preprocessor
    if not isinstance(pre, WindowPreprocessor):
        raise ValueError(f"model {record.model_id} has a {pre.kind!r} preprocessor: forecasts need trend windows")
    if windows.empty:
        return pd.DataFrame(columns=list(FORECAST_COLUMNS)), scorer
    since = pd.Timestamp(windows["window_end"].min()).date() - timedelta(days=pre.days - 1)
    matrix = read_day_matrix(wh.con, since=since, text_embed=text_embed if "text" in kinds else None,
                             text_dim=pre.text_dim, image_embed=image_embed if "image" in kinds else None,
                             image_dim=pre.image_dim, home=wh.home)
    if matrix.start > since:  # the data begin later: windows that early are not in trend_windows anyway
        windows = windows[pd.to_datetime(windows["window_end"]).dt.date >= matrix.start + timedelta(days=pre.days - 1)]
    end, cat = matrix.day_index(windows["window_end"]), matrix.category_index(windows["category"])
    shares, probs = [], []
    for start in range(0, len(windows), batch_size):
        rows = slice(start, start + batch_size)
        feeds = pre.arrays(**matrix.window(end[rows], cat[rows], pre.days))
        out = scorer.session.run(feeds, list(OUTPUTS))
        logits = out["trend_logits"].astype(np.float64)
        p = np.exp(logits - logits.max(1, keepdims=True))
        probs.append(p / p.sum(1, keepdims=True))
        shares.append(np.clip(out["share"][:, 0].astype(np.float64), 0, None))
    share, prob = np.concatenate(shares), np.concatenate(probs)
    if not np.isfinite(share).all() or not np.isfinite(prob).all():
        raise ValueError(f"model {record.model_id} gave non-finite forecasts: its graph is broken; nothing was written")
    lo_q, hi_q = settings["quantiles"]
    eps = settings["eps"]
    trend = (prob.argmax(1) - 1 if settings["trend_from"] == "head"
             else tercile_classes(share, windows["window_end"].to_numpy()))
    frame = pd.DataFrame({
        "model_id": record.model_id, "forecast_at": pd.Timestamp.now(tz="UTC"),
        "category": windows["category"].to_numpy(np.int64), "window_end": windows["window_end"].to_numpy(),
        "target_month": windows["target_month"].to_numpy(), "share": share,
        "share_lo": np.clip((share + eps) * np.exp(lo_q) - eps, 0, None),
        "share_hi": np.clip((share + eps) * np.exp(hi_q) - eps, 0, None),
        "trend": trend.astype(np.int64), "p_down": prob[:, 0], "p_flat": prob[:, 1], "p_up": prob[:, 2]})
    return frame, scorer


def forecast_trends(wh: Warehouse, *, model: ModelRecord | str | None = None, device: Device = "auto",
                    variant: Variant = "auto", int8_max_change: float = DEFAULT_INT8_MAX_CHANGE,
                    text_embed: Callable | None = None, image_embed: Callable | None = None,
                    encoders: Mapping[str, str] | None = None, batch_size: int = 1024) -> ForecastSummary:
    """Forecast every open window with a trend model (see the module docstring)."""
    started = time.perf_counter()
    record = model if isinstance(model, ModelRecord) else find_model(wh, model_id=model, task="trend")
    windows = read_windows(wh.con, labelled=False)
    frame, scorer = forecast_windows(wh, windows, model=record, device=device, variant=variant,
                                     int8_max_change=int8_max_change, text_embed=text_embed, image_embed=image_embed,
                                     encoders=encoders, batch_size=batch_size)
    summary = ForecastSummary(model_id=record.model_id, variant=scorer.variant, provider=scorer.provider,
                              windows=len(windows), rows=0)
    if frame.empty:
        log.info("model %s: no open trend window (every target month is complete)", record.model_id)
        return summary
    with wh.transaction():
        wh.mark_changed("trend_forecasts")
        merge_rows(wh, "trend_forecasts", frame)
    ends = pd.to_datetime(frame["window_end"])
    summary.rows = len(frame)
    summary.window_ends = [f"{ends.min():%Y-%m-%d}", f"{ends.max():%Y-%m-%d}"]
    summary.target_months = sorted({f"{m:%Y-%m}" for m in pd.to_datetime(frame["target_month"])})
    summary.seconds = round(time.perf_counter() - started, 3)
    log.info("model %s (%s on %s) forecast %d open windows (%s .. %s) for %s", record.model_id, summary.variant,
             summary.provider, summary.rows, *summary.window_ends, ", ".join(summary.target_months))
    return summary
