"""trend: from 60 days of a category's posts, its share of posts two months on, and its trend class.

Built bottom-up, every input a tensor the `WindowPreprocessor` makes (so the ONNX graph takes
the window tensors and nothing else):

* `numbers` [B, days, 6]: per day log1p of the category's posts, likes, collects, comments and of
  all posts, and the day's share of all posts, standardised with training-period statistics;
* `text` [B, days, text_dim] and `text_mask` [B, days]: the mean e5 vector of the day's posts in
  the category (0 where a day has none); `image`, `image_mask` the same for EfficientNet-Lite0;
* `summary` [B, 9]: figures of the whole window free of the platform's volume
  (`WindowPreprocessor.summary`): shares over the last 30, all, 7 and 14 days, the daily share's
  slope and change, engagement per post (raw; the shares are taken as log(share + eps), then
  everything is batch-normalised).

`DayFusion`: text and image vectors projected to `width`; each modality's days attend to the
other's (multi-head cross-attention over the window's days, a day without the other modality
masked, a window without it at all adding nothing), then the two are summed where present and
the numbers' MLP (to the same width) is put beside them, as in the seed. A GRU or LSTM (batch
first) reads the fused days oldest first; its last state, with the window's summary, feeds two
heads: `share` = (share_30d + eps) * exp(s * r) - eps (r learned: a ratio to persistence, so an
untrained model starts at persistence, clamped at 0; s, `ratio_scale`, how much of it to apply,
is chosen on validation windows after training: 1 by default, 0 is persistence itself) and
`trend_logits` over (down, flat, up).

`use_numbers`, `use_text`, `use_images` switch inputs off (the ablation, and a modality the
training data do not hold: nothing is computed for it, and the graph still takes its input);
without numbers the summary is not read either, and the share starts from a learned constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["NUMBERS", "RNNS", "TREND_LABELS", "DayFusion", "TrendConfig", "TrendModel", "trend_loss"]

NUMBERS = ("log_posts", "log_likes", "log_collects", "log_comments", "log_all_posts", "share")
TREND_LABELS = ("down", "flat", "up")  # label_trend -1, 0, 1
RNNS = ("lstm", "gru")


@dataclass
class TrendConfig:
    numbers_dim: int = len(NUMBERS)
    text_dim: int = 384
    image_dim: int = 1280
    width: int = 64  # each day's modalities and numbers are projected to this
    attention_heads: int = 4
    rnn: str = "lstm"
    hidden: int = 64
    rnn_layers: int = 1
    dropout: float = 0.1
    share_eps: float = 1e-3  # shares are compared as log(share + eps)
    summary_dim: int = 9
    summary_shares: int = 4  # the summary's first columns are shares (the first: persistence)
    use_numbers: bool = True
    day_volumes: bool = True  # False: of the day's numbers only the share is read (levels change as volume grows)
    use_text: bool = True
    use_images: bool = True

    def __post_init__(self) -> None:
        if self.rnn not in RNNS:
            raise ValueError(f"rnn must be one of {RNNS}, not {self.rnn!r}")
        if self.width % self.attention_heads:
            raise ValueError(f"width {self.width} must be a multiple of attention_heads {self.attention_heads}")
        if min(self.numbers_dim, self.text_dim, self.image_dim, self.width, self.hidden, self.rnn_layers) < 1:
            raise ValueError(f"every size must be >= 1 (got {self})")
        if not (self.use_numbers or self.use_text or self.use_images):
            raise ValueError("a trend model needs at least one of numbers, texts and images")


class CrossAttention(nn.Module):
    """Queries' days attend to the keys' days: forward(q [B, D, W], k [B, D, W], key_mask [B, D])
    -> [B, D, W]; zeros for a window whose keys are all masked."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))

    def forward(self, q: torch.Tensor, k: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, d, w = q.shape

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)  # [B, H, D, hd]

        scores = split(self.q(q)) @ split(self.k(k)).transpose(-1, -2) / self.head_dim ** 0.5
        scores = scores.masked_fill(key_mask[:, None, None, :] < 0.5, -1e4)  # finite: no NaN when all masked
        out = (scores.softmax(-1) @ split(self.v(k))).transpose(1, 2).reshape(b, d, w)
        any_key = (key_mask.sum(1) > 0).to(q.dtype)[:, None, None]
        return self.out(out) * any_key


