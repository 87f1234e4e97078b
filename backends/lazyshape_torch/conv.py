"""Convolution ops for torch tensors: ``conv``, ``conv_transpose``, ``pad``
(PyTorch's layouts).

``nn.Conv{{1,2,3}}d`` and ``nn.ConvTranspose{{1,2,3}}d`` as the native modules."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from lazyshape.backend import (
    LayerRecord,
)
from lazyshape.layers.conv import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
)

from .native import register, sizes

__all__ = ["pad", "conv", "conv_transpose"]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _flat(pads: tuple[tuple[int, int], ...]) -> list[int]:
    """``(lo, hi)`` pairs, first spatial dim first -> ``F.pad``'s flat list, last dim first."""
    return [v for lo, hi in reversed(pads) for v in (lo, hi)]


def pad(x: Any, pads: tuple[tuple[int, int], ...], mode: str) -> Any:
    """Pad the trailing ``len(pads)`` dims by ``(lo, hi)`` each; ``mode`` is
    ``"constant"`` (zeros), ``"reflect"``, ``"replicate"`` or ``"circular"``
    (``F.pad``)."""
    if mode not in _PAD_MODES:
        raise ValueError(f"pad mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    return F.pad(x, _flat(pads), mode=mode)


def conv(
    x: Any,
    weight: Any,
    bias: Any | None,
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Any:
    """N-d convolution, ``n = weight.ndim - 2`` (``F.conv{n}d``): input ``(N, C,
    *d)``, weight ``(out, C/groups, *k)``, explicit zero padding ``(lo, hi)`` per
    spatial dim; output ``(N, out, *d_out)``."""
    n = weight.dim() - 2
    if all(lo == hi >= 0 for lo, hi in padding):
        sym = tuple(lo for lo, _ in padding)
    else:  # asymmetric (or cropping): pad explicitly, as torch does for 'same'
        x = F.pad(x, _flat(padding))
        sym = (0,) * n
    return _CONV[n](x, weight, bias, stride, sym, dilation, groups)


def conv_transpose(
    x: Any,
    weight: Any,
    bias: Any | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Any:
    """N-d transposed convolution (``F.conv_transpose{n}d``): input ``(N, C, *d)``,
    weight ``(C, out/groups, *k)``; output ``(N, out, *d_out)`` with ``d_out = (d -
    1)*s - 2p + dil*(k-1) + output_padding + 1``."""
    return _CONV_TRANSPOSE[weight.dim() - 2](
        x,
        weight,
        bias,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    )


_CONV_MODULES: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


_CONV_TRANSPOSE_MODULES: dict[int, type[nn.Module]] = {
    1: nn.ConvTranspose1d,
    2: nn.ConvTranspose2d,
    3: nn.ConvTranspose3d,
}


@register(Conv1d, Conv2d, Conv3d)
def _conv(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    if sizes(rec, "in_channels") is None:
        return None
    hp = rec.resolved
    return _CONV_MODULES[len(hp["kernel_size"])](**hp, device=device, dtype=dtype)


@register(ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)
def _conv_transpose(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    if sizes(rec, "in_channels") is None:
        return None
    return _CONV_TRANSPOSE_MODULES[len(rec.resolved["kernel_size"])](
        **rec.resolved, device=device, dtype=dtype
    )

