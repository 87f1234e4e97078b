"""Pooling ops for JAX arrays: ``max_pool``, ``avg_pool``, ``adaptive_avg_pool``."""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazyshape.layers.pool import adaptive_avg_matrix, avg_pool_divisor, window_padding

__all__ = ["max_pool", "avg_pool", "adaptive_avg_pool"]


def _reduce(
    x: Any,
    init: Any,
    op: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> Any:
    pads, _ = window_padding(
        tuple(x.shape[2:]), kernel_size, stride, padding, dilation, ceil_mode
    )
    return jax.lax.reduce_window(
        x,
        np.array(init, dtype=x.dtype),  # a concrete identity: JAX's differentiable max/sum
        op,
        (1, 1, *kernel_size),
        (1, 1, *stride),
        pads,
        window_dilation=(1, 1, *dilation),
    )


def _dilated_max(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> Any:
    """Max pooling with dilation as a max over one strided slice per kernel
    offset: JAX has no gradient for a dilated max ``reduce_window``."""
    pads, outs = window_padding(
        tuple(x.shape[2:]), kernel_size, stride, padding, dilation, ceil_mode
    )
    xp = jnp.pad(x, pads, constant_values=np.array(-np.inf, x.dtype))
    out = None
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        index = (
            slice(None),
            slice(None),
            *(
                slice(j * dl, j * dl + (o - 1) * s + 1, s)
                for j, dl, o, s in zip(offset, dilation, outs, stride, strict=True)
            ),
        )
        out = xp[index] if out is None else jnp.maximum(out, xp[index])
    return out


def max_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> Any:
    """Max over each window (padding is ``-inf``, so it never wins)."""
    if any(dl != 1 for dl in dilation):
        return _dilated_max(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _reduce(x, -np.inf, jax.lax.max, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None = None,
) -> Any:
    """Mean over each zero-padded window, with torch's divisor."""
    n = len(kernel_size)
    total = _reduce(x, 0, jax.lax.add, kernel_size, stride, padding, (1,) * n, ceil_mode)
    if divisor_override is not None:
        return total / jnp.asarray(divisor_override, x.dtype)
    div = avg_pool_divisor(
        tuple(x.shape[2:]), kernel_size, stride, padding, ceil_mode, count_include_pad
    )
    return total / jnp.asarray(div, x.dtype)


def adaptive_avg_pool(x: Any, output_size: tuple[int, ...]) -> Any:
    """Average over torch's adaptive windows (``output_size``: ints): one
    averaging matrix per spatial dim."""
    y = x
    for axis, (d, o) in enumerate(zip(x.shape[2:], output_size, strict=True), start=2):
        m = jnp.asarray(adaptive_avg_matrix(d, o), x.dtype)
        y = jnp.moveaxis(jnp.tensordot(y, m, axes=([axis], [1])), -1, axis)
    return y

