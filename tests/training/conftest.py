"""A small synthetic emote dataset that a model can learn (each emote has its own phrase)."""

from __future__ import annotations

import pandas as pd
import pytest
from emote_fixtures import synthetic_emote_rows


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return synthetic_emote_rows()
