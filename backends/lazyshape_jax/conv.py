"""Convolution ops for JAX arrays: ``conv``, ``conv_transpose``, ``pad``
(PyTorch's layouts)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .shapes import is_concrete

__all__ = ["pad", "conv", "conv_transpose"]


_SPATIAL = {1: "H", 2: "HW", 3: "DHW"}


# torch's F.pad modes -> jnp.pad's
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _dimension_numbers(n: int) -> tuple[str, str, str]:
    sp = _SPATIAL[n]
    return ("NC" + sp, "OI" + sp, "NC" + sp)


def _add_bias(y: Any, bias: Any | None, n: int) -> Any:
    if bias is None:
        return y
    return y + jnp.reshape(bias, (-1,) + (1,) * n)


def pad(x: Any, pads: tuple[tuple[int, int], ...], mode: str) -> Any:
    """Pad the trailing ``len(pads)`` dims by ``(lo, hi)`` each; ``mode`` is
    ``"constant"`` (zeros), ``"reflect"``, ``"replicate"`` or ``"circular"``
    (torch's ``F.pad`` semantics). With symbolic sizes (``jax.export``),
    ``"reflect"`` needs them bounded above the padding by the shape's
    constraints, else raises ``jax.errors.InconclusiveDimensionOperation``."""
    if mode not in _PAD_MODES:
        raise ValueError(f"pad mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    lead = jnp.ndim(x) - len(pads)
    widths = [(0, 0)] * lead + [(lo, hi) for lo, hi in pads]
    if mode == "constant" or is_concrete(x.shape[lead:]):
        return jnp.pad(x, widths, mode=_PAD_MODES[mode])
    if mode == "circular":
        return _wrap(x, pads, lead)
    try:
        return jnp.pad(x, widths, mode=_PAD_MODES[mode])
    except ValueError as e:  # reflect: JAX must know each symbolic size exceeds the padding
        raise jax.errors.InconclusiveDimensionOperation(str(e)) from e


def _wrap(x: Any, pads: tuple[tuple[int, int], ...], lead: int) -> Any:
    """Circular padding as slices of the other end (``jnp.pad``'s ``"wrap"``
    takes the size modulo each symbolic dim, which JAX cannot decide)."""
    for axis, (lo, hi) in enumerate(pads, start=lead):
        size = x.shape[axis]
        x = jnp.concatenate([lax.slice_in_dim(x, size - lo, size, axis=axis), x,
                             lax.slice_in_dim(x, 0, hi, axis=axis)], axis=axis)
    return x


def conv(
    x: Any,
    weight: Any,
    bias: Any | None,
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Any:
    """N-d convolution, ``n = weight.ndim - 2``: input ``(N, C, *d)``, weight
    ``(out, C/groups, *k)``, explicit zero padding ``(lo, hi)`` per spatial dim;
    output ``(N, out, *d_out)``."""
    n = jnp.ndim(weight) - 2
    y = lax.conv_general_dilated(
        x,
        weight,
        window_strides=tuple(stride),
        padding=[(lo, hi) for lo, hi in padding],
        rhs_dilation=tuple(dilation),
        dimension_numbers=_dimension_numbers(n),
        feature_group_count=groups,
    )
    return _add_bias(y, bias, n)


def _may_abort(
    spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> bool:
    """Whether XLA:CPU might abort on the base-dilated convolution: some stride
    above 1 and some dilated input ``(d - 1)*s + 1`` within twice the dilated
    kernel ``dil*(k - 1) + 1`` (every abort seen has it at most once the kernel)."""
    return any(s > 1 for s in stride) and any(
        (d - 1) * s + 1 <= 2 * (dl * (k - 1) + 1)
        for d, k, s, dl in zip(spatial, kernel, stride, dilation, strict=True)
    )


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
    1)*s - 2p + dil*(k-1) + output_padding + 1``.

    The stride-1 convolution of the stride-dilated input with the flipped
    kernel, in and out swapped within each group. jaxlib 0.10's XLA:CPU aborts
    the process compiling a base-dilated convolution (``lhs_dilation``) whose
    dilated input is smaller than the dilated kernel; where a strided input is
    within twice the kernel's extent (`_may_abort`), or has symbolic sizes
    (``jax.export``), the input is dilated and edge-padded by ``lax.pad``
    instead, which compiles safely but runs slower."""
    n = jnp.ndim(weight) - 2
    in_c, out_per_group = weight.shape[:2]
    kernel = weight.shape[2:]
    w = jnp.reshape(weight, (groups, in_c // groups, out_per_group, *kernel))
    w = jnp.reshape(jnp.swapaxes(w, 1, 2), (groups * out_per_group, in_c // groups, *kernel))
    w = jnp.flip(w, axis=tuple(range(2, n + 2)))
    # per dim: a full correlation of the dilated input, less `padding` on each
    # side, plus `output_padding` on the high side
    pads = [
        (d * (k - 1) - p, d * (k - 1) - p + op)
        for k, p, op, d in zip(kernel, padding, output_padding, dilation, strict=True)
    ]
    lhs_dilation = tuple(stride)
    # symbolic sizes (jax.export) can't be compared: the safe path then
    if not is_concrete(x.shape[2:]) or _may_abort(x.shape[2:], kernel, stride, dilation):
        config = [(0, 0, 0), (0, 0, 0)] + [
            (lo, hi, s - 1) for (lo, hi), s in zip(pads, stride, strict=True)
        ]
        x = lax.pad(x, jnp.zeros((), x.dtype), config)
        pads, lhs_dilation = [(0, 0)] * n, (1,) * n
    y = lax.conv_general_dilated(
        x,
        w,
        window_strides=(1,) * n,
        padding=pads,
        lhs_dilation=lhs_dilation,
        rhs_dilation=tuple(dilation),
        dimension_numbers=_dimension_numbers(n),
        feature_group_count=groups,
    )
    return _add_bias(y, bias, n)

