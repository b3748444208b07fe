"""The promotion gate: a frozen evaluation set per task judges each new model (a challenger)
against the task's champion, which is what scoring and forecasts use.

* The frozen set is drawn the first time a task's data is read for training (so the first
  champion has not seen it either): whole videos (emoji), pairs (sentiment), training texts
  (emotions), `gate_frozen_share` of them and at most `FROZEN_MAX` rows; for trend, the latest
  label months (that share of them, at least one, leaving `TREND_MIN_MONTHS` to train on). It is
  stored in `frozen_sets` and left out of every later training. `emopulse models freeze TASK --renew`
  draws it again (the champion may have trained on the new draw: its figure flatters it).
* `judge` scores challenger and champion on it with ONNX Runtime and computes the task's
  primary metric; the challenger is promoted when it is at least the champion's minus
  `gate_tolerance`, else rejected. Every decision is recorded with both figures.
* Trend models are compared on the frozen months' windows by Spearman's rank correlation across
  categories per target month (the mean over the months), forecast through ONNX Runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from emopulse.warehouse import (
    Warehouse, champion_model, find_model_row, fix_frozen_set, frozen_keys, model_decisions, record_decision,
    set_model_status,
)

from .settings import Settings

__all__ = ["FROZEN", "FROZEN_MAX", "archive", "evaluate", "judge", "promote", "retrain", "rollback", "training_rows"]

log = logging.getLogger(__name__)
FROZEN_MAX = 2000  # rows of a frozen set at most: both models score it at every decision
TREND_MIN_MONTHS = 4  # label months left to train on (walk-forward folds need a few)


@dataclass(frozen=True)
class FrozenSpec:
    """How a task's training rows map to frozen-set keys, and which rows may be frozen."""

    key_kind: str
    metric: str
    key: Callable[[pd.DataFrame], pd.Series]
    eligible: Callable[[pd.DataFrame], pd.Series] = lambda rows: pd.Series(True, index=rows.index)
    latest: bool = False  # freeze the latest keys (time), not random ones


FROZEN: dict[str, FrozenSpec] = {
    "emoji": FrozenSpec("video", "top1_any", lambda r: r["bvid"].astype(str)),
    "sentiment": FrozenSpec("pair", "weighted_f1", lambda r: r["source"].astype(str) + ":" + r["guid"].astype(str)),
    "emotions": FrozenSpec("text", "macro_f1", lambda r: r["source"].astype(str) + ":" + r["text_id"].astype(str),
                           eligible=lambda r: r["split"] == "train"),
    "trend": FrozenSpec("month", "spearman", lambda r: pd.to_datetime(r["target_month"]).dt.strftime("%Y-%m-%d"),
                        latest=True),
}


def _draw(rows: pd.DataFrame, spec: FrozenSpec, share: float, seed: int) -> list[str]:
    """Random whole groups (videos, pairs, texts) until about `share` of the eligible rows, at most
    `FROZEN_MAX` of them; never every group (something must be left to train on)."""
    keys = spec.key(rows)[spec.eligible(rows)]
    sizes = keys.value_counts()
    groups = sorted(sizes.index)
    if spec.latest:  # time: the latest months, never so many that too few are left
        n = max(1, round(share * len(groups)))
        return groups[-n:] if len(groups) - n >= TREND_MIN_MONTHS else []
    if len(groups) < 2:  # nothing would be left to train on
        return []
    want = min(FROZEN_MAX, max(1, round(share * int(sizes.sum()))))
    limit = min(FROZEN_MAX, max(round(1.5 * want), 1))  # a group this big would take too much
    picked, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(groups)):
        if total >= want or len(picked) == len(groups) - 1:
            break
        if total + sizes[groups[i]] <= limit:
            picked.append(groups[i])
            total += int(sizes[groups[i]])
    if not picked:  # every group is bigger than that: the smallest one
        picked = [min(groups, key=lambda g: (sizes[g], g))]
    return sorted(picked)


