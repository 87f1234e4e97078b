"""Pooling ops for torch tensors: ``max_pool``, ``avg_pool``, ``adaptive_avg_pool``.

The pooling layers' native modules (``nn.MaxPool2d``, ...)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from lazyshape.backend import (
    LayerRecord,
)
from lazyshape.layers.pool import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)

from .native import register

__all__ = ["max_pool", "avg_pool", "adaptive_avg_pool"]


_MAX: dict[int, Any] = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


_ADAPTIVE: dict[int, Any] = {
    1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d
}


def max_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> Any:
    """``F.max_pool{n}d`` (n = ``len(kernel_size)``)."""
    fn = _MAX[len(kernel_size)]
    return fn(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)


def avg_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None = None,
) -> Any:
    """``F.avg_pool{n}d`` (``avg_pool1d`` has no ``divisor_override``: it goes
    through ``avg_pool2d`` then)."""
    n = len(kernel_size)
    if n == 1 and divisor_override is None:
        return F.avg_pool1d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
    if n == 1:
        y = F.avg_pool2d(
            x.unsqueeze(-2), (1, *kernel_size), (1, *stride), (0, *padding), ceil_mode,
            count_include_pad, divisor_override,
        )
        return y.squeeze(-2)
    fn = F.avg_pool2d if n == 2 else F.avg_pool3d
    return fn(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def adaptive_avg_pool(x: Any, output_size: tuple[int, ...]) -> Any:
    """``F.adaptive_avg_pool{n}d`` (``output_size``: ints)."""
    return _ADAPTIVE[len(output_size)](x, output_size)


_MAX_MODULES: dict[int, type[nn.Module]] = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


_AVG_MODULES: dict[int, type[nn.Module]] = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


_ADAPTIVE_MODULES: dict[int, type[nn.Module]] = {
    1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d,
}


@register(MaxPool1d, MaxPool2d, MaxPool3d, exact=True)
def _max_pool(rec: LayerRecord, **kw: Any) -> nn.Module:
    return _MAX_MODULES[len(rec.resolved["kernel_size"])](**rec.resolved)


@register(AvgPool1d, AvgPool2d, AvgPool3d, exact=True)
def _avg_pool(rec: LayerRecord, **kw: Any) -> nn.Module:
    return _AVG_MODULES[len(rec.resolved["kernel_size"])](**rec.resolved)


@register(AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, exact=True)
def _adaptive_avg_pool(rec: LayerRecord, **kw: Any) -> nn.Module:
    return _ADAPTIVE_MODULES[len(rec.resolved["output_size"])](**rec.resolved)

