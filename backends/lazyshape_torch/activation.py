"""Activation ops for torch tensors: the elementwise NN ops the array API lacks
(``relu``, ``gelu``, ``softmax``, ``dropout``, ...).

The activations' native modules (``nn.ReLU``, ...) are registered here."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import lazyshape as ls

from .native import register_stateless

__all__ = ["relu", "gelu", "sigmoid", "silu", "leaky_relu", "softmax", "dropout"]


def relu(x: Any) -> Any:
    """``max(x, 0)``."""
    return F.relu(x)


def gelu(x: Any, approximate: str) -> Any:
    """GELU, exact (erf) or tanh-approximated."""
    return F.gelu(x, approximate=approximate)


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))``."""
    return torch.sigmoid(x)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``."""
    return F.silu(x)


def leaky_relu(x: Any, negative_slope: float) -> Any:
    """``x if x >= 0 else negative_slope * x``."""
    return F.leaky_relu(x, negative_slope)


def softmax(x: Any, axis: int) -> Any:
    """Softmax over ``axis``."""
    return torch.softmax(x, dim=axis)


def dropout(x: Any, p: float, rng: Any) -> Any:
    """Inverted dropout; ``rng`` is a ``torch.Generator``, or None for torch's
    global RNG (exactly ``F.dropout`` then)."""
    if rng is None:
        return F.dropout(x, p, training=True)
    if p >= 1.0:
        return torch.zeros_like(x)
    keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=rng)
    return x * keep / (1.0 - p)


for _tp, _cls in [
    (ls.ReLU, nn.ReLU),
    (ls.Tanh, nn.Tanh),
    (ls.Sigmoid, nn.Sigmoid),
    (ls.SiLU, nn.SiLU),
    (ls.Identity, nn.Identity),
    (ls.GELU, nn.GELU),
    (ls.LeakyReLU, nn.LeakyReLU),
    (ls.Softmax, nn.Softmax),
    (ls.Dropout, nn.Dropout),
]:
    register_stateless(_tp, _cls)
