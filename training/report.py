"""The `eval_summary.md` every model writes: the model beside its baselines, the data, the training log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["eval_summary_markdown"]


def eval_summary_markdown(*, title: str, results: Mapping[str, Mapping[str, float]],
                          data: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = (),
                          notes: Sequence[str] = ()) -> str:
    """Markdown with one row per model/baseline in `results` (metric name → value in [0, 1])."""
    metric_names = list(dict.fromkeys(name for metrics in results.values() for name in metrics))
    lines = [f"# {title}", "", "## Held-out results", "",
             "| model | " + " | ".join(metric_names) + " |",
             "| --- |" + " ---: |" * len(metric_names)]
    for model, metrics in results.items():
        cells = [f"{metrics[m]:.3f}" if m in metrics else "" for m in metric_names]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "## Data", ""] + [f"- {key}: {value}" for key, value in data.items()]
    if history:
        keys = list(history[0])
        lines += ["", "## Training", "", "| " + " | ".join(keys) + " |", "|" + " ---: |" * len(keys)]
        lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in history]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
