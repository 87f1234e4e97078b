"""Attention ops for NumPy arrays: ``scaled_dot_product_attention`` and
``dot_product_attention`` on heads, ``(B, H, T, D)``; ``rotary_embedding``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .activation import dropout

__all__ = ["scaled_dot_product_attention", "dot_product_attention", "rotary_embedding"]


def _weights(q: Any, k: Any, scale: float, masked: Any) -> Any:
    """``softmax(q @ k^T * scale)`` over the keys, ``masked`` scores excluded; a
    query that sees no key gets zero weights (as torch's)."""
    scores = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    if masked is not None:
        scores = np.where(masked, -np.inf, scores).astype(q.dtype)
    top = np.max(scores, axis=-1, keepdims=True, initial=-np.inf)
    e = np.exp(scores - np.where(np.isfinite(top), top, 0))
    total = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(total > 0, total, 1)


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
    weights = _weights(q, k, 1.0 / math.sqrt(q.shape[-1]),
                       _mask(key_padding_mask, causal, q.shape[-2], k.shape[-2]))
    if dropout_p > 0.0:

        weights = dropout(weights, dropout_p, rng)
    return (weights @ v).astype(q.dtype)


def dot_product_attention(
    q: Any, k: Any, v: Any, *, is_causal: bool = False, scale: float | None = None
) -> Any:
    """``softmax(q @ k^T * scale) @ v`` for ``q (B, H, T, D)``, ``k, v (B, Hkv, S,
    D)``, ``Hkv`` dividing ``H``: each key / value head repeated for its group of
    ``H // Hkv`` query heads; ``scale`` default ``1 / sqrt(D)``; ``is_causal``:
    query ``i`` sees keys ``j <= i``."""
    heads, kv_heads = q.shape[1], k.shape[1]
    if kv_heads != heads:
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    weights = _weights(q, k, scale, _mask(None, is_causal, q.shape[-2], k.shape[-2]))
    return (weights @ v).astype(q.dtype)


def rotary_embedding(x: Any, theta: float) -> Any:
    """Llama's rotary position embedding of ``x (..., T, D)`` (``D`` even):
    ``x * cos + rotate_half(x) * sin``, angles ``t * inv_freq`` for positions
    ``t`` along dim -2, ``inv_freq = 1 / theta ** (arange(0, D, 2) / D)``; cos and
    sin in float32, cast to ``x``'s dtype."""
    t, d = x.shape[-2], x.shape[-1]
    exponent = np.arange(0, d, 2, dtype=np.float32) / np.float32(d)
    inv_freq = np.float32(1.0) / (np.float32(theta) ** exponent)
    freqs = np.arange(t, dtype=np.float32)[:, None] * inv_freq[None, :]
    angles = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
    half = d // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def _mask(key_padding_mask: Any | None, causal: bool, t: int, s: int) -> Any | None:
    """Bool ``(B|1, 1, T|1, S)``, True where a score is masked out."""
    out = None
    if key_padding_mask is not None:
        out = np.asarray(key_padding_mask, bool)[:, None, None, :]
    if causal:
        upper = np.triu(np.ones((t, s), bool), 1)
        out = upper if out is None else out | upper
    return out

