"""Small trained emoji_align models (session-wide: the light profile, and a tiny frozen transformers
encoder) and a synthetic dataset to train and score."""

from __future__ import annotations

import pandas as pd
import pytest
from emote_fixtures import synthetic_emote_rows

from emopulse.training.emoji_align.train import TrainResult, profile_config, train_emoji_align

SMALL = dict(epochs=8, image_channels=(4, 8), hidden_dim=64, embed_dim=32, ngram_buckets=1 << 12, augment=False,
             tfidf_cs=(2.0,), batch_size=32, unseen_videos=False)


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return synthetic_emote_rows(240, seed=1)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, rows: pd.DataFrame) -> TrainResult:
    """The light profile: hashed character n-grams."""
    return train_emoji_align(rows, out_dir=tmp_path_factory.mktemp("train"), config=profile_config("light", **SMALL),
                             progress=False)


@pytest.fixture(scope="session")
def trained_transformers(tmp_path_factory, rows: pd.DataFrame, tiny_encoder) -> TrainResult:
    """The cpu profile's shape on a tiny random BERT: frozen encoder, cached embeddings."""
    config = profile_config("cpu", text_encoder_path=str(tiny_encoder), text_prefix="query: ", **{**SMALL, "epochs": 2})
    return train_emoji_align(rows, out_dir=tmp_path_factory.mktemp("train-tf"), config=config,
                             cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
