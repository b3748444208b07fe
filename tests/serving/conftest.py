"""Tiny `TrainResult`s of every head and input kind, trained or built in a second, for serving's
tests: real ONNX export, real ONNX Runtime sessions, real DuckDB files.

* `ranker`: hashed n-grams → emote logits (ranking), trained on the synthetic emote comments
  (each emote has its own phrase), preprocessor `clean="strip_emotes"` like the emoji model;
* `multilabel`: the same shape trained with one sigmoid per emote, thresholds differing by label;
* `regressor`: a masked mean over a [days, features] sequence → one value (a trend share);
* `poster`: text and an image (image+text, 3 sentiment classes), for posts;
* `bert_ranker`: a tiny random BERT (transformers graph, its tokenizer files bundled).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from emote_fixtures import PHRASES, synthetic_emote_rows
from torch import nn

from emopulse.training.encoders.ngrams import NgramBagEncoder
from emopulse.training.encoders.text import TextEncoder
from emopulse.training.encoders.tokenizers import HashedNgramTokenizer, TextTokenizer
from emopulse.training.preprocess import (
    ImagePreprocessor, ImageTextPreprocessor, SequencePreprocessor, TextPreprocessor,
)
from emopulse.training.result import Head, TrainResult

EMOTES = tuple(PHRASES)  # [笑哭], [doge], [大哭], [打call], [吃瓜], [星星眼]


class NgramHead(nn.Module):
    """input_ids, attention_mask → one logit per label."""

    def __init__(self, vocab_size: int, labels: int, dim: int = 32) -> None:
        super().__init__()
        self.text = NgramBagEncoder(vocab_size, dim)
        self.out = nn.Linear(dim, labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.text(input_ids, attention_mask))


class EncoderHead(nn.Module):
    def __init__(self, encoder: TextEncoder, labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.out = nn.Linear(encoder.dim, labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.encoder(input_ids, attention_mask))


class SequenceMean(nn.Module):
    """values, mask [B, days, F] → share [B, 1]: the masked mean per feature, then linear."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out = nn.Linear(features, 1)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.out(mean)


