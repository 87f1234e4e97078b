"""Attention ops for JAX arrays: ``scaled_dot_product_attention`` on heads,
``(B, H, T, D)``."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

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

