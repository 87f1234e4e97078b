"""Native torch modules for the pooling layers and ``Embedding`` (registered
into native.NATIVE)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from lazyshape._specs import ParamSpec
from lazyshape.layers.embedding import Embedding
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

_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG = {2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


@register(MaxPool1d, MaxPool2d, MaxPool3d)
def _max_pool(layer: Any, specs: Mapping[str, ParamSpec], **kw: Any) -> nn.Module:
    return _MAX[layer.n](
        layer.kernel_size, layer.stride, layer.padding, layer.dilation, ceil_mode=layer.ceil_mode
    )


@register(AvgPool1d, AvgPool2d, AvgPool3d)
def _avg_pool(layer: Any, specs: Mapping[str, ParamSpec], **kw: Any) -> nn.Module:
    args = (layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
            layer.count_include_pad)
    if layer.n == 1:
        return nn.AvgPool1d(*args)
    return _AVG[layer.n](*args, divisor_override=layer.divisor_override)


@register(AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d)
def _adaptive_avg_pool(layer: Any, specs: Mapping[str, ParamSpec], **kw: Any) -> nn.Module:
    return _ADAPTIVE[layer.n](layer.output_size)


@register(Embedding)
def _embedding(
    layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any
) -> nn.Module:
    num_embeddings, embedding_dim = specs["weight"].shape
    return nn.Embedding(
        int(num_embeddings), int(embedding_dim), padding_idx=layer.padding_idx,
        dtype=dtype, device=device,
    )
