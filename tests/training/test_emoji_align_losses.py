"""The losses on plain tensors, and the model pieces they drive (no text encoder needed)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from emopulse.training.emoji_align.losses import hardest_negative_triplet, prototype_cross_entropy
from emopulse.training.emoji_align.model import EmojiAlign, EmojiAlignConfig
from emopulse.training.encoders.emote_image import augment, to_pixels


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_cross_entropy_is_over_similarities_divided_by_tau() -> None:
    text, protos = _unit([1, 0], [0, 1]), _unit([1, 0], [0, 1], [1, 1])
    target = torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5]])
    tau = torch.tensor(0.1)
    logits = text @ protos.T / 0.1
    want = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(prototype_cross_entropy(text, protos, target, tau), want)


def test_triplet_uses_the_hardest_prototype_the_comment_does_not_carry() -> None:
    text = _unit([1, 0])
    protos = _unit([1, 0.2], [1, 0.1], [0, 1], [1, -0.3])  # 0 is the main emote; 1 is also carried
    own = torch.tensor([[True, True, False, False]])
    sims = (text @ protos.T)[0]
    got = hardest_negative_triplet(text, protos, torch.tensor([0]), own, margin=0.5)
    want = 0.5 - sims[0] + sims[3]  # emote 3 is the hardest negative; emote 1 is not a negative
    torch.testing.assert_close(got, want)
    assert hardest_negative_triplet(text, protos, torch.tensor([0]), own, margin=0.0) == 0  # margin met
    assert hardest_negative_triplet(text, protos, torch.tensor([0]), torch.ones(1, 4, dtype=torch.bool),
                                    margin=0.5) == 0  # no negative at all


def _model(num_emotes: int = 3) -> EmojiAlign:
    torch.manual_seed(0)
    return EmojiAlign(EmojiAlignConfig(num_emotes=num_emotes, text_dim=8, embed_dim=16, hidden_dim=16,
                                       image_channels=(4, 8), dropout=0.0))


def _pixels(n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return to_pixels(rng.integers(0, 256, size=(n, 72, 72, 3), dtype=np.uint8))


def test_the_triplet_gradient_reaches_the_image_encoder() -> None:
    model = _model()
    owner = torch.tensor([0, 0, 1, 2])
    prototypes = model.prototypes(_pixels(4), owner)
    text = model.text.from_features(torch.randn(5, 8))
    loss = hardest_negative_triplet(text, prototypes, torch.tensor([0, 1, 2, 0, 1]),
                                    F.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).bool(), margin=2.0)
    assert loss > 0
    loss.backward()
    first_conv = model.image.encoder.net[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_prototypes_are_unit_means_of_their_images_plus_offsets() -> None:
    model = _model().eval()
    pixels, owner = _pixels(4), torch.tensor([0, 0, 1, 2])
    with torch.no_grad():
        model.offsets.copy_(torch.randn_like(model.offsets))
        z = model.image(pixels)
        protos = model.prototypes(pixels, owner)
    want = F.normalize(torch.stack([z[:2].mean(0), z[2], z[3]]) + model.offsets, dim=-1)
    torch.testing.assert_close(protos, want)
    assert torch.allclose(protos.norm(dim=1), torch.ones(3))


def test_tau_is_clamped_to_its_bounds_after_a_step() -> None:
    model = _model()
    for start, want in ((1.0, 0.20), (0.001, 0.03), (0.05, 0.05)):
        with torch.no_grad():
            model.tau.fill_(start)
        model.clamp_tau_()
        assert abs(model.tau.item() - want) < 1e-7
    # a large step pushing tau below its floor ends at the floor
    optimizer = torch.optim.SGD([model.tau], lr=10.0)
    (-model.tau).neg().backward()  # d/dtau = 1: a step of -10
    optimizer.step()
    model.clamp_tau_()
    assert abs(model.tau.item() - 0.03) < 1e-7


def test_augmentation_keeps_shape_range_and_is_seeded() -> None:
    pixels = _pixels(3)
    a = augment(pixels, generator=torch.Generator().manual_seed(1))
    b = augment(pixels, generator=torch.Generator().manual_seed(1))
    assert a.shape == pixels.shape and torch.equal(a, b) and not torch.equal(a, pixels)
    assert a.min() >= -1 and a.max() <= 1
