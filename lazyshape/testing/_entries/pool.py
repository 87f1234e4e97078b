"""Harness entries of the pools: ``MaxPool1d/2d/3d``, ``AvgPool1d/2d/3d``,
``AdaptiveAvgPool1d/2d/3d``.

Oracles: ``torch.nn.functional`` pooling, ``jax.lax.reduce_window`` under
``jax.eval_shape`` (floor mode: ``lax`` has no ceil mode; JAX has no adaptive
pooling), ONNX ``MaxPool`` / ``AveragePool`` / ``GlobalAveragePool``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from lazyshape.layers.pool import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)

from .._onnx import BUILDERS, UNSUPPORTED, Graph, onnx_oracle
from .._oracles import (
    jax_oracle,
    require_batched,
    require_float,
    require_nonempty,
    torch_oracle,
)
from .._primitives import Specs
from .._registry import Deviation, NotApplicable, register
from ..strategies import batch_sizes
from ._common import NON_FLOAT, is_float, spec, spec_of

_MAX_SIDE = {1: 8, 2: 6, 3: 4}
CEIL_MODE = (
    "ONNX's ceil_mode keeps a last window that starts in the right padding; torch "
    "(and lazyshape) drop it, so the shapes differ (e.g. L=1, k=2, s=2, p=1: ONNX 2, torch 1)"
)


def _n(layer: Any) -> int:
    return int(layer.n)


# -- strategies --------------------------------------------------------------------


@st.composite
def _pool_args(draw: Any, n: int, dilation: bool) -> dict[str, Any]:
    k = draw(st.tuples(*[st.integers(1, 3)] * n))
    args: dict[str, Any] = {"kernel_size": draw(st.sampled_from([k, k[0]])) if len(set(k)) == 1
                            else k}
    stride = draw(st.none() | st.tuples(*[st.integers(1, 3)] * n))
    args["stride"] = stride
    args["padding"] = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    if dilation:
        args["dilation"] = draw(st.tuples(*[st.integers(1, 2)] * n))
    args["ceil_mode"] = draw(st.booleans())
    return args


def _max_layers(cls: Any) -> Any:
    return _pool_args(cls.n, True).map(lambda a: cls(**a))


def _avg_layers(cls: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Any:
        args = draw(_pool_args(cls.n, False))
        args["count_include_pad"] = draw(st.booleans())
        if cls is not AvgPool1d:
            args["divisor_override"] = draw(st.none() | st.integers(1, 4))
        return cls(**args)

    return build()


def _adaptive_layers(cls: Any) -> Any:
    n = cls.n
    entry = st.integers(1, 4) if n == 1 else st.none() | st.integers(1, 4)
    return st.one_of(st.integers(1, 4), st.tuples(*[entry] * n)).map(cls)


def _min_side(layer: Any, i: int) -> int:
    if not hasattr(layer, "kernel_size"):
        return 1
    k, p = layer.kernel_size[i], layer.padding[i]
    dil = layer.dilation[i] if hasattr(layer, "dilation") else 1
    need = max(1, dil * (k - 1) + 1 - 2 * p)
    if isinstance(layer, AvgPool3d):
        need = max(need, k)  # torch's avg_pool3d: input >= kernel, padding notwithstanding
    return int(need)


@st.composite
def _valid(draw: Any, layer: Any) -> Specs:
    n = _n(layer)
    spatial = []
    for i in range(n):
        lo = _min_side(layer, i)
        spatial.append(draw(st.integers(lo, max(lo, _MAX_SIDE[n]))))
    return (spec((draw(batch_sizes()), draw(st.integers(1, 3)), *spatial)),)


def _inputs(layer: Any) -> Any:
    return _valid(layer)


@st.composite
def _broken(draw: Any, layer: Any) -> Specs:
    (x,) = draw(_valid(layer))
    shape = list(x.shape)
    n = _n(layer)
    # with ceil_mode torch keeps a window that starts inside the input even when it
    # overhangs the padding: a too-small input is for the probes (oracle) to judge
    small = [] if getattr(layer, "ceil_mode", False) else [
        i for i in range(n) if _min_side(layer, i) > 1
    ]
    hows = ["dtype", "unbatched", "rank", "zero"] + (["small"] if small else [])
    how = draw(st.sampled_from(hows))
    if how == "dtype":
        return (spec(shape, draw(st.sampled_from(NON_FLOAT))),)
    if how == "unbatched":
        return (spec(shape[1:]),)
    if how == "rank":
        return (spec((*shape, 2)),)
    if how == "small":
        i = draw(st.sampled_from(small))
        shape[i + 2] = _min_side(layer, i) - 1
        return (spec(shape),)
    shape[draw(st.integers(2, n + 1))] = 0
    return (spec(shape),)


def _invalid(layer: Any) -> Any:
    return _broken(layer)


# -- torch ----------------------------------------------------------------------------


def _t_max(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    n = _n(layer)
    s = spec_of(x)
    require_batched(s, n + 2)
    require_float(s)
    f = getattr(F, f"max_pool{n}d")
    return f(x, layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)


def _t_avg(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    n = _n(layer)
    s = spec_of(x)
    require_batched(s, n + 2)
    require_float(s)
    f = getattr(F, f"avg_pool{n}d")
    args = [x, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
            layer.count_include_pad]
    if n > 1:
        args.append(layer.divisor_override)
    return f(*args)


def _t_adaptive(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    n = _n(layer)
    s = spec_of(x)
    require_batched(s, n + 2)
    require_float(s)
    size = layer.output_size[0] if n == 1 else layer.output_size
    if torch_adaptive_fast_path(tuple(x.shape), layer.output_size):
        raise Deviation("torch's adaptive average pools skip their non-empty check when "
                        "every output size is 1 (a mean) or the input's (a copy); "
                        "lazyshape keeps it")
    return getattr(F, f"adaptive_avg_pool{n}d")(x, size)


def torch_adaptive_fast_path(shape: tuple[int, ...], output_size: tuple[int | None, ...]) -> bool:
    """Whether torch takes an empty ``(N, C, *spatial)`` input to an adaptive
    average pool by a fast path that skips its non-empty check: every output
    size 1 (a mean), or every output size the input's (``None`` keeps it)."""
    spatial = shape[2:]
    out = tuple(d if o is None else o for d, o in zip(spatial, output_size, strict=True))
    checked = shape[1:] if len(spatial) == 3 else spatial  # (1-d, 2-d: channels may be 0)
    return 0 in checked and (all(o == 1 for o in out) or out == spatial)


