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
    View, _blend_weight, _emoji_config, blend_scores, cross_validate, label_view, load_ranker, prepare_data,
    profile_config, smoothed_target, train_emoji_align,
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
    assert bias.shape == (len(result.head.labels),)
    data = prepare_data(rows[rows["rpid"] <= 300], config)
    view = label_view(data, np.arange(len(data.comments)), config.min_comments)
    train = np.flatnonzero(view.main >= 0)
    start = EmojiAlign(EmojiAlignConfig(num_emotes=len(view.labels), text_encoder="ngrams", image_channels=(4,)))
    start.init_bias_(smoothed_target(view, train, config.label_smoothing)[train].sum(dim=0))
    assert (bias - start.bias.detach()).abs().max() > 1e-3  # it started at the log prior and was trained
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
    view = _view([[1, 1, 0, 0]] * 3 +   # a and b together, three times (training)
                 [[1, 0, 0, 0],
                  [0, 0, 0, 1],   # d alone
                  [0, 0, 1, 1]],  # c and d together, but this row is not a training row
                 twins=["😂", None, "😂", None])  # a and c share a Unicode twin
    train = np.arange(5)
    out = smoothed_target(view, train, 0.2)
    # a: its co-occurrences (all with b) and its twins (c) get half of the share each, however
    # many comments the co-occurrence counted
    torch.testing.assert_close(out[3], torch.tensor([0.8, 0.1, 0.1, 0.0]))
    # b co-occurs with a only and has no twin: all of its share goes to a
    torch.testing.assert_close(out[0], 0.8 * torch.tensor([0.5, 0.5, 0, 0]) + 0.2 * torch.tensor([0.5, 0.25, 0.25, 0]))
    torch.testing.assert_close(out[4], torch.tensor([0.0, 0.0, 0.0, 1.0]))  # d relates to nothing: kept
    torch.testing.assert_close(out.sum(dim=1), torch.ones(6))
    assert smoothed_target(view, train, 0.0) is view.target
    with_test_row = smoothed_target(view, np.arange(6), 0.2)  # c-d co-occurrence now counts
    assert with_test_row[4, 2] > 0


def test_cross_validation_smooths_each_fold_with_its_training_rows_only(rows, monkeypatch) -> None:
    from emopulse.training.emoji_align import train as train_module

    seen: list[np.ndarray] = []
    original = train_module.smoothed_target
    monkeypatch.setattr(train_module, "smoothed_target", lambda view, train, eps: seen.append(train.copy())
                        or original(view, train, eps))
    config = profile_config("light", **FAST, label_smoothing=0.1)
    data = prepare_data(rows[rows["rpid"] <= 300], config)
    cv = cross_validate(data, config)
    assert len(seen) == len(cv["folds"])
    for used, split in zip(seen, cv["splits"], strict=True):
        part = split.assign(data.comments["id"])
        assert used.size and set(part[used]) == {"train"}


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


def test_cross_validation_reports_the_blend_with_its_weight_from_the_validation_videos(rows, monkeypatch) -> None:
    from emopulse.training.emoji_align import train as train_module

    calls: list[tuple] = []
    original = train_module._blend_weight
    monkeypatch.setattr(train_module, "_blend_weight", lambda logits, probs, main: calls.append((logits, probs, main))
                        or original(logits, probs, main))
    config = profile_config("light", **FAST, tfidf_blend=True)
    data = prepare_data(rows[rows["rpid"] <= 300], config)
    cv = cross_validate(data, config)
    assert set(cv["summary"]) == {"emoji_align", "tfidf", "majority", "blend"}
    tfidf_val = [v[0] for v in data.memo.values()]  # what TF-IDF said on each fold's validation rows
    for fold, (logits, probs, main), val_probs in zip(cv["folds"], calls, tfidf_val, strict=True):
        assert len(main) == len(logits) == fold["sizes"]["val"] != fold["sizes"]["test"]
        np.testing.assert_array_equal(probs, val_probs)
        assert fold["tfidf"]["blend_weight"] == original(logits, probs, main)
        assert fold["results"]["blend"]["n"] == fold["results"]["tfidf"]["n"]


# -- e5's last four layers ------------------------------------------------------------------------------
def test_last4_pooling_averages_the_last_four_hidden_states(tmp_path) -> None:
    from emote_fixtures import build_tiny_encoder

    folder = build_tiny_encoder(tmp_path / "six-layers", layers=6)
    tok = TextTokenizer(str(folder), max_len=32)
    last4, mean = (TextEncoder.from_pretrained(folder, pooling=p).eval() for p in ("last4", "mean"))
    ids, mask = map(torch.from_numpy, tok.encode(["狗头保命"]))
    with torch.no_grad():
        states = last4.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        got, plain = last4(ids, mask), mean(ids, mask)
    assert len(states) == 7  # the embeddings, then six layers: four of them are averaged, not five
    torch.testing.assert_close(got[0], torch.stack(states[-4:]).mean(dim=0)[0].mean(dim=0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got[0], torch.stack(states[-5:]).mean(dim=0)[0].mean(dim=0), atol=1e-4)
    assert not torch.allclose(got, plain)
    # the two poolings are two encoders to the feature cache: neither reads the other's vectors
    cache = tmp_path / "cache"
    a = text_features(last4, tok, ["狗头保命"], root=cache)
    b = text_features(mean, tok, ["狗头保命"], root=cache)
    np.testing.assert_allclose(a[0], got[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(b[0], plain[0].numpy(), atol=1e-5)
    assert len({p.name for p in cache.iterdir()}) == 2
    with pytest.raises(ValueError, match="unknown pooling"):
        TextEncoder.from_pretrained(folder, pooling="max")
    with pytest.raises(ValueError, match="averages 4 layers; this encoder has 2"):
        TextEncoder.from_pretrained(build_tiny_encoder(tmp_path / "two-layers", layers=2), pooling="last4")


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
    config = profile_config("light", **{**FAST, "epochs": 6}, image_encoder="efficientnet", lr_text_encoder=5e-3,
                            lr_projection=3e-3)
    data = prepare_data(rows[rows["rpid"] <= 300], config, cache_dir=tmp_path)
    from emopulse.training.encoders.image import ImageEncoder

    want = array_image_features(ImageEncoder.pretrained(), data.images.images, root=None)
    torch.testing.assert_close(data.image_inputs, torch.from_numpy(want), atol=1e-5, rtol=1e-5)  # Lite0's own
    assert data.pixels.shape[1:] == (3, 72, 72)  # the scratch CNN's inputs are still there
    cv = cross_validate(data, config)
    model = cv["summary"]["emoji_align"]["natural"]["top1_strict"]["mean"]
    assert model > cv["summary"]["majority"]["natural"]["top1_strict"]["mean"] + 0.2
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


def test_a_setting_out_of_range_is_refused_before_any_work() -> None:
    for bad, match in (({"image_encoder": "resnet"}, "image_encoder must be one of"),
                       ({"text_pooling": "max"}, "text_pooling must be one of"),
                       ({"monitor": "f1"}, "monitor must be one of"),
                       ({"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\)"),
                       ({"label_smoothing": -0.3}, "label_smoothing must be in")):
        with pytest.raises(ValueError, match=match):
            profile_config("light", **bad)
