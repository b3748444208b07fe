"""The PNG plots of evaluation reports (matplotlib, no screen needed), shared by every model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["bar_chart", "heatmap"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    return plt


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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
