"""Activation ops for torch tensors: the elementwise NN ops the array API lacks
(``relu``, ``gelu``, ``softmax``, ``dropout``, ...).

The activations' native modules (``nn.ReLU``, ...) are registered here, and
`StochasticDepth`, ``DropPath``'s module (torchvision's, which torch.nn lacks)."""

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


class StochasticDepth(nn.Module):
    """``DropPath``'s native module: ``torchvision.ops.StochasticDepth``'s
    computation (torchvision is not a dependency). In training, mode ``"row"``
    keeps each sample with probability ``1 - p``, scaled by ``1 / (1 - p)``;
    ``"batch"`` keeps or drops the whole batch; identity in evaluation or when
    ``p == 0``. Draws from torch's global RNG, as ``nn.Dropout``."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return input
        survival_rate = 1.0 - self.p
        # one noise value per sample ("row") or for the whole batch
        size = [input.shape[0]] + [1] * (input.ndim - 1) if self.mode == "row" else [1] * input.ndim
        noise = torch.empty(size, dtype=input.dtype, device=input.device)
        noise = noise.bernoulli_(survival_rate)
        if survival_rate > 0.0:
            noise.div_(survival_rate)
        return input * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


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
    (ls.ReLU6, nn.ReLU6),
    (ls.Hardswish, nn.Hardswish),
    (ls.Hardsigmoid, nn.Hardsigmoid),
    (ls.ELU, nn.ELU),
    (ls.Mish, nn.Mish),
    (ls.Softplus, nn.Softplus),
    (ls.DropPath, StochasticDepth),
]:
    register_stateless(_tp, _cls)
