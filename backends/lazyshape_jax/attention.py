"""Attention ops for JAX arrays: ``scaled_dot_product_attention`` and
``dot_product_attention`` (``jax.nn.dot_product_attention``) on heads, ``(B, H,
T, D)``; ``rotary_embedding``."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from .activation import dropout

__all__ = ["scaled_dot_product_attention", "dot_product_attention", "rotary_embedding"]


def scaled_dot_product_attention(
    q: Any,
    k: Any,
    v: Any,
    key_padding_mask: Any | None,
    causal: bool,
    dropout_p: float,
    rng: Any,
) -> Any:
    """``softmax(q @ k^T / sqrt(D)) @ v`` for ``q (B, H, T, D)``, ``k, v (B, H, S, D)``;
    ``key_padding_mask`` (bool ``(B, S)``) True = ignore; a query that sees no
    key gets zeros. ``rng`` is the PRNG key of the attention-weight dropout."""
    scale = jnp.asarray(1.0 / math.sqrt(q.shape[-1]), q.dtype)
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2)) * scale
    masked = None
    if key_padding_mask is not None:
        masked = key_padding_mask[:, None, None, :]
    if causal:
        upper = jnp.triu(jnp.ones((q.shape[-2], k.shape[-2]), bool), 1)
        masked = upper if masked is None else masked | upper
    if masked is not None:
        scores = jnp.where(masked, jnp.asarray(-jnp.inf, q.dtype), scores)
    top = jnp.max(scores, axis=-1, keepdims=True, initial=-jnp.inf)
    e = jnp.exp(scores - jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0)))
    total = jnp.sum(e, axis=-1, keepdims=True)
    weights = e / jnp.where(total > 0, total, 1)
    if dropout_p > 0.0:

        weights = dropout(weights, dropout_p, rng)
    return jnp.matmul(weights, v)


def dot_product_attention(
    q: Any, k: Any, v: Any, *, is_causal: bool = False, scale: float | None = None
) -> Any:
    """``softmax(q @ k^T * scale) @ v`` for ``q (B, H, T, D)``, ``k, v (B, Hkv, S,
    D)``, ``Hkv`` dividing ``H`` (grouped-query), by ``jax.nn.dot_product_attention``
    (which takes ``(B, T, H, D)``); ``scale`` default ``1 / sqrt(D)``;
    ``is_causal``: query ``i`` sees keys ``j <= i``."""
    out = jax.nn.dot_product_attention(
        jnp.swapaxes(q, 1, 2), jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2),
        scale=scale, is_causal=is_causal,
    )
    return jnp.swapaxes(out, 1, 2)


def rotary_embedding(x: Any, theta: float) -> Any:
    """Llama's rotary position embedding of ``x (..., T, D)`` (``D`` even):
    ``x * cos + rotate_half(x) * sin``, angles ``t * inv_freq`` for positions
    ``t`` along dim -2, ``inv_freq = 1 / theta ** (arange(0, D, 2) / D)``; cos and
    sin in float32, cast to ``x``'s dtype."""
    t, d = x.shape[-2], x.shape[-1]
    exponent = jnp.arange(0, d, 2, dtype=jnp.float32) / jnp.float32(d)
    inv_freq = 1.0 / (jnp.float32(theta) ** exponent)
    freqs = jnp.arange(t, dtype=jnp.float32)[:, None] * inv_freq[None, :]
    angles = jnp.concatenate([freqs, freqs], axis=-1)
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    half = d // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin
