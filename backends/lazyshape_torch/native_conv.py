"""Native torch modules for the conv layers (registered into ``native.NATIVE``):
``nn.Conv1d/2d/3d`` and ``nn.ConvTranspose1d/2d/3d``, sized from the weight spec
(so a model materialized from a checkpoint's shapes gets the same modules) and
initialized by torch itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from lazyshape._specs import ParamSpec
from lazyshape.layers.conv import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
)

from .native import register

_CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE: dict[int, type[nn.Module]] = {
    1: nn.ConvTranspose1d,
    2: nn.ConvTranspose2d,
    3: nn.ConvTranspose3d,
}


@register(Conv1d, Conv2d, Conv3d)
def _conv(layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any) -> nn.Module:
    # weight (out, in/groups, *k)
    out_c, per_group, *kernel = (int(d) for d in specs["weight"].shape)
    return _CONV[len(kernel)](
        per_group * layer.groups,
        out_c,
        tuple(kernel),
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias="bias" in specs,
        padding_mode=layer.padding_mode,
        device=device,
        dtype=dtype,
    )


@register(ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)
def _conv_transpose(
    layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any
) -> nn.Module:
    # weight (in, out/groups, *k)
    in_c, per_group, *kernel = (int(d) for d in specs["weight"].shape)
    return _CONV_TRANSPOSE[len(kernel)](
        in_c,
        per_group * layer.groups,
        tuple(kernel),
        stride=layer.stride,
        padding=layer.padding,
        output_padding=layer.output_padding,
        groups=layer.groups,
        bias="bias" in specs,
        dilation=layer.dilation,
        device=device,
        dtype=dtype,
    )
