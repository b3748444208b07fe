"""The model registry (`models`) and the `predictions` that models write back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from .merge import merge_rows
from .writer import Warehouse, connection_of

__all__ = ["PREDICTION_COLUMNS", "latest_model", "register_model", "write_predictions"]

PREDICTION_COLUMNS = ("model_id", "task", "entity_id", "rank", "label", "score")


def _to_json(value: Any) -> str:
    def plain(obj: Any) -> Any:  # numpy scalars, paths, datetimes
        if hasattr(obj, "item"):
            return obj.item()
        return str(obj)

    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=plain)


def register_model(
    wh: Warehouse,
    *,
    model_id: str,
    task: str,
    metrics: dict,
    artifacts: dict[str, str],
    sha256: str,
    params: dict | None = None,
) -> int:
    """Record a model and return its version: 1 + the highest version of `task`.

    Registering the same `model_id` again updates its metrics/artifacts and keeps its version.
    """
    with wh.transaction() as con:
        known = con.execute("SELECT version FROM models WHERE model_id = ?", [model_id]).fetchall()
        if known:
            version = known[0][0]
        else:
            version = con.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM models WHERE task = ?", [task]
            ).fetchall()[0][0]
        merge_rows(
            wh,
            "models",
            {
                "model_id": [model_id],
                "task": [task],
                "version": [version],
                "created_at": [datetime.now(UTC)],
                "metrics": [_to_json(metrics)],
                "artifacts": [_to_json({k: str(v) for k, v in artifacts.items()})],
                "sha256": [sha256],
                "params": [_to_json(params or {})],
            },
        )
    return version


def latest_model(
    wh_or_con: Warehouse | duckdb.DuckDBPyConnection, task: str
) -> dict[str, Any] | None:
    """The highest version of `task` as a dict (JSON columns decoded), or None.

    Works on the writer and on a read-only catalog connection alike.
    """
    rel = connection_of(wh_or_con).execute(
        "SELECT model_id, task, version, created_at, metrics::VARCHAR, artifacts::VARCHAR, "
        "sha256, params::VARCHAR FROM models WHERE task = ? ORDER BY version DESC LIMIT 1",
        [task],
    )
    rows = rel.fetchall()
    if not rows:
        return None
    model_id, task_, version, created_at, metrics, artifacts, sha256, params = rows[0]
    return {
        "model_id": model_id,
        "task": task_,
        "version": version,
        "created_at": created_at,
        "metrics": json.loads(metrics) if metrics else {},
        "artifacts": json.loads(artifacts) if artifacts else {},
        "sha256": sha256,
        "params": json.loads(params) if params else {},
    }


def write_predictions(wh: Warehouse, df: pd.DataFrame) -> int:
    """Upsert predictions keyed by (model_id, entity_id, rank); `scored_at` is filled in."""
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}; need {list(PREDICTION_COLUMNS)}")
    rows = df[list(PREDICTION_COLUMNS)].copy()
    rows["entity_id"] = rows["entity_id"].astype(str)
    rows["label"] = rows["label"].astype(str)
    rows["scored_at"] = pd.Timestamp.now(tz="UTC")
    return merge_rows(wh, "predictions", rows)
