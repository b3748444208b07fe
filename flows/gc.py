"""`emopulse gc`: retention. Removes model versions beyond `gc_keep_models` per task (never a
champion, a challenger awaiting its decision, or the model the champion replaced: the rollback
target), old predictions of models that do not serve, old runs, and snapshot versions beyond
`gc_keep_snapshots`; says what it freed. It holds the writer throughout (a publish in progress
is never pruned)."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from emopulse.warehouse.snapshots import prune_snapshots

from .settings import Settings

__all__ = ["collect"]

log = logging.getLogger(__name__)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def collect(settings: Settings, *, dry_run: bool = False) -> dict[str, Any]:
    """Apply the retention settings (see the module); with `dry_run`, only say what would go."""
    from .steps import writer

    home = settings.home
    out: dict[str, Any] = {"models": [], "model_bytes": 0, "predictions": 0, "forecasts": 0, "runs": 0,
                           "dry_run": dry_run}
    with writer(settings, "gc") as wh:
        con = wh.con
        # the model each champion replaced (the rollback target) stays, unless it was archived
        replaced = con.execute("""
            SELECT d.champion_id FROM model_decisions AS d JOIN models AS m ON m.model_id = d.model_id
            JOIN models AS before ON before.model_id = d.champion_id
            WHERE m.status = 'champion' AND d.action IN ('promote', 'manual-promote', 'rollback')
              AND before.status <> 'archived'
            QUALIFY row_number() OVER (PARTITION BY d.model_id ORDER BY d.decided_at DESC) = 1""").fetchall()
        keep = [r for (r,) in replaced]
        removable = con.execute("""
            SELECT model_id, task, artifacts->>'$.onnx' FROM (
                SELECT *, row_number() OVER (PARTITION BY task ORDER BY version DESC) AS newest
                FROM models WHERE status IN ('rejected', 'retired', 'archived')
                  AND model_id NOT IN (SELECT unnest(?::VARCHAR[])))
            WHERE newest > ? ORDER BY task, model_id""", [keep, settings.gc_keep_models]).fetchall()
        cutoff = datetime.now(UTC) - timedelta(days=settings.gc_keep_predictions_days)
        runs_cutoff = datetime.now(UTC) - timedelta(days=settings.gc_keep_runs_days)
        ids = [m for m, _, _ in removable]
        serving = "SELECT model_id FROM models WHERE status IN ('champion', 'challenger')"
        count = lambda sql, args: con.execute(sql, args).fetchall()[0][0]  # noqa: E731
        by_model = "model_id IN (SELECT unnest(?::VARCHAR[]))"
        out["predictions"] = count(f"SELECT count(*) FROM predictions WHERE {by_model} OR (model_id NOT IN ({serving}) "
                                   "AND scored_at < ?)", [ids, cutoff])
        out["forecasts"] = count(f"SELECT count(*) FROM trend_forecasts WHERE {by_model}", [ids])
        out["runs"] = count("SELECT count(*) FROM runs WHERE finished_at < ?", [runs_cutoff])
        folders = []
        for model_id, task, onnx in removable:
            folder = home / Path(onnx).parent if onnx else home / "models" / task / model_id
            folders.append(folder)
            out["models"].append(model_id)
            out["model_bytes"] += _size(folder)
        if not dry_run:
            with wh.transaction():
                con.execute(f"DELETE FROM predictions WHERE {by_model} OR (model_id NOT IN ({serving}) "
                            "AND scored_at < ?)", [ids, cutoff])
                con.execute(f"DELETE FROM trend_forecasts WHERE {by_model}", [ids])
                con.execute(f"DELETE FROM models WHERE {by_model}", [ids])
                con.execute("DELETE FROM runs WHERE finished_at < ?", [runs_cutoff])
            if ids or out["predictions"] or out["runs"]:
                wh.mark_changed("models", "predictions", "trend_forecasts", "runs")
            for folder in folders:  # after the rows are gone: a crash leaves a folder, never a dangling row
                shutil.rmtree(folder, ignore_errors=True)
        snapshots = prune_snapshots(home, settings.gc_keep_snapshots, dry_run=dry_run)
    out["snapshot_versions"], out["snapshot_bytes"] = snapshots["versions"], snapshots["bytes"]
    out["rows_removed"] = out["predictions"] + out["forecasts"] + out["runs"] + len(out["models"])
    out["freed_bytes"] = out["model_bytes"] + out["snapshot_bytes"]
    log.info("gc: %d model versions (%.1f MB), %d predictions, %d forecasts, %d runs, %d snapshot versions "
             "(%.1f MB)%s", len(out["models"]), out["model_bytes"] / 1e6, out["predictions"], out["forecasts"],
             out["runs"], out["snapshot_versions"], out["snapshot_bytes"] / 1e6, " (dry run)" if dry_run else "")
    return out