def training_rows(settings: Settings, task: str, rows: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """`rows` (read from the snapshot) without the task's frozen set; when the task has none yet it
    is drawn from them first (the writer is taken only for that)."""
    from .steps import snapshot, writer

    spec = FROZEN.get(task)
    if spec is None or rows.empty:
        return rows
    with snapshot(settings) as con:
        kind, keys = frozen_keys(con, task)
        first = not con.execute("SELECT count(*) FROM models WHERE task = ?", [task]).fetchall()[0][0]
    if kind is None and first and not settings.gate_freeze_first:
        log.info("%s: the first model trains on everything; the frozen set is drawn at the next training", task)
        return rows
    if kind is None:
        with writer(settings, f"freeze {task}") as wh:
            kind, keys = frozen_keys(wh, task)  # another process may have drawn it meanwhile
            if kind is None:
                keys = _draw(rows, spec, settings.gate_frozen_share, seed)
                if not keys:
                    log.info("%s: too little data to freeze an evaluation set: the gate will promote without "
                             "figures", task)
                    return rows
                fix_frozen_set(wh, task, spec.key_kind, keys)
                log.info("%s: froze %d %ss as the promotion gate's evaluation set", task, len(keys), spec.key_kind)
    frozen = spec.key(rows).isin(set(keys))
    log.info("%s: %d of %d rows are in the frozen set and left out of training", task, int(frozen.sum()), len(rows))
    return rows[~frozen].reset_index(drop=True)


def freeze(settings: Settings, task: str, *, seed: int | None = None) -> dict[str, Any]:
    """Draw the frozen set of `task` again from all its data (`models freeze --renew`); `seed`
    None draws a new one. Refused when the data are too few to freeze anything."""
    import secrets

    from .steps import read_task_rows, writer

    if task not in FROZEN:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(FROZEN)}")
    with writer(settings, f"freeze {task}") as wh:
        rows = read_task_rows(wh, task)
        keys = _draw(rows, FROZEN[task], settings.gate_frozen_share, secrets.randbits(32) if seed is None else seed)
        if not keys:
            raise ValueError(f"too little {task} data to freeze an evaluation set ({len(rows)} rows); the set stays as it is")
        fix_frozen_set(wh, task, FROZEN[task].key_kind, keys)
        items = int(FROZEN[task].key(rows).isin(set(keys)).sum())
    return {"task": task, "key_kind": FROZEN[task].key_kind, "keys": len(keys), "rows": items}


def check_task(task: str | None) -> None:
    if task is not None and task not in FROZEN:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(FROZEN)}")


# -- evaluation ---------------------------------------------------------------------------------------
def frozen_rows(wh: Warehouse, task: str) -> pd.DataFrame:
    """The task's rows that are in its frozen set (empty when there is none)."""
    from .steps import read_task_rows

    spec = FROZEN.get(task)
    kind, keys = frozen_keys(wh, task)
    if spec is None or kind is None:
        return pd.DataFrame()
    rows = read_task_rows(wh, task)
    return rows[spec.key(rows).isin(set(keys))].reset_index(drop=True)


def evaluate_windows(wh: Warehouse, settings: Settings, record: Any, rows: pd.DataFrame) -> float:
    """A trend model's mean Spearman (across categories, per target month) on frozen windows."""
    from emopulse.serving.forecast import forecast_windows
    from emopulse.training.metrics import spearman_by_group

    from .steps import trend_encoders

    frame, _ = forecast_windows(wh, rows, model=record, variant="fp32", **trend_encoders(settings, record))
    got = rows.merge(frame[["category", "window_end", "share"]], on=["category", "window_end"])
    return float(spearman_by_group(got["label_share"], got["share"], got["target_month"].astype(str))["mean"])


def evaluate(record: Any, task: str, rows: pd.DataFrame, *, home: Any) -> float:
    """The task's primary metric of a registered model (a `ModelRecord`) on frozen rows (trend:
    `evaluate_windows`, which needs the warehouse)."""
    from sklearn.metrics import f1_score

    from emopulse.serving import load_scorer

    scorer = load_scorer(record, device="auto", variant="fp32")
    if task == "emoji":  # Top-1 any: the first-ranked emote is one of the comment's emotes
        comments = rows.groupby("rpid", sort=True).agg(sentence=("sentence", "first"), emotes=("emoji_alt", set))
        top, _ = scorer.predict(comments["sentence"].fillna("").tolist()).top(1)
        return float(np.mean([t in gold for t, gold in zip(top[:, 0], comments["emotes"])]))
    if task == "sentiment":
        records = [{"text": t if isinstance(t, str) else "",
                    "image": (home / p) if isinstance(p, str) and (home / p).is_file() else None}
                   for t, p in zip(rows["text"], rows["image_path"])]
        top, _ = scorer.predict(records).top(1)
        return float(f1_score(rows["label"].astype(str), top[:, 0].astype(str), average="weighted", zero_division=0))
    if task == "emotions":
        labels = list(scorer.labels)
        gold = np.array([[name in set(ls) for name in labels] for ls in rows["labels"]], bool)
        on = scorer.predict(rows["text"].fillna("").tolist()).on()
        return float(f1_score(gold, on, average="macro", zero_division=0))
    raise ValueError(f"task {task!r} has no frozen-set evaluation")


def _scores(wh: Warehouse | None, settings: Settings, task: str, rows: pd.DataFrame, records: dict,
            *, inside: bool) -> dict[str, float]:
    """Each model's figure on the frozen rows: trend inside the read (its forecasts read the day
    matrix), the others after it (scored without the writer: crawls go on meanwhile)."""
    if rows.empty or (task == "trend") != inside:
        return {}
    if task == "trend":
        return {i: evaluate_windows(wh, settings, r, rows) for i, r in records.items()}
    return {i: evaluate(r, task, rows, home=settings.home) for i, r in records.items()}


