"""A small synthetic emote dataset that a model can learn (each emote has its own phrase), and
one torch thread for the training tests: on a small shared machine, tiny tensors run several
times faster on one thread than on two."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from emote_fixtures import synthetic_emote_rows


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return synthetic_emote_rows()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
