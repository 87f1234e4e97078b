"""Pooling layers: ``MaxPool1d/2d/3d``, ``AvgPool1d/2d/3d``,
``AdaptiveAvgPool1d/2d/3d`` (PyTorch's names, arguments and semantics).

The module holds the rules (pure functions of specs and hyperparameters),
then the layer classes.

Canonical layout ``(N, C, *spatial)``; PyTorch's hyperparameters, checks and
output-size formula (``aten/src/ATen/native/Pool.h``), ceil mode included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .. import ops
from .._cost import Saved, nbytes
from .._dims import Dim, format_shape, ge, shifted_floordiv
from .._errors import ShapeError, check
from .._layer import Layer
from .._specs import TensorSpec
from ._common import LAYOUTS, at_least, check_floating, check_rank, int_tuple

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "window_padding",
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


# -- hyperparameter normalisers (run once, at construction) ------------------


def normalize_pool_args(
    kind: str, n: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(kernel_size, stride, padding, dilation)`` as ``n``-tuples; ``stride=None``
    means ``kernel_size`` (torch's default). Padding is at most half the kernel,
    ``padding <= kernel_size // 2``, as every torch pooling op requires."""
    k = int_tuple(kernel_size, n, "kernel_size", kind)
    s = k if stride is None else int_tuple(stride, n, "stride", kind)
    p = int_tuple(padding, n, "padding", kind, minimum=0)
    d = int_tuple(dilation, n, "dilation", kind)
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
        check_rank(x, n + 2, LAYOUTS[n])
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
    return shifted_floordiv(d, 2 * p - eff + m - 1, s, 1)


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
    if not input_at_least_kernel and all(ge(o, 1) is True for o in out):
        return TensorSpec._make((*x.shape[:2], *out), x.dtype)  # provably valid
    hparams: dict[str, Any] = {
        "kernel_size": kernel_size, "stride": stride, "padding": padding,
    }
    if any(dl != 1 for dl in dilation):
        hparams["dilation"] = dilation
    if ceil_mode:
        hparams["ceil_mode"] = True
    if input_at_least_kernel:
        check(
            all(at_least(d, k) for d, k in zip(spatial, kernel_size, strict=True)),
            lambda: (
                "every spatial input dim at least `kernel_size` (torch's avg_pool3d "
                "checks this before padding)",
                f"input shape {format_shape(x.shape)}",
            ),
            **hparams,
        )
    # undecidable (symbolic) sizes are assumed large enough (`valid_ranges` says how large)
    check(
        all(at_least(o, 1) for o in out),
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


# -- layers ----------------------------------------------------------------------


class _MaxPoolNd(Layer):
    """Max over windows of ``kernel_size`` (spaced by ``dilation``) moved by
    ``stride`` (default ``kernel_size``) over the input padded by ``padding``
    (padding never wins the max). Input ``(N, C, *spatial)``, output
    ``(N, C, *out)`` with ``out = (d + 2p - dilation*(k-1) - 1) // stride + 1``
    (rounded up with ``ceil_mode``, as torch)."""

    hparam_names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    n: ClassVar[int]

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        ceil_mode: bool = False,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.kernel_size, self.stride, self.padding, self.dilation = normalize_pool_args(
            self.kind, self.n, kernel_size, stride, padding, dilation
        )
        self.ceil_mode = bool(ceil_mode)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return pool_output(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        """The input, and the index of each window's max (int64, one per output)."""
        return Saved((0,), (), nbytes(outputs[0], "int64"))

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.max_pool(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )


class MaxPool1d(_MaxPoolNd):
    """1-d max pooling: ``(N, C, L) -> (N, C, L_out)`` (``torch.nn.MaxPool1d``)."""

    n = 1
    expected_ndim = 3


class MaxPool2d(_MaxPoolNd):
    """2-d max pooling: ``(N, C, H, W) -> (N, C, H_out, W_out)`` (``torch.nn.MaxPool2d``)."""

    n = 2
    expected_ndim = 4


class MaxPool3d(_MaxPoolNd):
    """3-d max pooling: ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``
    (``torch.nn.MaxPool3d``)."""

    n = 3
    expected_ndim = 5


class _AvgPoolNd(Layer):
    """Mean over windows of ``kernel_size`` moved by ``stride`` (default
    ``kernel_size``) over the input zero-padded by ``padding``. The divisor is
    the window size clipped to the padded input (``count_include_pad=True``),
    or the number of input elements in it (``False``), or ``divisor_override``.
    Output ``(N, C, *out)``, ``out = (d + 2p - k) // stride + 1`` (rounded up
    with ``ceil_mode``, as torch)."""

    hparam_names: ClassVar[tuple[str, ...] | None] = (
        "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override",
    )
    n: ClassVar[int]

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.kernel_size, self.stride, self.padding, _ = normalize_pool_args(
            self.kind, self.n, kernel_size, stride, padding
        )
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None and (
            type(divisor_override) is not int or divisor_override == 0
        ):
            raise ShapeError(
                "`divisor_override` to be a non-zero int or None",
                f"`divisor_override` (={divisor_override!r})",
                kind=self.kind,
            )
        self.divisor_override = divisor_override

    def hparams(self) -> dict[str, Any]:
        hp = super().hparams()
        if hp.get("divisor_override", 0) is None:  # None is "not set", not an unknown size
            del hp["divisor_override"]
        return hp

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return pool_output(
            x, self.kernel_size, self.stride, self.padding, (1,) * self.n, self.ceil_mode,
            input_at_least_kernel=self.n == 3,
        )

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.avg_pool(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )


class AvgPool1d(_AvgPoolNd):
    """1-d average pooling: ``(N, C, L) -> (N, C, L_out)`` (``torch.nn.AvgPool1d``,
    which has no ``divisor_override``)."""

    hparam_names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
    n = 1
    expected_ndim = 3

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, name=name)


class AvgPool2d(_AvgPoolNd):
    """2-d average pooling: ``(N, C, H, W) -> (N, C, H_out, W_out)`` (``torch.nn.AvgPool2d``)."""

    n = 2
    expected_ndim = 4


class AvgPool3d(_AvgPoolNd):
    """3-d average pooling: ``(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)``
    (``torch.nn.AvgPool3d``; as torch, every input dim must be at least the
    kernel, padding notwithstanding)."""

    n = 3
    expected_ndim = 5


class _AdaptiveAvgPoolNd(Layer):
    """Average pooling to a fixed ``output_size``: output ``i`` averages input
    ``[floor(i*d/out), ceil((i+1)*d/out))`` along each spatial dim. An int is
    used for every dim; a ``None`` entry keeps that input dim."""

    hparam_names = ("output_size",)
    n: ClassVar[int]

    def __init__(self, output_size: int | None | tuple[int | None, ...], *,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.output_size = normalize_output_size(output_size, self.n, self.kind)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return adaptive_pool_output(x, self.output_size)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        spatial = tuple(x.shape)[2:]
        size = tuple(int(d) if o is None else o for d, o in zip(spatial, self.output_size,
                                                                 strict=True))
        return ops.adaptive_avg_pool(x, size)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """``(N, C, L) -> (N, C, output_size)`` (``torch.nn.AdaptiveAvgPool1d``)."""

    n = 1
    expected_ndim = 3


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """``(N, C, H, W) -> (N, C, *output_size)`` (``torch.nn.AdaptiveAvgPool2d``);
    ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    n = 2
    expected_ndim = 4


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """``(N, C, D, H, W) -> (N, C, *output_size)`` (``torch.nn.AdaptiveAvgPool3d``)."""

    n = 3
    expected_ndim = 5
