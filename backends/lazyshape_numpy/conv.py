"""Convolution ops for NumPy arrays: ``conv``, ``conv_transpose``, ``pad``
(PyTorch's layouts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["pad", "conv", "conv_transpose"]


# torch's F.pad modes -> numpy.pad's
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_or_crop(x: Any, pads: Any) -> Any:
    """Zero-pad the trailing dims by ``(lo, hi)`` pairs; negative values crop."""
    lead = x.ndim - len(pads)
    crop = tuple(slice(max(-lo, 0), x.shape[lead + i] - max(-hi, 0))
                 for i, (lo, hi) in enumerate(pads))
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        x = x[(slice(None),) * lead + crop]
    widths = [(0, 0)] * lead + [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    if any(w != (0, 0) for w in widths):
        x = np.pad(x, widths)
    return x


def pad(x: Any, pads: tuple[tuple[int, int], ...], mode: str) -> Any:
    """Pad the trailing ``len(pads)`` dims by ``(lo, hi)`` each; ``mode`` is
    ``"constant"`` (zeros), ``"reflect"``, ``"replicate"`` or ``"circular"``
    (torch's ``F.pad`` semantics)."""
    if mode not in _PAD_MODES:
        raise ValueError(f"pad mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    widths = [(0, 0)] * (x.ndim - len(pads)) + [(lo, hi) for lo, hi in pads]
    return np.pad(x, widths, mode=_PAD_MODES[mode])  # type: ignore[call-overload]


def conv(
    x: Any,
    weight: Any,
    bias: Any | None,
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Any:
    """N-d convolution (cross-correlation, as torch), ``n = weight.ndim - 2``:
    input ``(N, C, *d)``, weight ``(out, C/groups, *k)``, explicit zero padding
    ``(lo, hi)`` per spatial dim; output ``(N, out, *d_out)``."""
    n = weight.ndim - 2
    x = _pad_or_crop(x, padding)
    batch, out_c, per_group = x.shape[0], weight.shape[0], weight.shape[1]
    kernel = weight.shape[2:]
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True))
    win = sliding_window_view(x, extent, axis=tuple(range(2, n + 2)))
    # (N, C, *positions, *extent) -> every stride-th position, every dilation-th tap
    win = win[(slice(None), slice(None))
              + tuple(slice(None, None, s) for s in stride)
              + tuple(slice(None, None, d) for d in dilation)]
    spatial = win.shape[2 : n + 2]
    # im2col: (groups, N * positions, C/groups * prod(k))
    win = win.reshape(batch, groups, per_group, *spatial, *kernel)
    order = (1, 0, *range(3, n + 3), 2, *range(n + 3, 2 * n + 3))
    cols = win.transpose(order).reshape(
        groups, batch * math.prod(spatial), per_group * math.prod(kernel)
    )
    w = weight.reshape(groups, out_c // groups, per_group * math.prod(kernel))
    y = np.matmul(cols, w.transpose(0, 2, 1))  # (groups, N * positions, out/groups)
    y = y.reshape(groups, batch, *spatial, out_c // groups)
    y = y.transpose(1, 0, n + 2, *range(2, n + 2)).reshape(batch, out_c, *spatial)
    if bias is not None:
        y = y + bias.reshape(out_c, *(1,) * n)
    return np.ascontiguousarray(y)


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
    """N-d transposed convolution (torch's ``conv_transpose``): input ``(N, C, *d)``,
    weight ``(C, out/groups, *k)``; output ``(N, out, *d_out)`` with ``d_out = (d -
    1)*s - 2p + dil*(k-1) + output_padding + 1``."""
    n = weight.ndim - 2
    in_c, out_per_group = weight.shape[:2]
    kernel = weight.shape[2:]
    # the input with stride - 1 zeros between neighbours
    batch, c = x.shape[:2]
    dilated = np.zeros(
        (batch, c, *((d - 1) * s + 1 for d, s in zip(x.shape[2:], stride, strict=True))),
        dtype=x.dtype,
    )
    dilated[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = x
    # (C, out/g, *k) -> (out, C/g, *k), spatially flipped
    w = weight.reshape(groups, in_c // groups, out_per_group, *kernel).swapaxes(1, 2)
    w = w.reshape(groups * out_per_group, in_c // groups, *kernel)
    w = np.flip(w, axis=tuple(range(2, n + 2)))
    pads = tuple(
        (d * (k - 1) - p, d * (k - 1) - p + op)
        for k, p, op, d in zip(kernel, padding, output_padding, dilation, strict=True)
    )
    return conv(dilated, w, bias, (1,) * n, pads, dilation, groups)