def _figures(wh: Warehouse, task: str, model_id: str, champion_id: str | None) -> tuple[pd.DataFrame, dict]:
    from emopulse.serving import find_model

    rows = frozen_rows(wh, task)
    ids = [model_id] + ([champion_id] if champion_id else [])
    return rows, {i: find_model(wh, model_id=i) for i in ids}


def _model_and_champion(wh: Warehouse, model_id: str) -> tuple[str, dict[str, Any] | None]:
    """The task of `model_id` (a LookupError when it is not registered) and that task's champion."""
    row = find_model_row(wh, model_id)
    if row is None:
        raise LookupError(f"no model {model_id!r} in the registry")
    return row["task"], champion_model(wh, row["task"])


def judge(settings: Settings, model_id: str, *, tolerance: float | None = None) -> dict[str, Any]:
    """Decide whether challenger `model_id` replaces its task's champion (see the module)."""
    from .steps import open_warehouse, writer

    tol = settings.gate_tolerance if tolerance is None else tolerance
    with open_warehouse(settings, "gate (read)") as wh:
        task, champion = _model_and_champion(wh, model_id)
        champion_id = champion["model_id"] if champion and champion["model_id"] != model_id else None
        fixed = wh.con.execute("SELECT min(fixed_at) FROM frozen_sets WHERE task = ?", [task]).fetchall()[0][0]
        predates = bool(champion_id and fixed is not None and champion["created_at"] < fixed)
        rows, records = _figures(wh, task, model_id, champion_id)
        scores = _scores(wh, settings, task, rows, records, inside=True)
    metric = FROZEN[task].metric
    scores |= _scores(None, settings, task, rows, records, inside=False)
    mine, theirs = scores.get(model_id), scores.get(champion_id) if champion_id else None
    if champion_id is None:
        action, reason = "promote", "the task's first champion"
    elif predates:
        action, reason = "promote", (f"the champion {champion_id} is older than the frozen set (it may have trained "
                                     "on it; the challenger did not): its figure would flatter it")
    elif mine is None or theirs is None:
        action, reason = "reject", "no frozen set to compare on: promote it by hand if it should serve"
    elif mine >= theirs - tol:
        action, reason = "promote", f"{metric} {mine:.4f} >= champion's {theirs:.4f} - {tol:g}"
    else:
        action, reason = "reject", f"{metric} {mine:.4f} < champion's {theirs:.4f} - {tol:g}"
    with writer(settings, "gate") as wh:
        now = champion_model(wh, task)
        if now is not None and now["model_id"] not in (champion_id, model_id):
            raise RuntimeError(f"the {task} champion changed to {now['model_id']} while {model_id} was judged: "
                               "judge it again")
        if action == "promote":
            _crown(wh, task, model_id, champion_id)
        else:
            set_model_status(wh, model_id, "rejected")
        decision = record_decision(wh, task=task, action=action, model_id=model_id, champion_id=champion_id,
                                   metric=metric, model_score=mine, champion_score=theirs, tolerance=tol,
                                   frozen_items=len(rows) or None, reason=reason)
    log.info("gate %s: %s %s (%s)", task, action, model_id, reason)
    return decision


def _crown(wh: Warehouse, task: str, model_id: str, previous: str | None) -> None:
    if previous:
        set_model_status(wh, previous, "retired")
    wh.con.execute("UPDATE models SET status = 'retired' WHERE task = ? AND status = 'champion' AND model_id <> ?",
                   [task, model_id])
    set_model_status(wh, model_id, "champion")


def promote(settings: Settings, model_id: str) -> dict[str, Any]:
    """Make `model_id` its task's champion by hand, recorded with both frozen-set figures."""
    from .steps import open_warehouse, writer

    with open_warehouse(settings, "promote (read)") as wh:
        task, champion = _model_and_champion(wh, model_id)
        champion_id = champion["model_id"] if champion else None
        if champion_id == model_id:
            raise ValueError(f"model {model_id} is already the {task} champion")
        rows, records = _figures(wh, task, model_id, champion_id)
        scores = _scores(wh, settings, task, rows, records, inside=True)
    scores |= _scores(None, settings, task, rows, records, inside=False)
    with writer(settings, "promote") as wh:
        _crown(wh, task, model_id, champion_id)
        return record_decision(wh, task=task, action="manual-promote", model_id=model_id, champion_id=champion_id,
                               metric=FROZEN[task].metric,
                               model_score=scores.get(model_id), champion_score=scores.get(champion_id),
                               tolerance=None, frozen_items=len(rows) or None, reason="promoted by hand")


