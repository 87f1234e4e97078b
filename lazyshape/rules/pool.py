"""Pooling: max, average and adaptive average pooling over 1, 2 or 3 spatial dims.

Canonical layout ``(N, C, *spatial)``; PyTorch's hyperparameters, checks and
output-size formula (``aten/src/ATen/native/Pool.h``), ceil mode included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dims import Dim, format_shape, ge, resolve
from .._errors import ShapeError, check
from .._specs import TensorSpec
from ._common import check_floating, check_input_rank

__all__ = [
    "window_padding",
    "LAYOUTS",
    "normalize_pool_args",
    "normalize_output_size",
    "check_pool_input",
    "pool_out_dim",
    "pool_output",
    "adaptive_pool_output",
    "adaptive_windows",
    "avg_pool_divisor",
    "adaptive_avg_matrix",
]

#: the batched input layout of an ``n``-d pooling layer
LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


# -- hyperparameter normalisers (run once, at construction) ------------------


def _ntuple(value: Any, n: int, name: str, kind: str, minimum: int = 1) -> tuple[int, ...]:
    """An int (repeated) or a tuple/list of ``n`` ints, each ``>= minimum``."""
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(vals) != n or not all(type(v) is int and v >= minimum for v in vals):
        what = "positive" if minimum == 1 else "non-negative"
        raise ShapeError(
            f"`{name}` to be a {what} int or a tuple of {n} {what} ints",
            f"`{name}` (={value!r})",
            kind=kind,
        )
    return vals


def normalize_pool_args(
    kind: str, n: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(kernel_size, stride, padding, dilation)`` as ``n``-tuples; ``stride=None``
    means ``kernel_size`` (torch's default). Padding is at most half the kernel,
    ``padding <= kernel_size // 2``, as every torch pooling op requires."""
    k = _ntuple(kernel_size, n, "kernel_size", kind)
    s = k if stride is None else _ntuple(stride, n, "stride", kind)
    p = _ntuple(padding, n, "padding", kind, minimum=0)
    d = _ntuple(dilation, n, "dilation", kind)
    if any(pi > ki // 2 for pi, ki in zip(p, k, strict=True)):
        raise ShapeError(
            "`padding` at most half of `kernel_size` (padding <= kernel_size // 2)",
            f"`padding` (={padding!r}), `kernel_size` (={kernel_size!r})",
            kind=kind,
        )
    return k, s, p, d


def normalize_output_size(output_size: Any, n: int, kind: str) -> tuple[int | None, ...]:
    """An adaptive pool's target: an int (repeated) or ``n`` entries, each a
    positive int or, in 2-d and 3-d, ``None`` ("keep that input dim"; torch's
    1-d adaptive pools take no ``None``)."""
    vals = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * n
    ok = all((v is None and n > 1) or (type(v) is int and v >= 1) for v in vals)
    if len(vals) != n or not ok:
        what = f"a tuple of {n} positive ints or None" if n > 1 else "a tuple of 1 positive int"
        raise ShapeError(
            f"`output_size` to be a positive int or {what}",
            f"`output_size` (={output_size!r})",
            kind=kind,
        )
    return vals


# -- validation ----------------------------------------------------------------


def check_pool_input(x: TensorSpec, n: int, empty_channels: bool = False) -> None:
    """A batched floating-point ``(N, C, *spatial)`` input whose spatial dims (and
    channels, unless ``empty_channels``) are non-empty; only the batch may be 0."""
    if len(x.shape) != n + 2:
        check_input_rank(x, n + 2, LAYOUTS[n])
    check_floating(x)
    first = 2 if empty_channels else 1
    if 0 in x.shape[first:]:  # a symbolic dim is never equal to an int
        which = "spatial" if empty_channels else "channel and spatial"
        raise ShapeError(
            f"non-empty {which} dims (only the batch dim may be 0)",
            f"input shape {format_shape(x.shape)}",
        )


# -- shape computation -----------------------------------------------------------


def pool_out_dim(d: Dim, k: int, s: int, p: int, dil: int, ceil_mode: bool) -> Dim:
    """``(d + 2p - dil*(k-1) - 1 + (m - 1)) // s + 1``; floor mode ``m = 1``, ceil
    mode ``m = min(s, dil*(k-1) + 1 - p)``.

    Ceil mode in torch is ``ceil((d + 2p - eff) / s) + 1``, minus one when the
    last window would start at or past ``d + p`` (beyond the input and its left
    padding). With ``n = d + 2p - eff`` the output counts the ``j >= 0`` with
    ``j*s <= n + s - 1`` and ``j*s < d + p = n + (eff - p)``: both hold exactly
    when ``j*s <= n + min(s, eff - p) - 1``, which is one floor division, exact
    for every ``d >= 1`` (ints and symbols alike, no case split).
    """
    eff = dil * (k - 1) + 1
    m = min(s, eff - p) if ceil_mode else 1
    return (d + (2 * p - eff + m - 1)) // s + 1


def pool_output(
    x: TensorSpec,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
    input_at_least_kernel: bool = False,
) -> TensorSpec:
    """``(N, C, *d) -> (N, C, *pool_out_dim(d))``, every output dim ``>= 1``.
    ``input_at_least_kernel``: also require ``d >= kernel_size`` (torch's
    avg_pool3d checks this, padding notwithstanding)."""
    n = len(kernel_size)
    check_pool_input(x, n)
    spatial = x.shape[2:]
    out = tuple(
        pool_out_dim(d, k, s, p, dl, ceil_mode)
        for d, k, s, p, dl in zip(spatial, kernel_size, stride, padding, dilation, strict=True)
    )
    if not input_at_least_kernel and all(type(o) is int and o >= 1 for o in out):
        return TensorSpec._make((*x.shape[:2], *out), x.dtype)  # concrete and valid
    hparams: dict[str, Any] = {
        "kernel_size": kernel_size, "stride": stride, "padding": padding,
    }
    if any(dl != 1 for dl in dilation):
        hparams["dilation"] = dilation
    if ceil_mode:
        hparams["ceil_mode"] = True
    if input_at_least_kernel:
        check(
            all(resolve(ge(d, k), default=True) for d, k in zip(spatial, kernel_size, strict=True)),
            lambda: (
                "every spatial input dim at least `kernel_size` (torch's avg_pool3d "
                "checks this before padding)",
                f"input shape {format_shape(x.shape)}",
            ),
            **hparams,
        )
    # undecidable (symbolic) sizes are assumed large enough
    check(
        all(resolve(ge(o, 1), default=True) for o in out),
        lambda: (
            "an output of at least 1 along every spatial dim "
            "(input + 2*padding >= dilation*(kernel_size - 1) + 1)",
            f"output spatial shape {format_shape(out)} for input shape {format_shape(x.shape)}",
        ),
        **hparams,
    )
    return x.with_shape((*x.shape[:2], *out))


def adaptive_pool_output(x: TensorSpec, output_size: tuple[int | None, ...]) -> TensorSpec:
    """``(N, C, *d) -> (N, C, *output_size)``, a ``None`` entry keeping its input
    dim. Any ``output_size`` is valid, larger than the input included. As in
    torch, 1-d and 2-d pools accept zero channels, 3-d pools don't."""
    n = len(output_size)
    check_pool_input(x, n, empty_channels=n < 3)
    out = tuple(d if o is None else o for d, o in zip(x.shape[2:], output_size, strict=True))
    return x.with_shape((*x.shape[:2], *out))


def adaptive_windows(d: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive windows along one dim: for ``i`` in ``range(out)``,
    ``[floor(i*d/out), ceil((i+1)*d/out))`` (used by the backends' ops)."""
    return [((i * d) // out, -((-(i + 1) * d) // out)) for i in range(out)]


# -- window helpers for the backends' ops (static, from concrete sizes) ------------


def window_padding(
    spatial: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> tuple[list[tuple[int, int]], list[int]]:
    """For concrete spatial sizes (backends): the ``(lo, hi)`` padding of every
    dim of an ``(N, C, *spatial)`` input (the right side also as far as ceil
    mode's last window reaches) and the output spatial sizes."""
    pads = [(0, 0), (0, 0)]
    outs = []
    for d, k, s, p, dl in zip(spatial, kernel_size, stride, padding, dilation, strict=True):
        o = int(pool_out_dim(d, k, s, p, dl, ceil_mode))
        pads.append((p, p + max(0, (o - 1) * s + dl * (k - 1) + 1 - (d + 2 * p))))
        outs.append(o)
    return pads, outs


def avg_pool_divisor(
    spatial: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    ceil_mode: bool,
    count_include_pad: bool,
) -> np.ndarray[Any, Any]:
    """torch's average-pooling divisor of every output position, shape ``out``:
    per dim, the window clipped to the padded input ``[-p, d + p)``
    (``count_include_pad``) or to the input ``[0, d)``; the product over dims."""
    out = np.ones((), dtype=np.float64)
    for d, k, s, p in zip(spatial, kernel_size, stride, padding, strict=True):
        o = int(pool_out_dim(d, k, s, p, 1, ceil_mode))
        start = np.arange(o) * s - p
        end = np.minimum(start + k, d + p)
        cnt = end - start if count_include_pad else np.minimum(end, d) - np.maximum(start, 0)
        out = np.multiply.outer(out, cnt)
    return out


def adaptive_avg_matrix(d: int, out: int) -> np.ndarray[Any, Any]:
    """``(out, d)``: row ``i`` averages torch's adaptive window ``i`` (`adaptive_windows`)
    of a dim of size ``d``."""
    i = np.arange(out)
    start, end = (i * d) // out, -((-(i + 1) * d) // out)
    cols = np.arange(d)
    inside = (cols >= start[:, None]) & (cols < end[:, None])
    return inside / (end - start)[:, None]
