"""Attention ops for NumPy arrays: ``scaled_dot_product_attention`` on heads,
``(B, H, T, D)``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .activation import dropout

__all__ = ["scaled_dot_product_attention"]


def scaled_dot_product_attention(
    q: Any,
    k: Any,
    v: Any,
    key_padding_mask: Any | None,
    causal: bool,
    dropout_p: float,
    rng: Any,
) -> Any:
    """``softmax(q @ k^T / sqrt(D)) @ v`` for ``q (B, H, T, D)``, ``k, v (B, H, S, D)``.

    ``key_padding_mask`` (bool ``(B, S)``, True = ignore) and ``causal`` (query
    ``i`` sees keys ``j <= i``) mask scores; a query that sees no key gets zeros,
    as torch's ``scaled_dot_product_attention``. ``dropout_p`` drops attention
    weights with ``rng``."""
    scores = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    masked = _mask(key_padding_mask, causal, q.shape[-2], k.shape[-2])
    if masked is not None:
        scores = np.where(masked, -np.inf, scores).astype(q.dtype)
    top = np.max(scores, axis=-1, keepdims=True, initial=-np.inf)
    e = np.exp(scores - np.where(np.isfinite(top), top, 0))
    total = np.sum(e, axis=-1, keepdims=True)
    weights = e / np.where(total > 0, total, 1)
    if dropout_p > 0.0:

        weights = dropout(weights, dropout_p, rng)
    return (weights @ v).astype(q.dtype)


def _mask(key_padding_mask: Any | None, causal: bool, t: int, s: int) -> Any | None:
    """Bool ``(B|1, 1, T|1, S)``, True where a score is masked out."""
    out = None
    if key_padding_mask is not None:
        out = np.asarray(key_padding_mask, bool)[:, None, None, :]
    if causal:
        upper = np.triu(np.ones((t, s), bool), 1)
        out = upper if out is None else out | upper
    return out