def rollback(settings: Settings, task: str) -> dict[str, Any]:
    """Give the champion's place back to the model it replaced (the current one is retired)."""
    from .steps import writer

    check_task(task)
    with writer(settings, f"rollback {task}") as wh:
        champion = champion_model(wh, task)
        if champion is None:
            raise LookupError(f"task {task!r} has no champion to roll back")
        decisions = model_decisions(wh, task=task)
        crowned = decisions[(decisions["model_id"] == champion["model_id"])
                            & decisions["action"].isin(["promote", "manual-promote", "rollback"])]
        previous = crowned["champion_id"].dropna()
        if previous.empty:
            raise LookupError(f"the {task} champion {champion['model_id']} replaced no earlier model: nothing to roll back to")
        back = str(previous.iloc[-1])
        row = find_model_row(wh, back)
        if row is None or row["status"] == "archived":
            raise LookupError(f"the model before {champion['model_id']} ({back}) is {'archived' if row else 'gone'}")
        _crown(wh, task, back, champion["model_id"])
        return record_decision(wh, task=task, action="rollback", model_id=back, champion_id=champion["model_id"],
                               metric=None, model_score=None, champion_score=None, tolerance=None, frozen_items=None,
                               reason=f"rolled back from {champion['model_id']}")


def archive(settings: Settings, model_id: str) -> dict[str, Any]:
    """Archive a model that is not a champion (`emopulse gc` may then remove it)."""
    from .steps import writer

    with writer(settings, f"archive {model_id}") as wh:
        row = find_model_row(wh, model_id)
        if row is None:
            raise LookupError(f"no model {model_id!r} in the registry")
        if row["status"] == "champion":
            raise ValueError(f"model {model_id} is the {row['task']} champion: promote another or roll back first")
        set_model_status(wh, model_id, "archived")
        return record_decision(wh, task=row["task"], action="archive", model_id=model_id, champion_id=None,
                               metric=None, model_score=None, champion_score=None, tolerance=None, frozen_items=None,
                               reason="archived by hand")


# -- the scheduled retrain ----------------------------------------------------------------------------
def retrain(settings: Settings, *, task: str, profile: str, epochs: int | None = None) -> dict[str, Any]:
    """Train `task` without its frozen set (one fit: `one_fit`), register the challenger, let the
    gate decide; a new champion then scores. The writer is held only to read the data, to register, to record the
    decision and to score."""
    from . import steps

    train = {"emoji": steps.train_emoji, "sentiment": steps.train_sentiment, "emotions": steps.train_emotions,
             "trend": steps.train_trend}
    if task not in train:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(train)}")
    from .jobs import NothingToDo, has_rows

    if not has_rows(settings, TRAINING_DATA[task]):
        raise NothingToDo(f"no {task} training data yet: {NEEDS[task]}")
    with steps.open_warehouse(settings, f"retrain {task} (read)") as wh:
        champion = champion_model(wh, task)
    result = train[task](settings, profile=profile, epochs=epochs, progress=False, **one_fit(task, champion))
    model = steps.export_model(settings, result)  # registered, then judged by the gate
    decision = model["decision"]
    out = {"model_id": model["model_id"], "version": model["version"], **decision}
    if decision["action"] == "promote":  # the new champion scores what is there (trend: forecasts)
        out["scored"] = steps.score(settings, task=task)
    return out


def one_fit(task: str, champion: dict[str, Any] | None) -> dict[str, Any]:
    """The settings of a scheduled retrain: one fit, not the full protocol (`emopulse train`).
    Emoji and sentiment: no folds, the champion's number of epochs; emotions: the EQN method
    alone (A, the expansion, B), without the report's other loss and TF-IDF; trend: one
    walk-forward month (its residuals set the interval and the share's scale) and no ablation."""
    chosen = ((champion or {}).get("metrics") or {}).get("retrain") or {}
    epochs = chosen.get("epochs") if isinstance(chosen, dict) else None
    if task in ("emoji", "sentiment"):
        return {"protocol": "fit", "retrain_epochs": int(epochs) if epochs else None}
    if task == "emotions":
        return {"compare_losses": False, "tfidf": False}
    return {"ablation": False, "max_test_months": 1}


# What a task trains on (a count over the published snapshot) and how to get it.
TRAINING_DATA = {
    "emoji": "SELECT count(*) FROM comment_emotes",
    "sentiment": "SELECT count(*) FROM sentiment_pairs WHERE label IS NOT NULL",
    "emotions": "SELECT count(*) FROM emotion_texts",
    "trend": "SELECT count(*) FROM trend_windows WHERE label_share IS NOT NULL",
}
NEEDS = {
    "emoji": "crawl or import comments with emotes",
    "sentiment": "`emopulse import pairs DIR`",
    "emotions": "`emopulse import goemotions DIR`",
    "trend": "import posts with categories (`emopulse import mkt|xhs`) spanning a few months",
}
