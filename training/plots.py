"""The PNG plots of evaluation reports (matplotlib, no screen needed), shared by every model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["bar_chart", "forecast_plot", "heatmap"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def bar_chart(bars: Mapping[str, Mapping[str, float]], path: str | Path, *, title: str, xlabel: str) -> Path:
    """Horizontal bars, one per name, of `{"mean": m, "sd": s}` with the sd as error bars, in the
    given order top to bottom; each bar labelled with its mean."""
    plt = _pyplot()
    names = list(bars)
    means = np.array([bars[n]["mean"] for n in names], dtype=float)
    sds = np.nan_to_num(np.array([bars[n].get("sd", 0.0) for n in names], dtype=float))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    y = np.arange(len(names))[::-1]
    ax.barh(y, means, xerr=sds, color=["#4C72B0" if not n.startswith("baseline") else "#999999" for n in names],
            capsize=3)
    for yi, m, sd in zip(y, means, sds, strict=True):
        ax.text(m + sd + 0.01, yi, f"{m:.3f}", va="center", fontsize=8)  # right of the error bar
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, float(np.nanmax(means + sds, initial=0.0)) + 0.12)  # room for the labels
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _save(plt, fig, path)


def heatmap(matrix: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str, vmin: float = -1.0,
            vmax: float = 1.0) -> Path:
    """A square heatmap (e.g. correlations between labels) with a colour bar."""
    plt = _pyplot()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(0.32 * n + 2.5, 0.32 * n + 2))
    image = ax.imshow(np.asarray(matrix, dtype=float), cmap="RdBu_r", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def forecast_plot(frame: Any, path: str | Path, *, title: str, lines: int = 4) -> Path:
    """Forecasts against what happened: `frame` has `method`, `category`, `target_month`, `share`
    (the forecast) and `actual`. Left: every (category, target month) of each method against the
    actual share, with the diagonal; right: the actual monthly share of the `lines` largest
    categories (solid) and the model's forecast (dashed)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    colours = {"model": "#4C72B0", "persistence": "#999999", "aggregate": "#DD8452"}
    top = 0.0
    order = sorted(frame["method"].unique(), key=lambda m: m == "model")  # the model drawn last, on top
    for method in order:
        rows = frame[frame["method"] == method]
        left.scatter(rows["actual"], rows["share"], s=8, alpha=0.5, label=method, color=colours.get(method))
        top = max(top, float(rows["actual"].max()), float(rows["share"].max()))
    left.plot([0, top], [0, top], color="black", lw=0.8)
    left.set_xlabel("actual share of the target month")
    left.set_ylabel("forecast share")
    left.legend(fontsize=8)
    model = frame[frame["method"] == "model"]
    largest = model.groupby("category")["actual"].mean().nlargest(lines).index
    for i, category in enumerate(largest):
        rows = model[model["category"] == category].sort_values("target_month")
        colour = f"C{i}"
        right.plot(rows["target_month"], rows["actual"], color=colour, marker="o", label=f"category {category}")
        right.plot(rows["target_month"], rows["share"], color=colour, ls="--", marker="x")
    right.set_xlabel("target month (solid: actual, dashed: model)")
    right.set_ylabel("share of posts")
    right.legend(fontsize=8)
    import matplotlib.dates as mdates

    right.xaxis.set_major_locator(mdates.MonthLocator())
    right.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    right.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    return _save(plt, fig, path)
