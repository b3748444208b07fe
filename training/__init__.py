"""emopulse.training: datasets, splits, metrics, checkpoints and the emote models.

Names are re-exported lazily (PEP 562), so `import emopulse.training` stays cheap and imports torch
only when a model or training function is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Split": ".splits", "split_by_comment": ".splits", "split_by_group": ".splits",
    "split_by_video": ".splits",
    "main_label": ".metrics", "majority_scores": ".metrics", "ranking_metrics": ".metrics",
    "top_k": ".metrics", "topk_accuracy": ".metrics",
    "load_checkpoint": ".checkpoint", "save_checkpoint": ".checkpoint",
    "emote_comments": ".data", "read_comments": ".data", "read_emoji_training_set": ".data", "read_emoji_comments": ".data",
    "eval_summary_markdown": ".report", "markdown_table": ".report",
    "balanced_sample": ".evaluation", "detailed_report": ".evaluation", "evaluate_ranking": ".evaluation",
    "majority_baseline": ".baselines", "tfidf_logreg_baseline": ".baselines",
    "read_emote_images": ".data", "EmoteImages": ".emote_images", "build_emote_images": ".emote_images",
    "HashedNgramTokenizer": ".encoders.tokenizers", "TextTokenizer": ".encoders.tokenizers",
    "load_tokenizer": ".encoders.tokenizers",
    "EmojiAlign": ".emoji_align.model", "EmojiAlignConfig": ".emoji_align.model", "EmoteRanker": ".emoji_align.model",
    "TrainConfig": ".emoji_align.train", "load_ranker": ".emoji_align.train",
    "profile_config": ".emoji_align.train", "train_emoji_align": ".emoji_align.train",
    "TrainResult": ".result", "Head": ".result", "video_folds": ".splits",
    "FeatureCache": ".features", "encoder_fingerprint": ".features", "text_features": ".features",
    "image_features": ".features", "LoopConfig": ".loop", "fit": ".loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
