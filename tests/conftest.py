"""Session fixtures shared by several test folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from emote_fixtures import build_tiny_encoder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT and its character tokenizer in a local folder."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def trend_home(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path):
    """A home with 400 days of trend posts (and texts) imported and `train trend --profile light`
    run on them (exported, registered, open windows forecast): (home, the command's JSON, the data folder)."""
    import json

    from trend_fixtures import write_trend_posts
    from typer.testing import CliRunner

    from emopulse.flows.cli import app

    runner = CliRunner()
    home, data = tmp_path_factory.mktemp("trend-home"), tmp_path_factory.mktemp("trend-data")
    posts, texts = write_trend_posts(data, days=400, categories=6, per_day=12, seed=5)
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOPULSE_EMOJI_TEXT_ENCODER", str(tiny_encoder))
    result = runner.invoke(app, ["import", "mkt", str(posts), str(texts), "--home", str(home)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "trend", "--profile", "light", "--quiet", "--home", str(home)])
    assert result.exit_code == 0, result.output
    yield home, json.loads(result.stdout[result.stdout.index("{"):]), data
    mp.undo()
