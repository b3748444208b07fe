"""`emopulse demo`: the whole route on this machine, offline, in a few minutes.

The bundled Bilibili-compatible server stands in for Bilibili; the pipeline crawls it, cleans,
trains, exports and scores; a summary is printed. Then (unless --no-dashboard) the service runs
itself, `emopulse up` in this process: the local server replays the rest of its sample as a live
stream (comments appear as a clock passes their time), the demo's jobs crawl it incrementally
every 30 s, score what is new and retrain the emoji model every 10 minutes, and the dashboard's
figures move. Ctrl-C stops it.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

from .settings import Settings, prepare_prefect

__all__ = ["DEMO_JOBS", "DEMO_MIN_COMMENTS", "DEMO_PROFILE", "DEMO_REPLAY", "run_demo"]

# Emotes need more than this many comments to enter the training set; the bundled sample is
# small, so the seed's 300 would leave too few emotes (this leaves more than 10).
DEMO_MIN_COMMENTS = 30
# The emoji model's light profile: hashed character n-grams trained from scratch, so the demo needs
# no pretrained encoder (nothing to prepare) and stays within a few minutes on a fresh machine.
DEMO_PROFILE = "light"
# The live part: 80% of the sample is there when the demo starts, the rest appears over 30 minutes.
DEMO_REPLAY = {"start_share": 0.8, "duration_s": 1800.0}
DEMO_JOBS = {
    "crawl": {"schedule": "every 30s", "params": {"popular_pages": 1}},
    "clean": {"schedule": "every 1m"},
    "retrain-emoji": {"schedule": "every 10m", "params": {"task": "emoji", "profile": DEMO_PROFILE}},
}


def run_demo(settings: Settings, *, dashboard_port: int | None, console: Console) -> dict[str, Any]:
    from emopulse.ingest.localserver import Replay, serve_local_bilibili

    # The local server needs no politeness: no throttle, no jitter, quick backoff. The bundled
    # sample is small (11 videos), and the light model on it is at the edge of beating the
    # majority class: its first model trains on every video, and the promotion gate's frozen set
    # (its smallest video, 0.5% of the emote rows, not the default 10%) is drawn at the next
    # training, whose model then takes the first one's place uncompared.
    for name, value in {"EMOPULSE_CRAWL_THROTTLE_S": "0", "EMOPULSE_CRAWL_JITTER_S": "0",
                        "EMOPULSE_CRAWL_BACKOFF_S": "0.05", "EMOPULSE_GATE_FROZEN_SHARE": "0.005",
                        "EMOPULSE_GATE_FREEZE_FIRST": "0"}.items():
        os.environ[name] = value
    os.environ["EMOPULSE_HOME"] = str(settings.home.absolute())
    prepare_prefect(settings.home)
    from .pipeline import pipeline

    live = bool(dashboard_port)
    with serve_local_bilibili(replay=Replay(**DEMO_REPLAY) if live else None) as server:
        console.print(f"[bold]demo[/]: local Bilibili API at {server.url}"
                      f"{' (replaying its sample live)' if live else ''}; home {settings.home.absolute()}")
        result = pipeline(home=str(settings.home), api_base=server.url, popular_pages=1,
                          min_comments=DEMO_MIN_COMMENTS, profile=DEMO_PROFILE)
        print_summary(settings, result, console)
        if live:
            from .embedded import serve_embedded
            from .settings import load_settings

            console.print(f"[bold]demo[/]: the service runs itself now (crawl every 30 s, score after each "
                          f"crawl, retrain every 10 min); dashboard at http://127.0.0.1:{dashboard_port} "
                          "(Ctrl-C to stop)")
            service = load_settings(home=settings.home, bilibili_api_base=server.url, jobs=DEMO_JOBS,
                                    emoji_min_comments=DEMO_MIN_COMMENTS, dashboard_port=dashboard_port)
            serve_embedded(service, dashboard=True)
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