# -- JAX ---------------------------------------------------------------------------------


def _j_pool(op: str) -> Any:
    def fn(layer: Any, x: Any) -> Any:
        import jax
        import jax.numpy as jnp

        if layer.ceil_mode:
            raise NotApplicable("jax.lax.reduce_window has no ceil mode")
        n = _n(layer)
        if x.ndim != n + 2:
            raise ValueError(f"expected {n + 2} dims")
        require_nonempty(x.shape, 1)
        if isinstance(layer, AvgPool3d) and any(
                d < k for d, k in zip(x.shape[2:], layer.kernel_size, strict=True)):
            raise Deviation("torch's avg_pool3d requires every input dim >= kernel_size, "
                            "padding notwithstanding; lax.reduce_window pads first")
        dil = layer.dilation if hasattr(layer, "dilation") else (1,) * n
        init, reducer = (-jnp.inf, jax.lax.max) if op == "max" else (0.0, jax.lax.add)
        y = jax.lax.reduce_window(
            x, jnp.asarray(init, x.dtype), reducer, (1, 1, *layer.kernel_size),
            (1, 1, *layer.stride), ((0, 0), (0, 0), *((p, p) for p in layer.padding)),
            window_dilation=(1, 1, *dil),
        )
        require_nonempty(y.shape)
        return y

    return fn


# -- ONNX ----------------------------------------------------------------------------


def _onnx_pool(op: str) -> Any:
    def build(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
        if layer.ceil_mode:
            raise NotApplicable(CEIL_MODE)
        attrs: dict[str, Any] = {
            "kernel_shape": list(layer.kernel_size),
            "strides": list(layer.stride),
            "pads": list(layer.padding) * 2,
            "ceil_mode": int(layer.ceil_mode),
        }
        if op == "MaxPool":
            attrs["dilations"] = list(layer.dilation)
        else:
            if getattr(layer, "divisor_override", None) is not None:
                raise NotApplicable("ONNX AveragePool has no divisor_override")
            attrs["count_include_pad"] = int(layer.count_include_pad)
        return g.node(op, xs, **attrs)

    return build


def _onnx_adaptive(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    if any(o != 1 for o in layer.output_size):
        raise NotApplicable(UNSUPPORTED["AdaptiveAvgPool2d"])
    return g.node("GlobalAveragePool", xs)


# -- registration ---------------------------------------------------------------------

_cls: Any
for _cls in (MaxPool1d, MaxPool2d, MaxPool3d):
    register(_cls, layers=_max_layers(_cls), inputs=_inputs, invalid=_invalid,
             oracles=(torch_oracle(_t_max), jax_oracle(_j_pool("max")), onnx_oracle()),
             accepts=lambda s, n=_cls.n: s.ndim == n + 2 and is_float(s))
    BUILDERS[_cls.__name__] = _onnx_pool("MaxPool")

for _cls in (AvgPool1d, AvgPool2d, AvgPool3d):
    register(_cls, layers=_avg_layers(_cls), inputs=_inputs, invalid=_invalid,
             oracles=(torch_oracle(_t_avg), jax_oracle(_j_pool("avg")), onnx_oracle()),
             accepts=lambda s, n=_cls.n: s.ndim == n + 2 and is_float(s))
    BUILDERS[_cls.__name__] = _onnx_pool("AveragePool")

for _cls in (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d):
    register(_cls, layers=_adaptive_layers(_cls), inputs=_inputs, invalid=_invalid,
             oracles=(torch_oracle(_t_adaptive), onnx_oracle()),
             accepts=lambda s, n=_cls.n: s.ndim == n + 2 and is_float(s))
    BUILDERS[_cls.__name__] = _onnx_adaptive
    UNSUPPORTED[_cls.__name__] = (
        "ONNX has no adaptive pooling: only output_size 1 maps to GlobalAveragePool"
    )
