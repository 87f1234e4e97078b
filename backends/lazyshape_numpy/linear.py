"""Linear ops for NumPy arrays: ``linear``; and the `Linear` layer's step (a
weight transposed once, a following `ReLU` fused into it)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

import lazyshape as ls
from lazyshape.backend import Context, Step

from .activation import relu
from .native import register

__all__ = ["linear"]


def linear(x: Any, weight: Any, bias: Any | None) -> Any:
    """``x @ weight.T + bias``."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _affine(w_t: Any, b: Any, x: Any) -> Any:
    return x @ w_t + b


def _matmul(w_t: Any, x: Any) -> Any:
    return x @ w_t


def _affine_relu(w_t: Any, b: Any, x: Any) -> Any:
    return np.maximum(x @ w_t + b, 0)  # relu(_affine(w_t, b, x)), one call fewer


@register(ls.Linear)
def _bind_linear(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    w_t = params["weight"].T
    b = params.get("bias")
    if b is None:
        return functools.partial(_matmul, w_t)
    return functools.partial(_affine, w_t, b)


def fuse(chain: list[Step]) -> list[Step]:
    """A chain of steps with each ``Linear`` step followed by a ``ReLU`` step
    made one step (the same operations, one Python call fewer)."""
    out: list[Step] = []
    for step in chain:
        prev = out[-1] if out else None
        if step is relu and isinstance(prev, functools.partial) and prev.func is _affine:
            out[-1] = functools.partial(_affine_relu, *prev.args)
        else:
            out.append(step)
    return out
