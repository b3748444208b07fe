"""A head's post-processing in numpy, shared by export (parity, int8 quality) and the scorers.

`values(head, raw)` turns a model's raw output into what the head means: softmax probabilities
(`ranking`), sigmoid intensities in [0, 1] (`multilabel`, EQN-quantised when `head.quantize`),
the values themselves (`regression`). `quantize_intensity` is the EQN rule (it lives in
`training.result`, which training uses too) and `energy_level` its 0-10 reading. `top_k` and
`top_k_agreement` compare two models' rankings, ties forgiven.
"""

from __future__ import annotations

import numpy as np

from emopulse.training.result import Head, quantize_intensity

__all__ = ["energy_level", "quantize_intensity", "quantizes", "ranks", "top_k", "top_k_agreement", "values"]



def energy_level(values: np.ndarray | float) -> np.ndarray:
    """The EQN energy level in [0, 10]: 10 × the quantised intensity, at most one decimal (4.6,
    not 4.6000000000000005). NaN stays NaN."""
    return np.round(10.0 * quantize_intensity(values), 1)


def quantizes(head: Head) -> bool:
    """Does `values(head, ...)` quantise (a multilabel head with `quantize=True`)?"""
    return head.kind == "multilabel" and head.quantize


def values(head: Head, raw: np.ndarray, *, quantized: bool = True) -> np.ndarray:
    """float64 [N, labels]: softmax over labels (ranking), sigmoid (multilabel; EQN-quantised
    when `head.quantize`, unless `quantized=False`), raw (regression)."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[:, None]
    raw = raw.reshape(len(raw), -1)
    if head.kind == "ranking":
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if head.kind == "multilabel":
        intensity = 0.5 * (1.0 + np.tanh(0.5 * raw))  # sigmoid without overflow
        return quantize_intensity(intensity) if quantized and head.quantize else intensity
    return raw


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """int64 [N, min(k, labels)]: label indices by score, best first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)


def ranks(scores: np.ndarray) -> np.ndarray:
    """int32 [N, labels]: each label's rank by score, 1 = highest (ties: lower index first)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out = np.empty_like(order, dtype=np.int32)
    np.put_along_axis(out, order, np.arange(1, scores.shape[1] + 1, dtype=np.int32)[None, :].repeat(len(scores), 0),
                      axis=1)
    return out


def top_k_agreement(reference: np.ndarray, other: np.ndarray, k: int, *, tie_tol: float = 0.0,
                    ordered: bool = True) -> np.ndarray:
    """bool [N]: does `other` pick the same top-k labels as `reference` (in the same order, or
    `ordered=False` as a set)?

    Labels are compared by `reference`'s scores: a different label counts only where `reference`
    separates the two by more than `tie_tol` (labels within `tie_tol` are a tie, either is right)."""
    want, got = top_k(reference, k), top_k(other, k)
    a = np.take_along_axis(reference, want, axis=1)
    b = np.take_along_axis(reference, got, axis=1)
    if not ordered:
        a, b = np.sort(a, axis=1), np.sort(b, axis=1)
    return (np.abs(a - b) <= tie_tol).all(axis=1)
