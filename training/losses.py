"""Losses for single-label classifiers, shared by the models that pick one class of a few.

Each is an `nn.Module` `loss(logits [B, C], target [B]) -> scalar`, chosen by name with
`class_loss(name, counts, ...)`, so a setting (not a code edit) picks one:

* `ce`: cross-entropy;
* `cb_focal`: class-balanced focal loss (Cui et al., CVPR 2019): each class weighted by the
  inverse of its effective number of samples `(1 - beta^n) / (1 - beta)` (weights normalised to
  sum to the number of classes), times the focal factor `(1 - p_true)^gamma`;
* `acb`: the multimodal seed's adaptive class-balancing loss: per-class weights that follow how
  hard each class is *now* (a running mean of `1 - p_true` over the class's training rows, updated
  every training step), a focal term, plus a boundary term: a hinge pushing the true logit at least
  `margin` above the best other logit, weighted alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LOSSES", "AdaptiveClassBalancedLoss", "ClassBalancedFocalLoss", "CrossEntropyLoss", "class_loss",
           "effective_number_weights"]

LOSSES = ("ce", "cb_focal", "acb")


def effective_number_weights(counts: Sequence[int] | torch.Tensor, beta: float) -> torch.Tensor:
    """float32 [C]: `(1 - beta) / (1 - beta^n_c)` per class, normalised to sum to C (a class with
    no rows gets the largest weight any class has)."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), not {beta}")
    effective = (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), n)) / (1 - beta)
    weights = torch.where(n > 0, 1 / effective.clamp(min=1e-12), torch.zeros_like(n))
    weights = torch.where(n > 0, weights, weights.max())
    return (weights * len(n) / weights.sum()).float()


def _focal(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the focal cross-entropy `(1 - p_true)^gamma * CE` and `p_true`."""
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1)
    p = log_p.exp()
    return (1 - p).pow(gamma) * -log_p, p


class CrossEntropyLoss(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target)


class ClassBalancedFocalLoss(nn.Module):
    def __init__(self, counts: Sequence[int], *, beta: float = 0.999, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weights", effective_number_weights(counts, beta))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        focal, _ = _focal(logits, target, self.gamma)
        w = self.weights[target]
        return (w * focal).sum() / w.sum()


class AdaptiveClassBalancedLoss(nn.Module):
    """See the module docstring. `difficulty` [C] starts at `1 - 1/C` (chance) for every class and
    moves by `momentum` toward each training batch's mean `1 - p_true` of the class; the weights
    are `difficulty / mean(difficulty)`. Only training-mode calls update it."""

    def __init__(self, num_classes: int, *, gamma: float = 2.0, momentum: float = 0.9, margin: float = 1.0,
                 boundary_weight: float = 0.5) -> None:
        super().__init__()
        self.gamma, self.momentum, self.margin, self.boundary_weight = gamma, momentum, margin, boundary_weight
        self.register_buffer("difficulty", torch.full((num_classes,), 1 - 1 / num_classes))

    @property
    def weights(self) -> torch.Tensor:
        return self.difficulty / self.difficulty.mean().clamp(min=1e-12)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        focal, p = _focal(logits, target, self.gamma)
        if self.training:
            with torch.no_grad():
                hard = torch.zeros_like(self.difficulty).index_add_(0, target, (1 - p).to(self.difficulty.dtype))
                seen = torch.bincount(target, minlength=len(self.difficulty)).to(self.difficulty.dtype)
                batch = hard / seen.clamp(min=1)
                self.difficulty.copy_(torch.where(seen > 0, self.momentum * self.difficulty
                                                  + (1 - self.momentum) * batch, self.difficulty))
        w = self.weights[target].detach()
        true = logits.float().gather(1, target[:, None]).squeeze(1)
        others = logits.float().scatter(1, target[:, None], float("-inf")).max(dim=1).values
        boundary = F.relu(self.margin - (true - others))
        return (w * (focal + self.boundary_weight * boundary)).sum() / w.sum()


def class_loss(name: str, counts: Sequence[int], *, beta: float = 0.999, gamma: float = 2.0,
               momentum: float = 0.9, margin: float = 1.0, boundary_weight: float = 0.5) -> nn.Module:
    """The loss called `name` (one of `LOSSES`) for classes with training `counts`."""
    if name == "ce":
        return CrossEntropyLoss()
    if name == "cb_focal":
        return ClassBalancedFocalLoss(counts, beta=beta, gamma=gamma)
    if name == "acb":
        return AdaptiveClassBalancedLoss(len(counts), gamma=gamma, momentum=momentum, margin=margin,
                                         boundary_weight=boundary_weight)
    raise ValueError(f"unknown loss {name!r}: one of {list(LOSSES)}")
