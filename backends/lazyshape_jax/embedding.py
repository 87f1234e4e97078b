"""Embedding ops for JAX arrays: ``embedding``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["embedding"]


def embedding(ids: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of ``weight`` ``(num, dim)`` for integer ``ids`` of any shape:
    ``(*) -> (*, dim)``; the ``padding_idx`` row gets no gradient (as torch)."""
    rows = jnp.take(jnp.asarray(weight), ids, axis=0)
    if padding_idx is None:
        return rows
    pad = (jnp.asarray(ids) == padding_idx)[..., None]
    return jnp.where(pad, jax.lax.stop_gradient(rows), rows)

