"""`emopulse demo`: the whole route on this machine, offline, in a few minutes.

The bundled Bilibili-compatible server stands in for Bilibili; the pipeline crawls it, cleans,
trains, exports and scores; a summary is printed; then the dashboard is served.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

from .settings import Settings, prepare_prefect

__all__ = ["DEMO_MIN_COMMENTS", "DEMO_PROFILE", "run_demo"]

# Emotes need more than this many comments to enter the training set; the bundled sample is
# small, so the seed's 300 would leave too few emotes (this leaves more than 10).
DEMO_MIN_COMMENTS = 30
# The emoji model's light profile: hashed character n-grams trained from scratch, so the demo needs
# no pretrained encoder (nothing to prepare) and stays within a few minutes on a fresh machine.
DEMO_PROFILE = "light"


def run_demo(settings: Settings, *, dashboard_port: int | None, console: Console) -> dict[str, Any]:
    from emopulse.ingest.localserver import serve_local_bilibili

    # The local server needs no politeness: no throttle, no jitter, quick backoff.
    for name, value in {"EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0",
                        "EMOPULSE_CRAWL_BACKOFF_S": "0.05"}.items():
        os.environ[name] = value
    os.environ["EMOPULSE_HOME"] = str(settings.home.absolute())
    prepare_prefect(settings.home)
    from .pipeline import pipeline

    with serve_local_bilibili() as server:
        console.print(f"[bold]demo[/]: local Bilibili API at {server.url}; home {settings.home.absolute()}")
        result = pipeline(home=str(settings.home), api_base=server.url, popular_pages=1,
                          min_comments=DEMO_MIN_COMMENTS, profile=DEMO_PROFILE)
    print_summary(settings, result, console)
    if dashboard_port:
        from .serve import run_dashboard

        run_dashboard(settings.home, port=dashboard_port)
    return result


def print_summary(settings: Settings, result: dict[str, Any], console: Console) -> None:
    """Counts from the published snapshot, the model's figures, and where the files are."""
    from emopulse.warehouse import catalog_path, query

    counts = query(settings.home, """
        SELECT (SELECT count(*) FROM videos) AS videos, (SELECT count(*) FROM comments) AS comments,
               (SELECT count(DISTINCT emoji_alt) FROM comment_emotes) AS emotes,
               (SELECT count(*) FROM emoji_training_set) AS training_rows,
               (SELECT count(*) FROM predictions) AS predictions""").iloc[0]
    table = Table(title="emopulse demo", show_header=False)
    for key, value in counts.items():
        table.add_row(key, f"{int(value):,}")
    model = result["model"]
    metrics = model.get("metrics", {})
    for name, key in (("Top-1", "top1_strict"), ("Top-5", "top5_strict"), ("balanced Top-1", "balanced_top1_strict")):
        if key in metrics:
            table.add_row(f"model {name} ({metrics.get('evaluation', 'held out')}, mean)",
                          f"{metrics[key]:.3f}  (TF-IDF {metrics[f'tfidf_{key}']:.3f}, "
                          f"majority {metrics[f'majority_{key}']:.3f})")
    table.add_row("model", f"{model.get('model_id')} (v{model.get('version')})")
    table.add_row("warehouse", str(settings.database.absolute()))
    table.add_row("catalog (duckdb -readonly)", str(catalog_path(settings.home).absolute()))
    table.add_row("model files", str(model.get("folder", "")))
    console.print(table)
