"""Linear ops for JAX arrays: ``linear``."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

__all__ = ["linear"]


def linear(x: Any, weight: Any, bias: Any | None) -> Any:
    """``x @ weight.T + bias``, weight of shape ``(out, in)``."""
    y = jnp.matmul(x, weight.T)
    return y if bias is None else y + bias

