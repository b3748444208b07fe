"""The two losses of emoji_align, on embeddings alone (testable without any encoder).

Shapes: `text` [B, D] and `prototypes` [E, D], both L2-normalised; `target` [B, E] non-negative
rows summing to 1 (a comment's emotes weighted by occurrences); `main` [B] the main emote's index;
`own` [B, E] True for every emote the comment carries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["prototype_cross_entropy", "hardest_negative_triplet"]


def prototype_cross_entropy(text: torch.Tensor, prototypes: torch.Tensor, target: torch.Tensor,
                            tau: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of softmax(cosine similarities / tau + bias [E]) against the target distribution."""
    logits = text @ prototypes.T / tau
    if bias is not None:
        logits = logits + bias
    return F.cross_entropy(logits, target)


def hardest_negative_triplet(text: torch.Tensor, prototypes: torch.Tensor, main: torch.Tensor,
                             own: torch.Tensor, *, margin: float) -> torch.Tensor:
    """mean(relu(margin - sim(text, main prototype) + max sim(text, any prototype it does not carry))).

    Gradients flow into `prototypes` through both the positive and the hardest negative, so when
    the prototypes come from the image tower, this loss trains the image encoder too."""
    sims = text @ prototypes.T
    positive = sims.gather(1, main.view(-1, 1)).squeeze(1)
    negative = sims.masked_fill(own, float("-inf")).max(dim=1).values
    has_negative = torch.isfinite(negative)  # a comment carrying every emote has none
    loss = F.relu(margin - positive + negative)
    return torch.where(has_negative, loss, torch.zeros_like(loss)).mean()
