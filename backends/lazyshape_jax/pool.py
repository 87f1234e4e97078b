"""Pooling ops for JAX arrays: ``max_pool``, ``avg_pool``, ``adaptive_avg_pool``.

Spatial sizes may be JAX symbolic dims (``jax.export``): windows and output
sizes are dim arithmetic (`pool_out_dim`, ``jax.core.max_dim``), never
``int()``; what NumPy precomputes for concrete sizes (the average divisor, the
adaptive averaging matrix) JAX computes for symbolic ones."""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazyshape.layers.pool import adaptive_avg_matrix, avg_pool_divisor, pool_out_dim

from .shapes import is_concrete

__all__ = ["max_pool", "avg_pool", "adaptive_avg_pool"]

Pads = list[tuple[Any, Any]]


def window_padding(
    spatial: tuple[Any, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> tuple[Pads, list[Any]]:
    """The ``(lo, hi)`` padding of every dim of an ``(N, C, *spatial)`` input
    (the right side also as far as ceil mode's last window reaches) and the
    output spatial sizes `pool_out_dim`. Sizes may be JAX symbolic dims: the
    overhang is a ``max_dim`` (none in floor mode, where no window passes the
    padded input)."""
    pads: Pads = [(0, 0), (0, 0)]
    outs = []
    for d, k, s, p, dl in zip(spatial, kernel_size, stride, padding, dilation, strict=True):
        o = pool_out_dim(d, k, s, p, dl, ceil_mode)
        overhang = jax.core.max_dim(0, (o - 1) * s + dl * (k - 1) + 1 - (d + 2 * p)) \
            if ceil_mode else 0
        pads.append((p, p + overhang))
        outs.append(o)
    return pads, outs


def _reduce(x: Any, init: Any, op: Any, kernel_size: tuple[int, ...], stride: tuple[int, ...],
            pads: Pads, dilation: tuple[int, ...]) -> Any:
    return jax.lax.reduce_window(
        x,
        np.array(init, dtype=x.dtype),  # a concrete identity: JAX's differentiable max/sum
        op,
        (1, 1, *kernel_size),
        (1, 1, *stride),
        pads,
        window_dilation=(1, 1, *dilation),
    )


def _dilated_max(x: Any, kernel_size: tuple[int, ...], stride: tuple[int, ...], pads: Pads,
                 outs: list[Any], dilation: tuple[int, ...]) -> Any:
    """Max pooling with dilation as a max over one strided slice per kernel
    offset: JAX has no gradient for a dilated max ``reduce_window``."""
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
    pads, outs = window_padding(
        tuple(x.shape[2:]), kernel_size, stride, padding, dilation, ceil_mode
    )
    if any(dl != 1 for dl in dilation):
        return _dilated_max(x, kernel_size, stride, pads, outs, dilation)
    return _reduce(x, -np.inf, jax.lax.max, kernel_size, stride, pads, dilation)


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
    spatial = tuple(x.shape[2:])
    pads, _ = window_padding(spatial, kernel_size, stride, padding, (1,) * n, ceil_mode)
    total = _reduce(x, 0, jax.lax.add, kernel_size, stride, pads, (1,) * n)
    if divisor_override is not None:
        return total / jnp.asarray(divisor_override, x.dtype)
    if is_concrete(spatial):
        div = jnp.asarray(
            avg_pool_divisor(spatial, kernel_size, stride, padding, ceil_mode, count_include_pad),
            x.dtype,
        )
    else:  # avg_pool_divisor by JAX: sum-pool ones over what the divisor counts
        ones = jnp.ones((1, 1, *spatial), x.dtype)
        if count_include_pad:  # the padding counts, ceil mode's overhang doesn't
            ones = jnp.pad(ones, [(0, 0), (0, 0), *((p, p) for p in padding)], constant_values=1)
            pads = [(lo - p, hi - p) for (lo, hi), p in zip(pads, (0, 0, *padding), strict=True)]
        div = _reduce(ones, 0, jax.lax.add, kernel_size, stride, pads, (1,) * n)
    return total / div


def adaptive_avg_pool(x: Any, output_size: tuple[int, ...]) -> Any:
    """Average over torch's adaptive windows (``output_size``: ints): one
    averaging matrix ``(o, d)`` per spatial dim (`adaptive_avg_matrix`; for a
    symbolic ``d`` the same matrix built by JAX)."""
    y = x
    for axis, (d, o) in enumerate(zip(x.shape[2:], output_size, strict=True), start=2):
        m = jnp.asarray(adaptive_avg_matrix(d, o) if is_concrete((d,)) else _avg_matrix(d, o),
                        x.dtype)
        y = jnp.moveaxis(jnp.tensordot(y, m, axes=([axis], [1])), -1, axis)
    return y


def _avg_matrix(d: Any, out: int) -> Any:
    """`adaptive_avg_matrix` for a symbolic size ``d``: row ``i`` averages
    columns ``[i*d // out, ceil((i + 1)*d / out))``."""
    i = jnp.arange(out)
    start, end = (i * d) // out, ((i + 1) * d + out - 1) // out
    cols = jnp.arange(d)
    inside = (cols >= start[:, None]) & (cols < end[:, None])
    return inside / (end - start)[:, None]
