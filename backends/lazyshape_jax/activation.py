"""Activation ops for JAX arrays: the elementwise NN ops the array API lacks
(``relu``, ``gelu``, ``softmax``, ``dropout``, ...)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["relu", "gelu", "sigmoid", "silu", "leaky_relu", "softmax", "dropout"]


def relu(x: Any) -> Any:
    """``max(x, 0)``."""
    return jax.nn.relu(x)


def gelu(x: Any, approximate: str) -> Any:
    """GELU, exact (erf, as ``torch.nn.GELU()``) or tanh-approximated."""
    return jax.nn.gelu(x, approximate=approximate == "tanh")


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))``."""
    return jax.nn.sigmoid(x)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``."""
    return jax.nn.silu(x)


def leaky_relu(x: Any, negative_slope: float) -> Any:
    """``x if x >= 0 else negative_slope * x``."""
    return jax.nn.leaky_relu(x, negative_slope)


def softmax(x: Any, axis: int) -> Any:
    """Softmax over ``axis`` (max-subtracted); a 0-d ``x`` counts as 1-d (``axis``
    0 or -1), as in torch."""
    if jnp.ndim(x) == 0:
        return jnp.reshape(jax.nn.softmax(jnp.reshape(x, (1,)), axis=axis), ())
    return jax.nn.softmax(x, axis=axis)


def dropout(x: Any, p: float, rng: Any) -> Any:
    """Inverted dropout; ``rng`` is a PRNG key (``jax.random.key``)."""
    if rng is None:
        raise ValueError(
            "dropout in training needs a PRNG key: m.apply(variables, x, training=True, key=key)"
        )
    if p >= 1.0:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(rng, 1.0 - p, jnp.shape(x))
    return jnp.where(keep, x / jnp.asarray(1.0 - p, x.dtype), jnp.zeros((), x.dtype))