class DayFusion(nn.Module):
    """forward(numbers, text, text_mask, image, image_mask) -> days [B, D, 2 * width]."""

    def __init__(self, cfg: TrendConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, w))
        self.image_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, w))
        self.text_to_image = CrossAttention(w, cfg.attention_heads)
        self.image_to_text = CrossAttention(w, cfg.attention_heads)
        self.norm = nn.LayerNorm(w)
        self.numbers = nn.Sequential(nn.Linear(cfg.numbers_dim, w), nn.GELU(), nn.Linear(w, w))

    def forward(self, numbers: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor,
                image_mask: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, d = numbers.shape[:2]
        # an input switched off is still read (a zero times its first value), so the graph keeps it
        unused = 0.0 * (text[:, :1, 0] + text_mask[:, :1] + image[:, :1, 0] + image_mask[:, :1] + numbers[:, :1, 0])
        zeros = numbers.new_zeros(b, d, cfg.width) + unused[..., None]
        tm, im = text_mask if cfg.use_text else None, image_mask if cfg.use_images else None
        t = self.text_proj(text) if tm is not None else None
        i = self.image_proj(image) if im is not None else None
        if t is not None and i is not None:
            t, i = t + self.text_to_image(t, i, im), i + self.image_to_text(i, t, tm)
        media, present = zeros, numbers.new_zeros(b, d)
        for x, m in ((t, tm), (i, im)):
            if x is not None:
                media, present = media + x * m[..., None], present + m
        media = self.norm(media / present.clamp(min=1.0)[..., None]) * present.clamp(max=1.0)[..., None]
        if not cfg.day_volumes:  # the share alone (the last number)
            numbers = torch.cat([torch.zeros_like(numbers[..., :-1]), numbers[..., -1:]], dim=-1)
        nums = self.numbers(numbers) if cfg.use_numbers else zeros
        return torch.cat([nums, media], dim=-1)


class TrendModel(nn.Module):
    """forward(numbers, text, text_mask, image, image_mask, summary) -> (trend_logits [B, 3], share [B, 1])."""

    def __init__(self, cfg: TrendConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.fusion = DayFusion(cfg)
        rnn = nn.LSTM if cfg.rnn == "lstm" else nn.GRU
        self.rnn = rnn(2 * cfg.width, cfg.hidden, num_layers=cfg.rnn_layers, batch_first=True,
                       dropout=cfg.dropout if cfg.rnn_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.summary_norm = nn.BatchNorm1d(cfg.summary_dim)
        self.body = nn.Sequential(nn.Linear(cfg.hidden + cfg.summary_dim, cfg.hidden), nn.GELU())
        self.ratio = nn.Linear(cfg.hidden, 1)
        self.trend = nn.Linear(cfg.hidden, len(TREND_LABELS))
        nn.init.zeros_(self.ratio.weight)
        nn.init.zeros_(self.ratio.bias)
        self.start_log = nn.Parameter(torch.tensor(-4.0))  # without numbers: the share starts from this
        # how much of the learned ratio to persistence is applied (chosen on validation after training)
        self.register_buffer("ratio_scale", torch.tensor(1.0))

    def forward(self, numbers: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor,
                image_mask: torch.Tensor, summary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, eps = self.cfg, self.cfg.share_eps
        days = self.fusion(numbers, text, text_mask, image, image_mask)
        seq, _ = self.rnn(days)
        last = self.drop(seq[:, -1])
        k = cfg.summary_shares
        logged = torch.cat([torch.log(summary[:, :k].clamp(min=0.0) + eps), summary[:, k:]], dim=-1)
        if cfg.use_numbers:
            start, context = logged[:, :1], self.summary_norm(logged)
        else:
            start, context = self.start_log.expand(summary.shape[0], 1), torch.zeros_like(logged)
        h = self.body(torch.cat([last, context], dim=-1))
        share = (torch.exp(start + self.ratio_scale * self.ratio(h)) - eps).clamp(min=0.0)
        return self.trend(h), share


def trend_loss(model: TrendModel, trend_logits: torch.Tensor, share: torch.Tensor, y_share: torch.Tensor,
               y_trend: torch.Tensor, *, trend_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Squared error of log(share + eps) (a ratio error: small and large categories count alike)
    plus `trend_weight` x the cross-entropy of the trend class (y_trend 0..2)."""
    eps = model.cfg.share_eps
    share_loss = (torch.log(share[:, 0] + eps) - torch.log(y_share.clamp(min=0.0) + eps)).pow(2).mean()
    trend = nn.functional.cross_entropy(trend_logits, y_trend)
    return share_loss + trend_weight * trend, {"share_loss": float(share_loss.detach()), "trend_loss": float(trend.detach())}
