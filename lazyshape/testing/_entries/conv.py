"""Harness entries of the convolutions: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``.

Oracles: torch's own ``nn.Conv*d`` / ``nn.ConvTranspose*d`` (built with the
input's channels, as torch's lazy modules infer them), ``jax.lax.conv_general_dilated``
under ``jax.eval_shape`` (a transposed convolution as the dilated-input
convolution it is), and ONNX ``Conv`` / ``ConvTranspose`` (``Pad`` first for
the non-zero padding modes).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from lazyshape.layers.conv import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
)

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import (
    jax_oracle,
    jax_param,
    require_batched,
    require_features,
    require_nonempty,
    torch_oracle,
)
from .._primitives import Specs
from .._registry import NotApplicable, register
from ..strategies import batch_sizes
from ._common import NON_FLOAT, is_float, spec, spec_of

_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _n(layer: Any) -> int:
    return len(layer.kernel_size)


def _max_side(n: int) -> int:
    return {1: 8, 2: 6, 3: 4}[n]


# -- strategies ----------------------------------------------------------------------


def _ints(n: int, lo: int, hi: int) -> Any:
    """An int or a tuple of ``n`` ints in ``[lo, hi]``."""
    return st.one_of(st.integers(lo, hi), st.tuples(*[st.integers(lo, hi)] * n))


def _conv_layers(cls: Any) -> Any:
    n = cls._n

    @st.composite
    def build(draw: Any) -> Any:
        groups = draw(st.sampled_from([1, 1, 2]))
        out = groups * draw(st.integers(1, 3))
        k = draw(_ints(n, 1, 3))
        stride = draw(_ints(n, 1, 2))
        dilation = draw(_ints(n, 1, 2))
        strided = stride != 1 and stride != (1,) * n
        choices = ["int", "int", "valid"] + ([] if strided else ["same"])
        how = draw(st.sampled_from(choices))
        padding: Any = draw(_ints(n, 0, 2)) if how == "int" else how
        mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        in_channels = draw(st.none() | st.integers(1, 3).map(lambda c: c * groups))
        return cls(out, k, stride, padding, dilation, groups, draw(st.booleans()), mode,
                   in_channels=in_channels)

    return build()


def _transpose_layers(cls: Any) -> Any:
    n = cls._n

    @st.composite
    def build(draw: Any) -> Any:
        groups = draw(st.sampled_from([1, 1, 2]))
        out = groups * draw(st.integers(1, 3))
        k = draw(st.tuples(*[st.integers(1, 3)] * n))
        stride = draw(st.tuples(*[st.integers(1, 2)] * n))
        dilation = draw(st.tuples(*[st.integers(1, 2)] * n))
        padding = draw(st.tuples(*[st.integers(0, 2)] * n))
        output_padding = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)
        )
        in_channels = draw(st.none() | st.integers(1, 3).map(lambda c: c * groups))
        return cls(out, k, stride, padding, output_padding, groups, draw(st.booleans()),
                   dilation, in_channels=in_channels)

    return build()


def _channels(layer: Any) -> Any:
    if layer.in_channels is not None:
        return st.just(layer.in_channels)
    return st.integers(1, 3).map(lambda c: c * layer.groups)


def _conv_min_side(layer: Any, i: int) -> int:
    """The smallest spatial size that gives an output (and fits the padding mode)."""
    lo, hi = layer._pads[i]
    extent = layer.dilation[i] * (layer.kernel_size[i] - 1) + 1
    need = max(1, extent - lo - hi)
    if layer.padding_mode == "reflect":
        need = max(need, max(lo, hi) + 1)
    elif layer.padding_mode == "circular":
        need = max(need, max(lo, hi))
    return int(need)


def _transpose_min_side(layer: Any, i: int) -> int:
    s, p, d = layer.stride[i], layer.padding[i], layer.dilation[i]
    k, op = layer.kernel_size[i], layer.output_padding[i]
    for size in range(1, 12):
        if (size - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1:
            return size
    return 12


def _inputs(min_side: Any) -> Any:
    def inputs(layer: Any) -> Any:
        n = _n(layer)

        @st.composite
        def build(draw: Any) -> Specs:
            c = draw(_channels(layer))
            spatial = []
            for i in range(n):
                lo = min_side(layer, i)
                spatial.append(draw(st.integers(lo, max(lo, _max_side(n)))))
            return (spec((draw(batch_sizes()), c, *spatial)),)

        return build()

    return inputs


def _invalid(min_side: Any) -> Any:
    def invalid(layer: Any) -> Any:
        n = _n(layer)
        valid = _inputs(min_side)(layer)

        def breaks(xs: Specs) -> Any:
            shape = list(xs[0].shape)
            cases = [
                st.sampled_from(NON_FLOAT).map(lambda d: (spec(shape, d),)),
                st.just((spec(shape[1:]),)),  # unbatched: torch accepts, lazyshape doesn't
                st.just((spec((*shape, 2)),)),
            ]
            if layer.in_channels is not None:
                cases.append(st.integers(1, 7).filter(lambda c: c != layer.in_channels).map(
                    lambda c: (spec((shape[0], c, *shape[2:])),)))
            elif layer.groups > 1:
                cases.append(st.integers(1, 7).filter(lambda c: c % layer.groups != 0).map(
                    lambda c: (spec((shape[0], c, *shape[2:])),)))
            small = [i for i in range(n) if min_side(layer, i) > 1]
            if small:
                cases.append(st.sampled_from(small).map(
                    lambda i: (spec([*shape[: i + 2], min_side(layer, i) - 1, *shape[i + 3 :]]),)
                ))
            cases.append(st.integers(0, n - 1).map(
                lambda i: (spec([*shape[: i + 2], 0, *shape[i + 3 :]]),)))
            return st.one_of(cases)

        return valid.flatmap(breaks)

    return invalid


# -- torch -------------------------------------------------------------------------


def _t_conv(layer: Any, x: Any) -> Any:
    from torch import nn

    from .._oracles import _torch_dtype

    n = _n(layer)
    require_batched(spec_of(x), n + 2)
    require_features(x.shape[1], "input channels")  # torch: an empty output
    c = layer.in_channels if layer.in_channels is not None else x.shape[1]
    mod = getattr(nn, f"Conv{n}d")(
        c, layer.out_channels, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
        layer.groups, layer.bias, layer.padding_mode, device=x.device,
        dtype=_torch_dtype("float32"),
    )
    return mod(x)


def _t_conv_transpose(layer: Any, x: Any) -> Any:
    from torch import nn

    from .._oracles import _torch_dtype

    n = _n(layer)
    require_batched(spec_of(x), n + 2)
    require_features(x.shape[1], "input channels")  # torch: an empty output
    c = layer.in_channels if layer.in_channels is not None else x.shape[1]
    mod = getattr(nn, f"ConvTranspose{n}d")(
        c, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
        layer.output_padding, layer.groups, layer.bias, layer.dilation, device=x.device,
        dtype=_torch_dtype("float32"),
    )
    y = mod(x)
    # torch's oneDNN kernels return an empty output where its shape check (the
    # reference kernels, float64, meta for 1-d) raises "Output size is too small"
    require_nonempty(y.shape)
    return y


# -- JAX ------------------------------------------------------------------------------


def _dimension_numbers(n: int) -> tuple[str, str, str]:
    sp = "DHW"[3 - n :]
    return (f"NC{sp}", f"OI{sp}", f"NC{sp}")


def _j_conv(layer: Any, x: Any) -> Any:
    import jax
    import jax.numpy as jnp

    n = _n(layer)
    require_features(x.shape[1], "input channels")  # torch: an empty output
    c = layer.in_channels if layer.in_channels is not None else x.shape[1]
    if isinstance(layer.padding, str):
        padding: Any = layer.padding.upper()
    else:
        padding = [(p, p) for p in layer.padding]
    if layer.padding_mode in ("reflect", "circular"):
        raise NotApplicable("jnp.pad reflects and wraps past the input size; torch refuses")
    if layer.padding_mode != "zeros":
        if isinstance(padding, str):
            padding = list(layer._pads)  # "same" around a non-zero mode: pad explicitly
        x = jnp.pad(x, [(0, 0), (0, 0), *padding], mode=_MODES[layer.padding_mode])
        padding = [(0, 0)] * n
    w = jax_param(layer.out_channels, c // layer.groups, *layer.kernel_size)
    y = jax.lax.conv_general_dilated(
        x, w, layer.stride, padding, rhs_dilation=layer.dilation,
        feature_group_count=layer.groups, dimension_numbers=_dimension_numbers(n),
    )
    require_nonempty(x.shape)
    require_nonempty(y.shape)
    if layer.bias:
        y = y + jax_param(layer.out_channels).reshape((-1,) + (1,) * n)
    return y


def _j_conv_transpose(layer: Any, x: Any) -> Any:
    import jax

    n = _n(layer)
    require_features(x.shape[1], "input channels")  # torch: an empty output
    c = layer.in_channels if layer.in_channels is not None else x.shape[1]
    if c % layer.groups:
        raise ValueError("in_channels not divisible by groups")
    # a transposed convolution is a convolution of the stride-dilated input
    pads = [
        (d * (k - 1) - p, d * (k - 1) - p + op)
        for k, p, op, d in zip(layer.kernel_size, layer.padding, layer.output_padding,
                               layer.dilation, strict=True)
    ]
    w = jax_param(layer.out_channels, c // layer.groups, *layer.kernel_size)
    y = jax.lax.conv_general_dilated(
        x, w, (1,) * n, pads, lhs_dilation=layer.stride, rhs_dilation=layer.dilation,
        feature_group_count=layer.groups, dimension_numbers=_dimension_numbers(n),
    )
    require_nonempty(x.shape)
    require_nonempty(y.shape)
    if layer.bias:
        y = y + jax_param(layer.out_channels).reshape((-1,) + (1,) * n)
    return y


# -- ONNX ------------------------------------------------------------------------------


def _onnx_conv(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    (x,), (s,) = xs, specs
    n = _n(layer)
    c = layer.in_channels if layer.in_channels is not None else (s.shape[1] if s.ndim > 1 else 1)
    pads = [lo for lo, _ in layer._pads] + [hi for _, hi in layer._pads]
    if layer.padding_mode != "zeros":
        (x,) = g.node("Pad", [x, g.const([0, 0, *pads[:n], 0, 0, *pads[n:]])],
                      mode=_MODES[layer.padding_mode])
        pads = [0] * (2 * n)
    w = g.input((layer.out_channels, _div(c, layer.groups), *layer.kernel_size))
    ins = [x, w] + ([g.input((layer.out_channels,))] if layer.bias else [])
    return g.node("Conv", ins, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=pads, dilations=list(layer.dilation), group=layer.groups)


def _onnx_conv_transpose(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    (x,), (s,) = xs, specs
    c = layer.in_channels if layer.in_channels is not None else (s.shape[1] if s.ndim > 1 else 1)
    w = g.input((c, layer.out_channels // layer.groups, *layer.kernel_size))
    ins = [x, w] + ([g.input((layer.out_channels,))] if layer.bias else [])
    return g.node("ConvTranspose", ins, kernel_shape=list(layer.kernel_size),
                  strides=list(layer.stride), pads=list(layer.padding) * 2,
                  output_padding=list(layer.output_padding), dilations=list(layer.dilation),
                  group=layer.groups)


def _div(c: Any, groups: int) -> Any:
    return c // groups


# -- registration ------------------------------------------------------------------------

_FAMILIES = (
    ((Conv1d, Conv2d, Conv3d), _conv_layers, _conv_min_side, _t_conv, _j_conv, _onnx_conv),
    ((ConvTranspose1d, ConvTranspose2d, ConvTranspose3d), _transpose_layers,
     _transpose_min_side, _t_conv_transpose, _j_conv_transpose, _onnx_conv_transpose),
)

for _classes, _layers, _min_side, _torch_fn, _jax_fn, _onnx_fn in _FAMILIES:
    for _cls in _classes:
        register(
            _cls,
            layers=_layers(_cls),
            inputs=_inputs(_min_side),
            invalid=_invalid(_min_side),
            oracles=(torch_oracle(_torch_fn), jax_oracle(_jax_fn), onnx_oracle()),
            accepts=lambda s, n=_cls._n: s.ndim == n + 2 and is_float(s),
            atol=1e-4,
        )
        BUILDERS[_cls.__name__] = _onnx_fn
