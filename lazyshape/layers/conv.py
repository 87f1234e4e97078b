"""Convolutions whose input channels are inferred: ``Conv1d/2d/3d`` and
``ConvTranspose1d/2d/3d`` (PyTorch's names, arguments and initialization).

The module holds the hyperparameter normalisers, the checks, the shape and
parameter rules (pure functions of specs and hyperparameters), then the
layer classes.

Inputs are batched and channels-first, ``(N, C, *spatial)``. A convolution's
weight is ``(out_channels, in_channels/groups, *kernel_size)``; a transposed
convolution's is ``(in_channels, out_channels/groups, *kernel_size)``.
Padding is normalised once, at construction, to explicit ``(lo, hi)`` pairs
per spatial dim (``"same"`` splits odd totals as torch does: the extra element
goes on the high side).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .. import ops
from .._cost import Cost
from .._dims import Dim, bounds, eq, format_dim, format_shape, prod, shifted_floordiv
from .._errors import ShapeError
from .._init import Initializer, fan_in_uniform, kaiming_uniform
from .._layer import Layer, assume_at_least
from .._specs import ParamSpec, TensorSpec
from ._common import (
    FLOATING,
    LAYOUTS,
    assume_equal,
    at_least,
    check_floating,
    check_rank,
    int_tuple,
    positive_int,
)

__all__ = [
    "Conv1d",
    "conv_costs",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "PADDING_MODES",
    "CONV_WEIGHT_INIT",
    "Pads",
    "normalize_padding",
    "normalize_transpose_padding",
    "normalize_output_padding",
    "check_groups",
    "check_padding_mode",
    "conv_out_dim",
    "conv_transpose_out_dim",
    "conv_output",
    "conv_room",
    "conv_rooms",
    "room_out_dim",
    "conv_params",
    "conv_transpose_output",
    "conv_transpose_params",
]


#: torch's ``padding_mode`` values for ``nn.Conv*d``.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

#: PyTorch's ``_ConvNd.reset_parameters``: weight ``kaiming_uniform(a=sqrt(5))``.
CONV_WEIGHT_INIT: Initializer = kaiming_uniform(a=math.sqrt(5))

#: explicit ``(lo, hi)`` padding per spatial dim
Pads = tuple[tuple[int, int], ...]



# -- 1. hyperparameter normalisers (at construction) ----------------------------


def _ints(n: int) -> str:
    return "1 int" if n == 1 else f"{n} ints"


def normalize_padding(
    padding: object,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    kind: str,
) -> tuple[tuple[int, ...] | str, Pads]:
    """``padding`` of a convolution as ``(shown, pads)``: ``shown`` is the tuple or
    string torch keeps, ``pads`` the explicit ``(lo, hi)`` pair of each dim.

    ``"valid"`` is no padding; ``"same"`` (stride 1 only, as torch) pads
    ``dil*(k-1)`` in total, ``lo = total // 2`` and ``hi = total - lo``."""
    n = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return padding, ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ShapeError(
                    "`stride` of 1 with padding='same' (torch does not support 'same' "
                    "for strided convolutions)",
                    f"`stride` (={stride})",
                    kind=kind,
                )
            pads = []
            for k, d in zip(kernel_size, dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return padding, tuple(pads)
        raise ShapeError(
            f"`padding` to be an int, a tuple of {_ints(n)}, 'same' or 'valid'",
            f"`padding` (={padding!r})",
            kind=kind,
        )
    p = int_tuple(padding, n, "padding", kind, minimum=0)
    return p, tuple((v, v) for v in p)


def normalize_transpose_padding(padding: object, n: int, kind: str) -> tuple[int, ...]:
    """``padding`` of a transposed convolution: an int or ``n`` ints ``>= 0``
    (torch's transposed convolutions take no padding strings)."""
    if isinstance(padding, str):
        raise ShapeError(
            f"`padding` to be an int or a tuple of {_ints(n)} (transposed convolutions "
            "take no padding strings)",
            f"`padding` (={padding!r})",
            kind=kind,
        )
    return int_tuple(padding, n, "padding", kind, minimum=0)


def normalize_output_padding(
    output_padding: object,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    kind: str,
) -> tuple[int, ...]:
    """``output_padding``: ``>= 0`` and, in every dim, smaller than the stride or
    the dilation (torch's check)."""
    op = int_tuple(output_padding, len(stride), "output_padding", kind, minimum=0)
    if any(o >= s and o >= d for o, s, d in zip(op, stride, dilation, strict=True)):
        raise ShapeError(
            "`output_padding` smaller than `stride` or `dilation` in every dim",
            f"`output_padding` (={op}), `stride` (={stride}), `dilation` (={dilation})",
            kind=kind,
        )
    return op


# -- 2. validation ----------------------------------------------------------------


def check_groups(
    groups: object, out_channels: int, in_channels: int | None, kind: str
) -> int:
    """``groups`` positive, dividing ``out_channels`` and (when given) ``in_channels``."""
    if type(groups) is not int or groups <= 0:
        raise ShapeError("`groups` to be a positive int", f"`groups` (={groups!r})", kind=kind)
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value is not None and value % groups:
            raise ShapeError(
                f"`{name}` divisible by `groups`",
                f"`{name}` (={value}), `groups` (={groups})",
                kind=kind,
            )
    return groups


def check_padding_mode(padding_mode: object, kind: str) -> str:
    """``padding_mode`` one of torch's four."""
    if padding_mode not in PADDING_MODES:
        raise ShapeError(
            f"`padding_mode` one of {', '.join(repr(m) for m in PADDING_MODES)}",
            f"`padding_mode` (={padding_mode!r})",
            kind=kind,
        )
    return str(padding_mode)


def _check_input(x: TensorSpec, n: int, in_channels: int | None, groups: int) -> Dim:
    """A floating ``(N, C, *spatial)`` input with ``C`` input channels (checked
    against ``in_channels``, divisible by ``groups``) and non-empty spatial dims;
    returns ``C``."""
    if len(x.shape) != n + 2:
        check_rank(x, n + 2, LAYOUTS[n])
    if x.dtype not in FLOATING:
        check_floating(x)
    shape = x.shape
    c = shape[1]
    if in_channels is not None:
        if c is not in_channels:
            same = eq(c, in_channels)
            if same is False:
                raise ShapeError(
                    f"expected {in_channels} input channels (in_channels) in dim 1",
                    f"input shape {format_shape(shape)}",
                )
            if same is None:
                assume_equal(c, in_channels)
        c = in_channels
    elif type(c) is int:
        if c == 0:
            raise ShapeError(
                "expected at least one input channel (dim 1)", f"input shape {format_shape(shape)}"
            )
        if c % groups:
            raise ShapeError(
                "input channels (dim 1) divisible by `groups`",
                f"input shape {format_shape(shape)}, `groups` (={groups})",
            )
    elif groups != 1:
        rem = c % groups
        if eq(rem, 0) is False:
            raise ShapeError(
                "input channels (dim 1) divisible by `groups`",
                f"input shape {format_shape(shape)}, `groups` (={groups})",
            )
        if type(rem) is not int:
            assume_equal(rem, 0)
    for i, d in enumerate(shape[2:], start=2):
        if type(d) is int and d == 0:  # symbols are >= 1: only a literal 0 is empty
            raise ShapeError(
                "expected non-empty spatial dims",
                f"input shape {format_shape(shape)} (dim {i} is 0)",
            )
    return c


def _check_padding_fits(x: TensorSpec, pads: Pads, padding_mode: str) -> None:
    """torch's ``F.pad`` limits: ``reflect`` pads less than the dim, ``circular``
    at most the dim (for symbolic dims, only a provable violation fails)."""
    for i, (d, (lo, hi)) in enumerate(zip(x.shape[2:], pads, strict=True), start=2):
        p = max(lo, hi)
        if padding_mode == "reflect" and not at_least(d, p + 1):
            need = "smaller than"
        elif padding_mode == "circular" and not at_least(d, p):
            need = "at most"
        else:
            continue
        raise ShapeError(
            f"padding_mode={padding_mode!r} needs padding {need} the input dim",
            f"padding ({lo}, {hi}) for dim {i} of input shape {format_shape(x.shape)}",
        )


# -- 3. shape computation ----------------------------------------------------------


def conv_out_dim(
    d: Dim, kernel: int, stride: int = 1, padding: int | tuple[int, int] = 0, dilation: int = 1
) -> Dim:
    """``(d + 2p - dil*(k-1) - 1) // s + 1``; ``padding`` is ``p`` or a ``(lo, hi)``
    pair, counted as ``lo + hi``. Computed as `room_out_dim` of `conv_room`."""
    lo, hi = (padding, padding) if isinstance(padding, int) else padding
    return room_out_dim(d, conv_room(kernel, (lo, hi), dilation), stride)


def conv_room(kernel: int, pads: tuple[int, int], dilation: int) -> int:
    """``lo + hi - (dil*(k-1) + 1)``: the padded size less the dilated kernel's
    extent, beyond the input size; fixed by the hyperparameters (layers compute
    it once per spatial dim, `conv_rooms`). An output needs ``d + room >= 0``."""
    lo, hi = pads
    return lo + hi - (dilation * (kernel - 1) + 1)


def room_out_dim(d: Dim, room: int, stride: int) -> Dim:
    """A convolution's output size from its `conv_room`: ``(d + room)//s + 1``
    (`conv_out_dim`'s formula). A stride-1 symbolic dim needs no division:
    ``d + room + 1``, just ``d`` for a "same" convolution."""
    if stride == 1 and type(d) is not int:
        return d if room == -1 else d + (room + 1)
    return shifted_floordiv(d, room, stride, 1)


def conv_transpose_out_dim(
    d: Dim,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> Dim:
    """``(d - 1)*s - 2p + dil*(k-1) + output_padding + 1``."""
    return (d - 1) * stride + (dilation * (kernel - 1) + output_padding + 1 - 2 * padding)


def conv_rooms(
    kernel_size: tuple[int, ...], pads: Pads, dilation: tuple[int, ...]
) -> tuple[int, ...]:
    """`conv_room` of every spatial dim."""
    return tuple(
        conv_room(k, pad, dil) for k, pad, dil in zip(kernel_size, pads, dilation, strict=True)
    )


def conv_output(
    x: TensorSpec,
    out_channels: int,
    stride: tuple[int, ...],
    pads: Pads,
    rooms: tuple[int, ...],
    groups: int,
    padding_mode: str,
    in_channels: int | None,
) -> TensorSpec:
    """``(N, C, *d) -> (N, out_channels, *conv_out_dim(d))``, with ``rooms`` from
    `conv_rooms`."""
    n = len(stride)
    _check_input(x, n, in_channels, groups)
    if padding_mode != "zeros":
        _check_padding_fits(x, pads, padding_mode)
    spatial: list[Dim] = []
    for d, s, room in zip(x.shape[2:], stride, rooms, strict=False):  # (rank checked)
        # an output needs `d + room >= 0`; for a symbolic dim, decided from its
        # bounds shifted by `room` (no sum built), assumed when undecidable
        if type(d) is int:
            if d + room >= 0:
                spatial.append(room_out_dim(d, room, s))
                continue
        else:
            lo, hi = bounds(d)
            if hi + room >= 0:
                if lo + room < 0:
                    assume_at_least(d, -room)
                # (a stride-1 "same" convolution keeps the dim: `room_out_dim`'s answer)
                spatial.append(d if room == -1 and s == 1 else room_out_dim(d, room, s))
                continue
        i = 2 + len(spatial)
        lo, hi = pads[i - 2]
        raise ShapeError(
            "the padded input at least as large as the dilated kernel in every spatial "
            "dim (an output size >= 1)",
            f"padded size {format_dim(d + (lo + hi))} < kernel extent {lo + hi - room} in dim "
            f"{i} of input shape {format_shape(x.shape)}",
        )
    return TensorSpec._make((x.shape[0], out_channels, *spatial), x.dtype)


def conv_transpose_output(
    x: TensorSpec,
    out_channels: int,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    in_channels: int | None,
) -> TensorSpec:
    """``(N, C, *d) -> (N, out_channels, *conv_transpose_out_dim(d))``."""
    n = len(kernel_size)
    _check_input(x, n, in_channels, groups)
    spatial = []
    for i, (d, k, s, p, op, dil) in enumerate(
        zip(x.shape[2:], kernel_size, stride, padding, output_padding, dilation, strict=True),
        start=2,
    ):
        out = conv_transpose_out_dim(d, k, s, p, op, dil)
        if not at_least(out, 1):
            raise ShapeError(
                "an output size >= 1 in every spatial dim: (d - 1)*stride - 2*padding + "
                "dilation*(kernel_size - 1) + output_padding + 1",
                f"{format_dim(out)} for dim {i} of input shape {format_shape(x.shape)}",
            )
        spatial.append(out)
    return TensorSpec._make((x.shape[0], out_channels, *spatial), x.dtype)


# -- 4. parameter rule ----------------------------------------------------------------


def _bias(out_channels: int, fan_in: Dim) -> ParamSpec:
    return ParamSpec._make((out_channels,), None, fan_in_uniform(fan_in))


def conv_params(
    x: TensorSpec,
    out_channels: int,
    kernel_size: Sequence[int],
    groups: int,
    bias: bool,
    in_channels: int | None,
) -> dict[str, ParamSpec]:
    """weight ``(out_channels, in_channels/groups, *kernel_size)``, bias
    ``(out_channels,)``: PyTorch's ``_ConvNd.reset_parameters`` (kaiming_uniform
    with ``a=sqrt(5)``; bias ``U(±1/sqrt(fan_in))``, ``fan_in = in/groups * prod(k)``)."""
    c = x.shape[1] if in_channels is None else in_channels
    return dict(_conv_params(out_channels, c // groups, tuple(kernel_size), bias))


@functools.lru_cache(maxsize=512)
def _conv_params(
    out_channels: int, per_group: Dim, kernel_size: tuple[int, ...], bias: bool
) -> dict[str, ParamSpec]:
    # Specs are immutable values: layers of one size share them (callers copy the dict).
    params = {
        "weight": ParamSpec._make((out_channels, per_group, *kernel_size), None, CONV_WEIGHT_INIT)
    }
    if bias:
        params["bias"] = _bias(out_channels, per_group * prod(kernel_size))
    return params


def conv_transpose_params(
    x: TensorSpec,
    out_channels: int,
    kernel_size: Sequence[int],
    groups: int,
    bias: bool,
    in_channels: int | None,
) -> dict[str, ParamSpec]:
    """weight ``(in_channels, out_channels/groups, *kernel_size)``, bias
    ``(out_channels,)``: torch computes the fans from the weight as laid out, so
    ``fan_in = out_channels/groups * prod(kernel_size)``."""
    c = x.shape[1] if in_channels is None else in_channels
    per_group = out_channels // groups
    params = {"weight": ParamSpec._make((c, per_group, *kernel_size), None, CONV_WEIGHT_INIT)}
    if bias:
        params["bias"] = _bias(out_channels, per_group * prod(kernel_size))
    return params


# -- layers ----------------------------------------------------------------------


# torch's padding_mode -> the mode of `ls.ops.pad`
_PAD_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def conv_costs(x: TensorSpec, out: TensorSpec, out_channels: int, kernel_size: tuple[int, ...],
               groups: int, transposed: bool) -> Cost:
    """A convolution's FLOPs as FlopCounterMode counts them: ``2 * N * C_in *
    (C_out / groups) * prod(kernel) * prod(S)``, where ``S`` is the output's
    spatial size (the input's for a transposed convolution); the bias is not
    counted. Its input's gradient costs as much again, its weight's ``groups``
    times as much. ``x`` is ``(N, C_in, *S_in)`` or unbatched ``(C_in, *S_in)``."""
    n = len(kernel_size)
    return _conv_cost(2 * math.prod(kernel_size) * (out_channels // groups), groups,
                      (x.shape[-n - 1], *x.shape[:-n - 1], *(x if transposed else out).shape[-n:]))


@functools.lru_cache(maxsize=1024)
def _conv_cost(per_position: int, groups: int, sizes: tuple[Dim, ...]) -> Cost:
    """`conv_costs` from ``2 * prod(kernel) * C_out/groups``, ``groups`` and the
    sizes ``(C_in, *batch, *S)`` (a pure, bounded memo: the same convolution,
    block after block or model after model, is one lookup)."""
    flops = prod((per_position, *sizes))
    return Cost(flops, ((0, flops), ("weight", flops if groups == 1 else flops * groups)))


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
        self.kernel_size = int_tuple(kernel_size, n, "kernel_size", kind)
        self.stride = int_tuple(stride, n, "stride", kind)
        self.dilation = int_tuple(dilation, n, "dilation", kind)
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

    def output_spec(self, x: TensorSpec) -> TensorSpec:
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

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return conv_params(
            x, self.out_channels, self.kernel_size, self.groups, self.bias, self.in_channels
        )

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        pads = self._pads
        if self._pad_mode is not None:  # torch pads first, then convolves unpadded
            x = ops.pad(x, pads, self._pad_mode)
            pads = self._no_pads
        return ops.conv(
            x, params["weight"], params.get("bias"), self.stride, pads, self.dilation, self.groups
        )

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        return (conv_costs(inputs[0], outputs[0], self.out_channels, self.kernel_size,
                           self.groups, transposed=False),)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
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
        self.kernel_size = int_tuple(kernel_size, n, "kernel_size", kind)
        self.stride = int_tuple(stride, n, "stride", kind)
        self.padding = normalize_transpose_padding(padding, n, kind)
        self.dilation = int_tuple(dilation, n, "dilation", kind)
        self.output_padding = normalize_output_padding(
            output_padding, self.stride, self.dilation, kind
        )
        self.groups = check_groups(groups, self.out_channels, in_channels, kind)
        self.bias = bool(bias)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
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

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return conv_transpose_params(
            x, self.out_channels, self.kernel_size, self.groups, self.bias, self.in_channels
        )

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
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

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        return (conv_costs(inputs[0], outputs[0], self.out_channels, self.kernel_size,
                           self.groups, transposed=True),)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
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
