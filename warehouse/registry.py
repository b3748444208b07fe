"""The model registry (`models`, with each model's status and the gate's `model_decisions` and
`frozen_sets`), the `predictions` that models write back, and the entities a model has not scored
yet (an anti-join on `predictions`, so scoring again reads only new rows)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from .merge import merge_rows
from .schema import ENTITY_KINDS
from .writer import Warehouse, connection_of

__all__ = [
    "PREDICTION_COLUMNS", "champion_model", "find_model_row", "fix_frozen_set", "frozen_keys", "latest_model",
    "list_models", "model_decisions", "record_decision", "register_model", "set_model_status", "unscored_comments",
    "unscored_posts", "write_predictions",
]

PREDICTION_COLUMNS = ("model_id", "entity_kind", "entity_id", "label", "score", "rank")
_MODEL_COLUMNS = ("model_id, task, version, created_at, metrics::VARCHAR, artifacts::VARCHAR, sha256, "
                  "params::VARCHAR, files::VARCHAR, status")


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
    files: dict[str, str] | None = None,
) -> int:
    """Record a model and return its version: 1 + the highest version of `task`.

    `artifacts` name files by role (paths relative to the home), `files` hash every file of the
    model folder (relative path → sha256). Registering the same `model_id` again updates its
    metrics/artifacts and keeps its version and status; a new model starts as a `challenger`
    (the promotion gate, `flows.gate`, decides whether it becomes the champion).
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
                "files": [_to_json(files or {})],
                "status": [None if known else "challenger"],
            },
        )
    return version


def _row(found: tuple) -> dict[str, Any]:
    model_id, task, version, created_at, metrics, artifacts, sha256, params, files, status = found
    return {
        "status": status,
        "model_id": model_id,
        "task": task,
        "version": version,
        "created_at": created_at,
        "metrics": json.loads(metrics) if metrics else {},
        "artifacts": json.loads(artifacts) if artifacts else {},
        "sha256": sha256,
        "params": json.loads(params) if params else {},
        "files": json.loads(files) if files else {},
    }


def latest_model(
    wh_or_con: Warehouse | duckdb.DuckDBPyConnection, task: str
) -> dict[str, Any] | None:
    """The highest version of `task` as a dict (JSON columns decoded), or None.

    Works on the writer and on a read-only catalog connection alike.
    """
    rows = connection_of(wh_or_con).execute(
        f"SELECT {_MODEL_COLUMNS} FROM models WHERE task = ? ORDER BY version DESC LIMIT 1", [task]
    ).fetchall()
    return _row(rows[0]) if rows else None


def champion_model(wh_or_con: Warehouse | duckdb.DuckDBPyConnection, task: str) -> dict[str, Any] | None:
    """The champion of `task` (what scoring and forecasts use), or None."""
    rows = connection_of(wh_or_con).execute(
        f"SELECT {_MODEL_COLUMNS} FROM models WHERE task = ? AND status = 'champion' ORDER BY version DESC LIMIT 1",
        [task]).fetchall()
    return _row(rows[0]) if rows else None


def list_models(wh_or_con: Warehouse | duckdb.DuckDBPyConnection, task: str | None = None) -> list[dict[str, Any]]:
    """Every registered model (of `task`), by task and version, newest first."""
    where, args = ("WHERE task = ?", [task]) if task else ("", [])
    rows = connection_of(wh_or_con).execute(
        f"SELECT {_MODEL_COLUMNS} FROM models {where} ORDER BY task, version DESC", args).fetchall()
    return [_row(r) for r in rows]


def set_model_status(wh: Warehouse, model_id: str, status: str) -> None:
    from .schema import MODEL_STATUSES

    if status not in MODEL_STATUSES:
        raise ValueError(f"unknown model status {status!r}: one of {list(MODEL_STATUSES)}")
    wh.con.execute("UPDATE models SET status = ? WHERE model_id = ?", [status, model_id])
    wh.mark_changed("models")


def record_decision(wh: Warehouse, *, task: str, action: str, model_id: str, champion_id: str | None,
                    metric: str | None, model_score: float | None, champion_score: float | None,
                    tolerance: float | None, frozen_items: int | None, reason: str) -> dict[str, Any]:
    """Append one registry decision (`model_decisions`) and return it."""
    import uuid

    row = {"decision_id": uuid.uuid4().hex, "decided_at": datetime.now(UTC), "task": task, "action": action,
           "model_id": model_id, "champion_id": champion_id, "metric": metric, "model_score": model_score,
           "champion_score": champion_score, "tolerance": tolerance, "frozen_items": frozen_items, "reason": reason}
    merge_rows(wh, "model_decisions", {k: [v] for k, v in row.items()})
    wh.mark_changed("model_decisions")
    return row


