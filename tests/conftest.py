"""Session fixtures shared by several test folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from emote_fixtures import build_tiny_encoder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT and its character tokenizer in a local folder."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))
