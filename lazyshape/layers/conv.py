"""Convolutions whose input channels are inferred: ``Conv1d/2d/3d`` and
``ConvTranspose1d/2d/3d`` (PyTorch's names, arguments and initialization)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ..rules._common import positive_int
from ..rules.conv import (
    Pads,
    check_groups,
    check_padding_mode,
    conv_output,
    conv_params,
    conv_rooms,
    conv_transpose_output,
    conv_transpose_params,
    normalize_ints,
    normalize_kernel,
    normalize_output_padding,
    normalize_padding,
    normalize_transpose_padding,
)

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

# torch's padding_mode -> the mode of `ls.ops.pad`
_PAD_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


class _ConvNd(Layer):
    """Shared by ``Conv1d/2d/3d``; ``_n`` is the number of spatial dims."""

    _n: ClassVar[int]
    hparam_names = (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "bias",
        "padding_mode",
    )

    def __init__(
        self,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        in_channels: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind, n = self.kind, self._n
        self.out_channels = positive_int(out_channels, "out_channels", kind)
        if in_channels is not None:
            positive_int(in_channels, "in_channels", kind)
        self.in_channels = in_channels
        self.kernel_size = normalize_kernel(kernel_size, n, kind)
        self.stride = normalize_ints(stride, n, "stride", kind)
        self.dilation = normalize_ints(dilation, n, "dilation", kind)
        self.padding, self._pads = normalize_padding(
            padding, self.kernel_size, self.stride, self.dilation, kind
        )
        self.groups = check_groups(groups, self.out_channels, in_channels, kind)
        self.bias = bool(bias)
        self.padding_mode = check_padding_mode(padding_mode, kind)
        self._rooms = conv_rooms(self.kernel_size, self._pads, self.dilation)
        self._no_pads: Pads = ((0, 0),) * n
        # the mode of the explicit pad before the convolution (None: zero padding inside it)
        self._pad_mode = None if self._pads == self._no_pads else _PAD_MODE.get(padding_mode)

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return conv_output(
            x,
            self.out_channels,
            self.stride,
            self._pads,
            self._rooms,
            self.groups,
            self.padding_mode,
            self.in_channels,
        )

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:  # type: ignore[override]
        return conv_params(
            x, self.out_channels, self.kernel_size, self.groups, self.bias, self.in_channels
        )

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
        pads = self._pads
        if self._pad_mode is not None:  # torch pads first, then convolves unpadded
            x = ops.pad(x, pads, self._pad_mode)
            pads = self._no_pads
        return ops.conv(
            x, params["weight"], params.get("bias"), self.stride, pads, self.dilation, self.groups
        )

    def describe(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if self.in_channels is None and inputs and inputs[0].ndim > 1:
            hp["in_channels"] = inputs[0].shape[1]
        return hp


class Conv1d(_ConvNd):
    """1-d convolution: input ``(N, C_in, L)``, output ``(N, out_channels, L_out)``
    with ``L_out = (L + 2*padding - dilation*(kernel_size - 1) - 1) // stride + 1``;
    weight ``(out_channels, C_in/groups, kernel_size)``.

    ``in_channels`` is inferred from the input when omitted, checked when given.
    ``padding`` is an int, ``"same"`` or ``"valid"``; ``padding_mode`` is
    ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    Initialization is PyTorch's (weight ``kaiming_uniform(a=sqrt(5))``, bias
    ``U(±1/sqrt(C_in/groups * kernel_size))``).
    """

    _n = 1
    expected_ndim = 3


class Conv2d(_ConvNd):
    """2-d convolution: input ``(N, C_in, H, W)``, output ``(N, out_channels,
    H_out, W_out)``, each spatial dim ``(d + 2*padding - dilation*(k - 1) - 1) //
    stride + 1``; weight ``(out_channels, C_in/groups, kH, kW)``.

    ``in_channels`` is inferred from the input when omitted, checked when given.
    ``padding`` is an int, a pair, ``"same"`` or ``"valid"``; ``padding_mode`` is
    ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    Initialization is PyTorch's (weight ``kaiming_uniform(a=sqrt(5))``, bias
    ``U(±1/sqrt(C_in/groups * kH * kW))``).
    """

    _n = 2
    expected_ndim = 4


class Conv3d(_ConvNd):
    """3-d convolution: input ``(N, C_in, D, H, W)``, output ``(N, out_channels,
    D_out, H_out, W_out)``, each spatial dim ``(d + 2*padding - dilation*(k - 1) -
    1) // stride + 1``; weight ``(out_channels, C_in/groups, kD, kH, kW)``.

    ``in_channels`` is inferred from the input when omitted, checked when given.
    ``padding`` is an int, a triple, ``"same"`` or ``"valid"``; ``padding_mode``
    is ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    Initialization is PyTorch's.
    """

    _n = 3
    expected_ndim = 5


class _ConvTransposeNd(Layer):
    """Shared by ``ConvTranspose1d/2d/3d``; ``_n`` is the number of spatial dims."""

    _n: ClassVar[int]
    hparam_names = (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "bias",
        "dilation",
    )

    def __init__(
        self,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, ...] = 1,
        *,
        in_channels: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind, n = self.kind, self._n
        self.out_channels = positive_int(out_channels, "out_channels", kind)
        if in_channels is not None:
            positive_int(in_channels, "in_channels", kind)
        self.in_channels = in_channels
        self.kernel_size = normalize_kernel(kernel_size, n, kind)
        self.stride = normalize_ints(stride, n, "stride", kind)
        self.padding = normalize_transpose_padding(padding, n, kind)
        self.dilation = normalize_ints(dilation, n, "dilation", kind)
        self.output_padding = normalize_output_padding(
            output_padding, self.stride, self.dilation, kind
        )
        self.groups = check_groups(groups, self.out_channels, in_channels, kind)
        self.bias = bool(bias)

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return conv_transpose_output(
            x,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
            self.groups,
            self.in_channels,
        )

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:  # type: ignore[override]
        return conv_transpose_params(
            x, self.out_channels, self.kernel_size, self.groups, self.bias, self.in_channels
        )

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
        return ops.conv_transpose(
            x,
            params["weight"],
            params.get("bias"),
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
            self.groups,
        )

    def describe(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if self.in_channels is None and inputs and inputs[0].ndim > 1:
            hp["in_channels"] = inputs[0].shape[1]
        return hp


class ConvTranspose1d(_ConvTransposeNd):
    """1-d transposed convolution: input ``(N, C_in, L)``, output ``(N,
    out_channels, L_out)`` with ``L_out = (L - 1)*stride - 2*padding +
    dilation*(kernel_size - 1) + output_padding + 1``; weight ``(C_in,
    out_channels/groups, kernel_size)``.

    ``in_channels`` is inferred from the input when omitted, checked when given.
    Initialization is PyTorch's (torch takes the fans from the weight as laid
    out: ``fan_in = out_channels/groups * kernel_size``).
    """

    _n = 1
    expected_ndim = 3


class ConvTranspose2d(_ConvTransposeNd):
    """2-d transposed convolution: input ``(N, C_in, H, W)``, output ``(N,
    out_channels, H_out, W_out)``, each spatial dim ``(d - 1)*stride - 2*padding +
    dilation*(k - 1) + output_padding + 1``; weight ``(C_in, out_channels/groups,
    kH, kW)``.

    ``in_channels`` is inferred from the input when omitted, checked when given.
    Initialization is PyTorch's.
    """

    _n = 2
    expected_ndim = 4


class ConvTranspose3d(_ConvTransposeNd):
    """3-d transposed convolution: input ``(N, C_in, D, H, W)``, output ``(N,
    out_channels, D_out, H_out, W_out)``, each spatial dim ``(d - 1)*stride -
    2*padding + dilation*(k - 1) + output_padding + 1``; weight ``(C_in,
    out_channels/groups, kD, kH, kW)``.

    ``in_channels`` is inferred from the input when omitted, checked when given.
    Initialization is PyTorch's.
    """

    _n = 3
    expected_ndim = 5
