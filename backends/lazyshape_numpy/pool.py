"""Pooling ops for NumPy arrays: ``max_pool``, ``avg_pool``, ``adaptive_avg_pool``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lazyshape.layers.pool import adaptive_avg_matrix, avg_pool_divisor, window_padding

__all__ = ["max_pool", "avg_pool", "adaptive_avg_pool"]


def _windows(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
    fill: float,
) -> tuple[Any, list[int]]:
    """A view ``(N, C, *out, *kernel_size)`` of the windows of ``x`` padded with
    ``fill`` (on the right also as far as ceil mode's last window reaches), and
    the output spatial sizes."""
    n = len(kernel_size)
    pads, outs = window_padding(
        tuple(x.shape[2:]), kernel_size, stride, padding, dilation, ceil_mode
    )
    effs = [dl * (k - 1) + 1 for k, dl in zip(kernel_size, dilation, strict=True)]
    xp = np.pad(x, pads, constant_values=fill)
    win = sliding_window_view(xp, effs, axis=tuple(range(2, 2 + n)))
    index = (
        slice(None),
        slice(None),
        *(slice(0, (o - 1) * s + 1, s) for o, s in zip(outs, stride, strict=True)),
        *(slice(None, None, dl) for dl in dilation),
    )
    return win[index], outs


def max_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> Any:
    """Max over each window (padding is ``-inf``, so it never wins)."""
    n = len(kernel_size)
    win, _ = _windows(x, kernel_size, stride, padding, dilation, ceil_mode, -np.inf)
    return win.max(axis=tuple(range(-n, 0)))


def avg_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None = None,
) -> Any:
    """Mean over each zero-padded window, with torch's divisor (`avg_pool_divisor`,
    or ``divisor_override``)."""
    n = len(kernel_size)
    win, _ = _windows(x, kernel_size, stride, padding, (1,) * n, ceil_mode, 0.0)
    total = win.sum(axis=tuple(range(-n, 0)))
    if divisor_override is not None:
        return (total / divisor_override).astype(x.dtype)
    div = avg_pool_divisor(
        tuple(x.shape[2:]), kernel_size, stride, padding, ceil_mode, count_include_pad
    )
    return (total / div).astype(x.dtype)


def adaptive_avg_pool(x: Any, output_size: tuple[int, ...]) -> Any:
    """Average over torch's adaptive windows (``output_size``: ints)."""
    y = x
    for axis, (d, o) in enumerate(zip(x.shape[2:], output_size, strict=True), start=2):
        m = adaptive_avg_matrix(d, o).astype(x.dtype)
        y = np.moveaxis(np.tensordot(y, m, axes=([axis], [1])), -1, axis)
    return y