def model_decisions(wh_or_con: Warehouse | duckdb.DuckDBPyConnection, *, task: str | None = None,
                    model_id: str | None = None) -> pd.DataFrame:
    """The recorded decisions, oldest first."""
    where, args = [], []
    if task:
        where.append("task = ?"), args.append(task)
    if model_id:
        where.append("(model_id = ? OR champion_id = ?)"), args.extend([model_id, model_id])
    sql = "SELECT * FROM model_decisions" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY decided_at"
    return connection_of(wh_or_con).execute(sql, args).df()


def frozen_keys(wh_or_con: Warehouse | duckdb.DuckDBPyConnection, task: str) -> tuple[str | None, list[str]]:
    """The frozen evaluation set of `task`: (key kind, keys), or (None, []) when none is fixed."""
    rows = connection_of(wh_or_con).execute(
        "SELECT key_kind, key FROM frozen_sets WHERE task = ? ORDER BY key", [task]).fetchall()
    return (rows[0][0] if rows else None), [k for _, k in rows]


def fix_frozen_set(wh: Warehouse, task: str, key_kind: str, keys: list[str]) -> int:
    """Replace the frozen set of `task` with `keys` (of `key_kind`); return how many."""
    with wh.transaction() as con:
        con.execute("DELETE FROM frozen_sets WHERE task = ?", [task])
        if keys:
            now = datetime.now(UTC)
            merge_rows(wh, "frozen_sets", {"task": [task] * len(keys), "key_kind": [key_kind] * len(keys),
                                           "key": [str(k) for k in keys], "fixed_at": [now] * len(keys)})
    wh.mark_changed("frozen_sets")
    return len(keys)


def find_model_row(
    wh_or_con: Warehouse | duckdb.DuckDBPyConnection, model_id: str
) -> dict[str, Any] | None:
    """The `models` row of `model_id` as a dict (like `latest_model`), or None."""
    rows = connection_of(wh_or_con).execute(
        f"SELECT {_MODEL_COLUMNS} FROM models WHERE model_id = ?", [model_id]
    ).fetchall()
    return _row(rows[0]) if rows else None


def write_predictions(wh: Warehouse, df: pd.DataFrame) -> int:
    """Upsert predictions keyed by (model_id, entity_kind, entity_id, label); `scored_at` is filled in;
    `text_only` (optional) says an image + text model saw no image."""
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}; need {list(PREDICTION_COLUMNS)}")
    rows = df[list(PREDICTION_COLUMNS)].copy()
    if "text_only" in df:
        rows["text_only"] = df["text_only"].astype("boolean")
    unknown = sorted(set(rows["entity_kind"].astype(str)) - set(ENTITY_KINDS))
    if unknown:
        raise ValueError(f"unknown entity_kind {unknown}: one of {list(ENTITY_KINDS)}")
    rows["entity_id"] = rows["entity_id"].astype(str)
    rows["label"] = rows["label"].astype(str)
    rows["scored_at"] = pd.Timestamp.now(tz="UTC")
    return merge_rows(wh, "predictions", rows)


_NOT_SCORED = ("NOT EXISTS (SELECT 1 FROM predictions AS p WHERE p.model_id = $model AND "
               "p.entity_kind = '{kind}' AND p.entity_id = {id})")


def unscored_comments(wh_or_con: Warehouse | duckdb.DuckDBPyConnection, model_id: str) -> pd.DataFrame:
    """`rpid`, `sentence` of the comments with text (after emote tokens were removed: `sentence`,
    the text emote models train on) that `model_id` has no prediction for, by rpid."""
    sql = (f"SELECT c.rpid, c.sentence FROM comments AS c "
           f"WHERE coalesce(trim(c.sentence), '') <> '' "
           f"AND {_NOT_SCORED.format(kind='comment', id='CAST(c.rpid AS VARCHAR)')} ORDER BY c.rpid")
    return connection_of(wh_or_con).execute(sql, {"model": model_id}).df()


def unscored_posts(wh_or_con: Warehouse | duckdb.DuckDBPyConnection, model_id: str, *,
                   images: bool = False) -> pd.DataFrame:
    """`post_id`, `text` (post_texts) and `image_path` (the first post_images row with a local
    file, by image_index; None when there is none or `images` is False) of the posts `model_id`
    has not scored: posts with text, and with `images` also posts with only an image."""
    image = "f.local_path" if images else "NULL"
    sql = f"""
        WITH first_image AS (
            SELECT post_id, local_path FROM post_images WHERE local_path IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY post_id ORDER BY image_index) = 1
        )
        SELECT p0.post_id, t.text, {image} AS image_path
        FROM posts AS p0 LEFT JOIN post_texts AS t USING (post_id)
            LEFT JOIN first_image AS f ON f.post_id = p0.post_id
        WHERE (coalesce(trim(t.text), '') <> '' OR {image} IS NOT NULL)
          AND {_NOT_SCORED.format(kind='post', id='p0.post_id')}
        ORDER BY p0.post_id"""
    return connection_of(wh_or_con).execute(sql, {"model": model_id}).df()
