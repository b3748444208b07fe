"""The `eval_summary.md` every model writes: markdown sections of tables and notes; JSON files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["eval_summary_markdown", "flat_figures", "markdown_table", "write_json"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Lines of a markdown table; floats with 3 decimals, the first column left-aligned."""
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def flat_figures(summary: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    """`{method: {figure: {"mean": m, "sd": s}}}` as flat metrics: the model's figures by their
    names, every other method's with its name as a prefix, and `<name>_sd` beside each."""
    flat: dict[str, float] = {}
    for method, figures in summary.items():
        prefix = "" if method == "model" else f"{method}_"
        for name, value in figures.items():
            flat[f"{prefix}{name}"], flat[f"{prefix}{name}_sd"] = value["mean"], value["sd"]
    return flat


def eval_summary_markdown(*, title: str, sections: Mapping[str, Sequence[str]]) -> str:
    """`# title`, then one `## heading` per section with its lines."""
    lines = [f"# {title}"]
    for heading, body in sections.items():
        lines += ["", f"## {heading}", "", *body]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value).replace("|", "\\|")


def write_json(path: str | Path, value: Any) -> Path:
    """`value` as indented UTF-8 JSON (numpy numbers as numbers, dataclasses as dicts, the rest as
    strings)."""
    path = Path(path)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default), encoding="utf-8")
    return path


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


PROTOCOLS = ("folds", "fit")  # the whole evaluation protocol, or one fit (a scheduled retrain)


def one_fit_report(name: str, *, profile: str, epochs: int, rows: int, seconds: Mapping[str, float],
                   **retrain: Any) -> tuple[dict[str, Any], str]:
    """The metrics and eval summary of a scheduled retrain's one fit (`protocol="fit"`): nothing is
    measured here; the promotion gate judges the model on its task's frozen set."""
    describes = (f"one fit on all {rows} training rows for {epochs} epochs, with the settings the full "
                 "protocol chose (the champion's epochs); no figure is measured here: the promotion gate "
                 "scores it against the champion on the task's frozen evaluation set")
    metrics = {"evaluation": "one_fit", "registered": "all_data_fit", "describes": describes, "profile": profile,
               "retrain": {"epochs": epochs, "rows": rows, **retrain}, "seconds": dict(seconds),
               "train_seconds": seconds.get("total", 0.0)}
    summary = eval_summary_markdown(title=f"{name}: a scheduled retrain (one fit)", sections={
        "Protocol": [describes + ".", "", "Run the full protocol with `emopulse train` for honest figures."]})
    return metrics, summary
