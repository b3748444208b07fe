"""What the ablation table varies: the log-prior bias, label smoothing toward co-occurring emotes
and Unicode twins, the TF-IDF blend, e5's last-four-layer pooling and frozen EfficientNet-Lite0
emote features, each on real tensors, a real tiny encoder and the real image weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emopulse.training.emoji_align.losses import prototype_cross_entropy
from emopulse.training.emoji_align.model import EmojiAlign, EmojiAlignConfig, EmoteRanker
from emopulse.training.emoji_align.train import (
    View, _blend_weight, _emoji_config, blend_scores, cross_validate, load_ranker, prepare_data, profile_config,
    smoothed_target, train_emoji_align,
)
from emopulse.training.encoders.text import TextEncoder
from emopulse.training.encoders.tokenizers import TextTokenizer
from emopulse.training.features import array_image_features, text_features

FAST = dict(epochs=2, image_channels=(4, 8), augment=False, hidden_dim=32, embed_dim=16, ngram_buckets=1 << 12,
            tfidf_cs=(0.5,), batch_size=32, folds=2, min_comments=5, patience=None)


# -- the bias -------------------------------------------------------------------------------------------
def test_the_bias_starts_at_the_log_prior_and_enters_the_loss_and_the_ranker() -> None:
    model = EmojiAlign(EmojiAlignConfig(num_emotes=3, text_encoder="ngrams", text_dim=8, image_channels=(4,)))
    model.init_bias_(torch.tensor([6.0, 2.0, 0.0]))
    torch.testing.assert_close(model.bias.detach(), torch.log(torch.tensor([0.75, 0.25, 1e-4])))
    text, protos = F.normalize(torch.randn(4, 16), dim=1), F.normalize(torch.randn(3, 16), dim=1)
    tau = torch.tensor(0.1)
    target = torch.eye(3)[[0, 1, 2, 0]]
    with_bias = prototype_cross_entropy(text, protos, target, tau, model.bias)
    torch.testing.assert_close(with_bias, F.cross_entropy(text @ protos.T / tau + model.bias, target))
    assert not torch.isclose(with_bias, prototype_cross_entropy(text, protos, target, tau))
    torch.testing.assert_close(model.logits(text, protos), text @ protos.T / model.tau + model.bias)

    tower = Fixed(text)  # the ranker adds the same bias to its logits
    ids = torch.zeros(4, 1)
    torch.testing.assert_close(EmoteRanker(tower, protos, 0.1, model.bias)(ids, ids),
                               text @ protos.T / 0.1 + model.bias)
    torch.testing.assert_close(EmoteRanker(tower, protos, 0.1)(ids, ids), text @ protos.T / 0.1)  # none: zeros


class Fixed(torch.nn.Module):
    """A text tower that answers the same unit vectors whatever it is given."""

    def __init__(self, text: torch.Tensor) -> None:
        super().__init__()
        self.text = text

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text


def test_a_trained_ranker_carries_its_learnt_bias_through_the_checkpoint(tmp_path, rows) -> None:
    config = profile_config("light", **FAST)
    result = train_emoji_align(rows[rows["rpid"] <= 300], out_dir=tmp_path, config=config, progress=False)
    bias = result.module.bias
    assert bias.abs().sum() > 0 and bias.shape == (len(result.head.labels),)
    # the most frequent emote (labels are ordered by count) keeps the highest prior
    assert int(bias.argmax()) == 0
    ranker, _, _ = load_ranker(result.files["checkpoint"])
    torch.testing.assert_close(ranker.bias, bias)


def test_checkpoints_from_before_the_bias_load_without_one() -> None:
    old = {"num_emotes": 3, "text_encoder": "ngrams", "image_channels": [4, 8]}  # written before these fields
    config = _emoji_config(old)
    assert (config.prior_bias, config.image_encoder, config.text_pooling) == (False, "scratch", "mean")
    assert EmojiAlign(config).bias is None


# -- label smoothing ------------------------------------------------------------------------------------
def _view(own: list[list[int]], twins: list[str | None]) -> View:
    own_t = torch.tensor(own, dtype=torch.bool)
    target = own_t.float() / own_t.float().sum(dim=1, keepdim=True).clamp(min=1)
    n, e = own_t.shape
    return View(labels=[f"[{i}]" for i in range(e)], cols=np.arange(e), main=np.zeros(n, np.int64),
                label_sets=[], target=target, own=own_t, images=torch.zeros(e, 1), owner=torch.arange(e), twins=twins)


def test_smoothing_moves_a_share_to_co_occurring_and_twin_emotes_counted_on_training_rows_only() -> None:
    view = _view([[1, 1, 0, 0],   # a and b together (training)
                  [1, 0, 0, 0],
                  [0, 0, 0, 1],   # d alone
                  [0, 0, 1, 1]],  # c and d together, but this row is not a training row
                 twins=["😂", None, "😂", None])  # a and c share a Unicode twin
    train = np.array([0, 1, 2])
    out = smoothed_target(view, train, 0.2)
    # a: related to b (one co-occurrence) and c (its twin), 1/2 each
    torch.testing.assert_close(out[1], torch.tensor([0.8, 0.1, 0.1, 0.0]))
    torch.testing.assert_close(out[2], torch.tensor([0.0, 0.0, 0.0, 1.0]))  # d relates to nothing: kept
    torch.testing.assert_close(out.sum(dim=1), torch.ones(4))
    assert smoothed_target(view, train, 0.0) is view.target
    with_test_row = smoothed_target(view, np.arange(4), 0.2)  # c-d co-occurrence now counts
    assert with_test_row[2, 2] > 0


# -- the blend ------------------------------------------------------------------------------------------
def test_the_blend_weight_follows_whichever_side_is_right_on_validation() -> None:
    main = np.array([0, 1, 2, 0])
    right = np.eye(3)[main] * 0.9 + 0.05
    wrong = np.eye(3)[(main + 1) % 3] * 0.9 + 0.05
    w = _blend_weight(np.log(wrong) * 5, right, main)  # TF-IDF right, model wrong: the least weight that fixes it
    assert w > 0.5 and (blend_scores(np.log(wrong) * 5, right, w).argmax(1) == main).all()
    assert not (blend_scores(np.log(wrong) * 5, right, round(w - 0.1, 1)).argmax(1) == main).all()
    assert _blend_weight(np.log(right) * 5, wrong, main) == 0.0  # and the other way round
    logits = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(blend_scores(logits, np.full((5, 3), 1 / 3), 0.0),
                               torch.log_softmax(torch.from_numpy(logits), 1).numpy(), rtol=1e-5)


def test_cross_validation_reports_the_blend_with_its_weight_from_the_validation_videos(rows) -> None:
    config = profile_config("light", **FAST, tfidf_blend=True)
    data = prepare_data(rows[rows["rpid"] <= 300], config)
    cv = cross_validate(data, config)
    assert set(cv["summary"]) == {"emoji_align", "tfidf", "majority", "blend"}
    for fold in cv["folds"]:
        assert 0.0 <= fold["tfidf"]["blend_weight"] <= 1.0
        assert fold["results"]["blend"]["n"] == fold["results"]["tfidf"]["n"]


# -- e5's last four layers ------------------------------------------------------------------------------
def test_last4_pooling_averages_the_last_four_hidden_states(tiny_encoder, tmp_path) -> None:
    tok = TextTokenizer(str(tiny_encoder), max_len=32)
    last4, mean = (TextEncoder.from_pretrained(tiny_encoder, pooling=p).eval() for p in ("last4", "mean"))
    ids, mask = map(torch.from_numpy, tok.encode(["狗头保命"]))
    with torch.no_grad():
        states = last4.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        got, plain = last4(ids, mask), mean(ids, mask)
    torch.testing.assert_close(got[0], torch.stack(states[-4:]).mean(dim=0)[0].mean(dim=0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, plain)
    # the two poolings are two encoders to the feature cache: neither reads the other's vectors
    a = text_features(last4, tok, ["狗头保命"], root=tmp_path)
    b = text_features(mean, tok, ["狗头保命"], root=tmp_path)
    np.testing.assert_allclose(a[0], got[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(b[0], plain[0].numpy(), atol=1e-5)
    assert len({p.name for p in tmp_path.iterdir()}) == 2
    with pytest.raises(ValueError, match="unknown pooling"):
        TextEncoder.from_pretrained(tiny_encoder, pooling="max")


# -- frozen EfficientNet-Lite0 emote features -----------------------------------------------------------
def test_emote_image_features_are_cached_by_pixels(tmp_path, monkeypatch) -> None:
    from emopulse.training.encoders.image import ImageEncoder

    encoder = ImageEncoder.pretrained(batch_size=4)
    images = np.full((3, 72, 72, 3), 255, np.uint8)
    images[0, 10:40, 10:40] = (200, 30, 30)
    images[1, 30:60, 20:50] = (30, 30, 200)
    first = array_image_features(encoder, images, root=tmp_path)
    assert first.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(first[0], first[1])
    monkeypatch.setattr(encoder, "embed_images", lambda _: pytest.fail("a second call must read the cache"))
    np.testing.assert_array_equal(array_image_features(encoder, images, root=tmp_path), first)


def test_the_image_tower_can_read_frozen_efficientnet_features(tmp_path, rows) -> None:
    config = profile_config("light", **FAST, image_encoder="efficientnet")
    data = prepare_data(rows[rows["rpid"] <= 300], config, cache_dir=tmp_path)
    assert data.image_inputs.shape == (len(data.images.images), 1280)
    assert data.pixels.shape[1:] == (3, 72, 72)  # the scratch CNN's inputs are still there
    cv = cross_validate(data, config)
    assert cv["summary"]["emoji_align"]["natural"]["top5_strict"]["mean"] > 0.5
    with pytest.raises(ValueError, match="unknown image_encoder"):
        EmojiAlign(EmojiAlignConfig(num_emotes=2, image_encoder="resnet"))


# -- one preparation, many runs -------------------------------------------------------------------------
def test_a_run_on_prepared_data_uses_its_own_model_settings_and_refuses_other_inputs(rows) -> None:
    config = profile_config("light", **FAST)
    data = prepare_data(rows[rows["rpid"] <= 300], config)
    with_bias = cross_validate(data, config)
    without = cross_validate(data, replace(config, prior_bias=False, hidden_dim=16))
    assert with_bias["folds"][0]["history"] != without["folds"][0]["history"]
    from emopulse.training.emoji_align.train import fit_model, label_view

    view = label_view(data, np.arange(len(data.comments)), config.min_comments)
    rows_ = np.flatnonzero(view.main >= 0)[:64]
    model, _, _ = fit_model(data, view, rows_, np.zeros(0, np.int64), replace(config, prior_bias=False, hidden_dim=16,
                                                                               epochs=1))
    assert model.bias is None and model.text.proj.net[0].out_features == 16
    with pytest.raises(ValueError, match="prepared with other.*max_len"):
        cross_validate(data, replace(config, max_len=8))
