"""NN operations for torch tensors (the backend op protocol; same names and
signatures in every backend's ``ops`` module)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["relu", "gelu", "sigmoid", "silu", "leaky_relu", "softmax", "dropout", "linear"]


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


def linear(x: Any, weight: Any, bias: Any | None) -> Any:
    """``x @ weight.T + bias``."""
    return F.linear(x, weight, bias)


# The layer families' ops live in their own modules (same names in every backend).
from .ops_conv import *  # noqa: E402, F403
from .ops_norm import *  # noqa: E402, F403
from .ops_pool import *  # noqa: E402, F403
from .ops_seq import *  # noqa: E402, F403
