"""Activation ops for NumPy arrays: the elementwise NN ops the array API lacks
(``relu``, ``gelu``, ``softmax``, ``dropout``, ...)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

import lazyshape as ls
from lazyshape.backend import Binder, Context, Step, passthrough

from .native import register

__all__ = ["relu", "gelu", "sigmoid", "silu", "leaky_relu", "softmax", "dropout"]


try:  # SciPy's erf is vectorized; fall back to math.erf elementwise
    from scipy.special import erf as _erf  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - SciPy comes with JAX
    _erf = np.vectorize(math.erf, otypes=[np.float64])


def relu(x: Any) -> Any:
    """``max(x, 0)``."""
    return np.maximum(x, 0)


def gelu(x: Any, approximate: str) -> Any:
    """GELU, exact (erf) or tanh-approximated."""
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return (0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x**3)))).astype(x.dtype)
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))``, without overflow warnings for large ``|x|``."""
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(x.dtype)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``."""
    return x * sigmoid(x)


def leaky_relu(x: Any, negative_slope: float) -> Any:
    """``x if x >= 0 else negative_slope * x``."""
    return np.where(x >= 0, x, x * x.dtype.type(negative_slope))


def softmax(x: Any, axis: int) -> Any:
    """Softmax over ``axis`` (max-subtracted); a 0-d ``x`` counts as 1-d (``axis``
    0 or -1), as in torch."""
    if np.ndim(x) == 0:
        return softmax(np.reshape(x, (1,)), axis).reshape(())
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def dropout(x: Any, p: float, rng: Any) -> Any:
    """Inverted dropout with a NumPy ``Generator``."""
    if p >= 1.0:
        return np.zeros_like(x)
    keep = rng.random(x.shape) >= p
    return np.where(keep, x / x.dtype.type(1.0 - p), x.dtype.type(0))



# -- the activations' steps (see native.py) -----------------------------------------


def _fixed(fn: Step) -> Binder:
    return lambda layer, params, ctx: fn


_FIXED: list[tuple[type[ls.Layer], Step]] = [
    (ls.ReLU, relu), (ls.Tanh, np.tanh), (ls.Sigmoid, sigmoid), (ls.SiLU, silu),
    (ls.Identity, passthrough),
]
for _tp, _step in _FIXED:
    register(_tp)(_fixed(_step))


@register(ls.GELU)
def _bind_gelu(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return functools.partial(gelu, approximate=layer.approximate)


@register(ls.LeakyReLU)
def _bind_leaky_relu(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return functools.partial(leaky_relu, negative_slope=layer.negative_slope)


@register(ls.Softmax)
def _bind_softmax(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return functools.partial(softmax, axis=layer.dim)


@register(ls.Dropout)
def _bind_dropout(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step | None:
    return passthrough if not ctx.training else None
