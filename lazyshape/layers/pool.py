"""Pooling layers: ``MaxPool1d/2d/3d``, ``AvgPool1d/2d/3d``,
``AdaptiveAvgPool1d/2d/3d`` (PyTorch's names, arguments and semantics)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec
from ..rules.pool import (
    adaptive_pool_output,
    normalize_output_size,
    normalize_pool_args,
    pool_output,
)

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
]


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

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return pool_output(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
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

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return pool_output(
            x, self.kernel_size, self.stride, self.padding, (1,) * self.n, self.ceil_mode,
            input_at_least_kernel=self.n == 3,
        )

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
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

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return adaptive_pool_output(x, self.output_size)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
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