class PostModel(nn.Module):
    """Text n-grams plus a small conv over the image (zeroed without one) → 3 logits."""

    def __init__(self, vocab_size: int, dim: int = 16) -> None:
        super().__init__()
        self.text = NgramBagEncoder(vocab_size, dim)
        self.image = nn.Sequential(nn.Conv2d(3, dim, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(2 * dim, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixels: torch.Tensor,
                has_image: torch.Tensor) -> torch.Tensor:
        image = self.image(pixels) * has_image.unsqueeze(1)
        return self.out(torch.cat([self.text(input_ids, attention_mask), image], dim=1))


def _fit(module: nn.Module, feeds: dict[str, np.ndarray], target: torch.Tensor, loss_fn, steps: int = 80) -> None:
    """Full-batch Adam; one thread (tiny tensors: more threads only contend on a shared machine)."""
    torch.manual_seed(0)
    tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
    opt = torch.optim.Adam(module.parameters(), lr=0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    module.train()
    try:
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(module(**tensors), target).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    module.eval()


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return synthetic_emote_rows(240, seed=1)


@pytest.fixture(scope="session")
def comments(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per comment: rpid, message (with its emote tokens), sentence (without), main emote."""
    first = rows.drop_duplicates("rpid")
    return pd.DataFrame({"rpid": first["rpid"].to_numpy(), "bvid": first["bvid"].to_numpy(),
                         "message": first["message"].to_numpy(), "sentence": first["sentence"].to_numpy(),
                         "main": first["emoji_alt"].to_numpy()})


def _text_preprocessor() -> TextPreprocessor:
    return TextPreprocessor(HashedNgramTokenizer(buckets=1 << 12, max_len=256), clean="strip_emotes")


@pytest.fixture(scope="session")
def ranker(comments: pd.DataFrame) -> TrainResult:
    pre = _text_preprocessor()
    torch.manual_seed(0)
    module = NgramHead(pre.tokenizer.vocab_size, len(EMOTES))
    target = torch.tensor([EMOTES.index(m) for m in comments["main"]])
    _fit(module, pre.encode(comments["message"].tolist()), target, nn.functional.cross_entropy)
    return TrainResult(name="tiny_ranker", task="emoji", module=module, preprocessor=pre,
                       head=Head("ranking", EMOTES), config={"dim": 32, "encoder_folder": "/somewhere/e5"},
                       metrics={"top1": 0.9}, quality_records=comments["message"].tolist()[:120],
                       encoders={"text": "hashed-ngrams-4096"})


@pytest.fixture(scope="session")
def multilabel(rows: pd.DataFrame, comments: pd.DataFrame) -> TrainResult:
    pre = _text_preprocessor()
    torch.manual_seed(1)
    module = NgramHead(pre.tokenizer.vocab_size, len(EMOTES))
    sets = rows.groupby("rpid")["emoji_alt"].apply(set).reindex(comments["rpid"])
    target = torch.tensor([[float(e in s) for e in EMOTES] for s in sets])
    _fit(module, pre.encode(comments["message"].tolist()), target, nn.functional.binary_cross_entropy_with_logits)
    head = Head("multilabel", EMOTES, thresholds=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8))
    return TrainResult(name="tiny_emotions", task="emotions", module=module, preprocessor=pre, head=head,
                       config={}, metrics={}, quality_records=comments["message"].tolist()[:120])


@pytest.fixture(scope="session")
def regressor() -> TrainResult:
    rng = np.random.default_rng(0)
    pre = SequencePreprocessor.fit(rng.normal(size=(20, 8, 3)), features=("likes", "comments", "share"))
    torch.manual_seed(2)
    module = SequenceMean(3).eval()
    quality = [rng.normal(size=(int(rng.integers(3, 12)), 3)) for _ in range(40)]
    return TrainResult(name="tiny_trend", task="trend", module=module, preprocessor=pre,
                       head=Head("regression", ("share",), output="share"), config={}, metrics={},
                       output_names=("share",), quality_records=quality, entity_kinds=("post",))


@pytest.fixture(scope="session")
def poster() -> TrainResult:
    pre = ImageTextPreprocessor(TextPreprocessor(HashedNgramTokenizer(buckets=1 << 10, max_len=64)),
                                ImagePreprocessor(size=32, resize=36))
    torch.manual_seed(3)
    module = PostModel(pre.text.tokenizer.vocab_size).eval()
    return TrainResult(name="tiny_sentiment", task="sentiment", module=module, preprocessor=pre,
                       head=Head("ranking", ("negative", "neutral", "positive")), config={}, metrics={},
                       entity_kinds=("post",))


@pytest.fixture(scope="session")
def bert_ranker(tiny_encoder, comments: pd.DataFrame) -> TrainResult:
    pre = TextPreprocessor(TextTokenizer(str(tiny_encoder), max_len=48, prefix="query: "), clean="strip_emotes")
    torch.manual_seed(4)
    module = EncoderHead(TextEncoder.from_pretrained(tiny_encoder), len(EMOTES)).eval()
    return TrainResult(name="tiny_bert", task="emoji", module=module, preprocessor=pre, head=Head("ranking", EMOTES),
                       config={"text_encoder_path": str(tiny_encoder)}, metrics={},
                       quality_records=comments["message"].tolist()[:60], encoders={"text": "tiny-bert-0"})



@pytest.fixture(scope="module")
def register_models(tmp_path_factory, request):
    """register_models(names, home=...) → {name: ModelRecord}: the named model fixtures exported
    and registered in one scratch home."""
    from emopulse.serving import export_and_register
    from emopulse.warehouse import Warehouse

    def register(names: tuple[str, ...], *, home: str) -> dict:
        root = tmp_path_factory.mktemp(home)
        with Warehouse.open(root / "warehouse.duckdb", command="test") as wh:
            return {name: export_and_register(wh, request.getfixturevalue(name)) for name in names}

    return register
