"""Embedding ops for JAX arrays: ``embedding``; JAX's step for GPT-2's
position embedding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from lazyshape.backend import Context, Layer, Step
from lazyshape.zoo.gpt import PositionEmbedding

from .native import register
from .shapes import is_concrete

__all__ = ["embedding"]


def embedding(ids: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of ``weight`` ``(num, dim)`` for integer ``ids`` of any shape:
    ``(*) -> (*, dim)``; the ``padding_idx`` row gets no gradient (as torch)."""
    rows = jnp.take(jnp.asarray(weight), ids, axis=0)
    if padding_idx is None:
        return rows
    pad = (jnp.asarray(ids) == padding_idx)[..., None]
    return jnp.where(pad, jax.lax.stop_gradient(rows), rows)


@register(PositionEmbedding)
def _position_embedding(layer: Layer, params: Mapping[str, Any], ctx: Context) -> Step:
    """GPT-2's learned positions, ``x (B, T, E) + weight[:T]``, also for a
    symbolic ``T`` (``jax.export``): a slice would clamp it to ``min(T,
    max_len)``, which does not broadcast against ``x``, unless ``T <= max_len``
    is a declared constraint; the gather of rows ``arange(T)`` has exactly
    ``T`` rows (an exported call with ``T > max_len``, which the shape rule
    forbids, reads NaN rows)."""
    weight = params["weight"]

    def step(x: Any) -> Any:
        t = x.shape[1]
        return x + (weight[:t] if is_concrete((t,)) else jnp.take(weight, jnp.arange(t), axis=0))

    return step
