"""Harness entries of the normalizations: ``BatchNorm1d/2d/3d``,
``InstanceNorm1d/2d/3d``, ``LayerNorm``, ``RMSNorm``, ``GroupNorm``.

The rules raise only what fails in every mode; the torch oracle is the
module in evaluation mode (running statistics when tracked, batch or instance
statistics otherwise). Oracles: torch's own modules / ``F.layer_norm`` /
``F.rms_norm`` / ``F.group_norm``, ``jax.numpy`` statistics under
``jax.eval_shape``, ONNX ``BatchNormalization`` / ``InstanceNormalization`` /
``LayerNormalization`` / ``RMSNormalization`` / ``GroupNormalization``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lazyshape.layers.norm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    RMSNorm,
)

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import jax_oracle, jax_param, require_features, require_float, torch_oracle
from .._primitives import Specs
from .._registry import Deviation, register
from ..strategies import batch_sizes
from ._common import NON_FLOAT, is_float, spec, spec_of

_BATCH = (BatchNorm1d, BatchNorm2d, BatchNorm3d)
_INSTANCE = (InstanceNorm1d, InstanceNorm2d, InstanceNorm3d)


# -- strategies ------------------------------------------------------------------------


def _channel_layers(cls: Any) -> Any:
    return st.builds(
        cls,
        eps=st.sampled_from([1e-5, 1e-3]),
        momentum=st.sampled_from([0.1, None]),
        affine=st.booleans(),
        track_running_stats=st.booleans(),
        num_features=st.none() | st.integers(1, 4),
        bias=st.booleans(),
    )


def _stat_count(layer: Any, shape: tuple[int, ...]) -> int:
    """The values the statistics of this mode-independent check are taken over
    (0 when no check applies)."""
    if isinstance(layer, GroupNorm):
        return shape[0] * (shape[1] // layer.num_groups) * math.prod(shape[2:])
    if getattr(layer, "track_running_stats", True):
        return 0
    if isinstance(layer, _BATCH):
        return shape[0] * math.prod(shape[2:])
    if isinstance(layer, _INSTANCE):
        return math.prod(shape[2:])
    return 0


@st.composite
def _channel_valid(draw: Any, layer: Any) -> Specs:
    if isinstance(layer, GroupNorm):
        given = layer.num_channels
        c = given if given is not None else layer.num_groups * draw(st.integers(1, 2))
        rank = draw(st.integers(2, 4))
    else:
        given = layer.num_features
        c = given if given is not None else draw(st.integers(1, 4))
        rank = draw(st.sampled_from(layer._ranks))
    for _ in range(20):
        shape = (draw(batch_sizes()), c, *draw(hnp.array_shapes(
            min_dims=rank - 2, max_dims=rank - 2, min_side=1, max_side=4)))
        n = _stat_count(layer, shape)
        if n == 0 or n > 1:
            return (spec(shape),)
    return (spec((2, c, *([2] * (rank - 2)))),)


def _channel_invalid(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        (x,) = draw(_channel_valid(layer))
        shape = list(x.shape)
        given = layer.num_channels if isinstance(layer, GroupNorm) else layer.num_features
        hows = ["dtype", "rank"]
        if given is not None:
            hows.append("channels")
        if isinstance(layer, GroupNorm) and layer.num_groups > 1:
            hows.append("groups")
        if _stat_count(layer, tuple(shape)) and len(shape) >= 2:
            hows.append("one value")
        how = draw(st.sampled_from(hows))
        if how == "dtype":
            return (spec(shape, draw(st.sampled_from(NON_FLOAT))),)
        if how == "rank":
            low = min(getattr(layer, "_ranks", (2,)))
            return (spec(shape[: low - 1]),)
        if how == "channels":
            shape[1] = draw(st.integers(1, 6).filter(lambda c: c != given))
        elif how == "groups":
            shape[1] = draw(st.integers(1, 7).filter(lambda c: c % layer.num_groups != 0))
        else:
            shape = [1 if i != 1 else d for i, d in enumerate(shape)]
            if isinstance(layer, GroupNorm):
                shape[1] = layer.num_groups
        return (spec(shape),)

    return build()


def _trailing_layers(cls: Any) -> Any:
    """LayerNorm / RMSNorm layers: by ``normalized_ndim`` or by ``normalized_shape``."""
    extra = ({"bias": st.booleans()} if cls is LayerNorm
             else {"eps": st.none() | st.sampled_from([1e-6, 1e-5])})
    by_ndim = st.builds(cls, normalized_ndim=st.integers(1, 3),
                        elementwise_affine=st.booleans(), **extra)
    by_shape = st.builds(
        cls,
        normalized_shape=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
        elementwise_affine=st.booleans(),
        **extra,
    )
    return st.one_of(by_ndim, by_shape)


@st.composite
def _layer_norm_valid(draw: Any, layer: Any) -> Specs:
    k = layer.normalized_ndim
    tail = layer.normalized_shape or draw(
        hnp.array_shapes(min_dims=k, max_dims=k, min_side=1, max_side=4))
    lead = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3))
    return (spec((*lead, *tail)),)


def _layer_norm_invalid(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        (x,) = draw(_layer_norm_valid(layer))
        shape = list(x.shape)
        hows = ["dtype", "unbatched"] + (["shape"] if layer.normalized_shape else [])
        how = draw(st.sampled_from(hows))
        if how == "dtype":
            return (spec(shape, draw(st.sampled_from(NON_FLOAT))),)
        if how == "unbatched":
            return (spec(shape[len(shape) - layer.normalized_ndim :]),)
        i = len(shape) - 1 - draw(st.integers(0, layer.normalized_ndim - 1))
        shape[i] = draw(st.integers(1, 6).filter(lambda d: d != shape[i]))
        return (spec(shape),)

    return build()


def _group_norm_layers() -> Any:
    @st.composite
    def build(draw: Any) -> Any:
        g = draw(st.integers(1, 3))
        c = draw(st.none() | st.integers(1, 2).map(lambda k: k * g))
        return GroupNorm(g, affine=draw(st.booleans()), num_channels=c, bias=draw(st.booleans()))

    return build()


# -- torch -------------------------------------------------------------------------------


def _t_channel(layer: Any, x: Any) -> Any:
    from torch import nn

    s = spec_of(x)
    if s.ndim not in layer._ranks:  # torch's instance norms also take unbatched inputs
        raise Deviation(f"lazyshape requires {layer._ranks} dims (batched)")
    require_float(s)
    require_features(x.shape[1], "channels")  # torch's non-affine norms take none
    stateless = not layer.affine and not layer.track_running_stats
    if stateless and layer.num_features is not None and x.shape[1] != layer.num_features:
        raise Deviation("the input's channels differ from `num_features`, which torch "
                        "ignores without affine parameters or running stats; lazyshape checks it")
    c = layer.num_features if layer.num_features is not None else x.shape[1]
    mod = getattr(nn, type(layer).__name__)(
        c, layer.eps, layer.momentum, layer.affine, layer.track_running_stats,
        bias=layer.bias, device=x.device)
    mod.eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = mod(x)
    if any("does not match num_features" in str(w.message) for w in caught):
        raise Deviation("the input's channels differ from `num_features`: torch's instance "
                        "norm without affine/running stats only warns; lazyshape rejects")
    return y


def _t_trailing(layer: Any, x: Any) -> Any:
    """``F.layer_norm`` / ``F.rms_norm``."""
    import torch.nn.functional as F

    from .._oracles import torch_param

    k = layer.normalized_ndim
    if x.ndim <= k:
        raise Deviation(f"lazyshape's {layer.kind} requires a batch dim beyond the normalized ones")
    shape = layer.normalized_shape or tuple(x.shape[x.ndim - k :])
    w = torch_param(*shape, like=x) if layer.elementwise_affine else None
    if isinstance(layer, RMSNorm):
        return F.rms_norm(x, shape, w, layer.eps)
    b = torch_param(*shape, like=x) if layer.elementwise_affine and layer.bias else None
    return F.layer_norm(x, shape, w, b, layer.eps)


def _t_group_norm(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    from .._oracles import torch_param

    require_float(spec_of(x))
    if (not layer.affine and layer.num_channels is not None and x.ndim >= 2
            and x.shape[1] != layer.num_channels):
        raise Deviation("the input's channels differ from `num_channels`, which torch "
                        "ignores without affine parameters; lazyshape checks it")
    c = layer.num_channels if layer.num_channels is not None else x.shape[1]
    w = torch_param(c, like=x) if layer.affine else None
    b = torch_param(c, like=x) if layer.affine and layer.bias else None
    return F.group_norm(x, layer.num_groups, w, b, layer.eps)


# -- JAX ----------------------------------------------------------------------------------


def _j_channel(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    if x.ndim not in layer._ranks:
        raise ValueError(f"expected {layer._ranks} dims")
    require_features(x.shape[1], "channels")
    if layer.affine and not isinstance(layer, _BATCH) and x.shape[0] == 0:
        raise Deviation("an empty batch: torch's affine instance norm fails on it (IndexError); "
                        "lazyshape rejects it")
    c = layer.num_features if layer.num_features is not None else x.shape[1]
    per = (c,) + (1,) * (x.ndim - 2)
    axes = (0, *range(2, x.ndim)) if isinstance(layer, _BATCH) else tuple(range(2, x.ndim))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    y = (x - mean) * jax_param(*per)  # a channel count that differs fails to broadcast
    if layer.affine:
        y = y * jax_param(*per)
    return y


def _j_trailing(layer: Any, x: Any) -> Any:
    """LayerNorm / RMSNorm statistics with ``jax.numpy``."""
    import jax.numpy as jnp

    k = layer.normalized_ndim
    if x.ndim <= k:
        raise ValueError("no batch dim")
    shape = layer.normalized_shape or x.shape[x.ndim - k :]
    if tuple(x.shape[x.ndim - k :]) != tuple(shape):
        raise ValueError("normalized shape mismatch")
    axes = tuple(range(x.ndim - k, x.ndim))
    if isinstance(layer, RMSNorm):
        y = x / jnp.sqrt(jnp.mean(x * x, axis=axes, keepdims=True))
    else:
        y = x - jnp.mean(x, axis=axes, keepdims=True)
    return y * jax_param(*shape) if layer.elementwise_affine else y


def _j_group_norm(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    n, c = x.shape[0], x.shape[1]
    g = layer.num_groups
    grouped = jnp.reshape(x, (n, g, c // g, *x.shape[2:]))  # fails unless g divides c
    y = jnp.reshape(grouped - jnp.mean(grouped, axis=tuple(range(2, grouped.ndim)),
                                       keepdims=True), x.shape)
    want = layer.num_channels if layer.num_channels is not None else c
    return y * jax_param(want, *([1] * (x.ndim - 2)))


# -- ONNX ------------------------------------------------------------------------------


def _onnx_channel(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    (s,) = specs
    c = layer.num_features if layer.num_features is not None else s.shape[1]
    if isinstance(layer, _BATCH):
        ins = [xs[0]] + [g.input((c,)) for _ in range(4)]
        return g.node("BatchNormalization", ins, epsilon=layer.eps)
    return g.node("InstanceNormalization", [xs[0], g.input((c,)), g.input((c,))],
                  epsilon=layer.eps)


def _onnx_trailing(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    """``LayerNormalization`` / ``RMSNormalization`` (opset 23)."""
    (s,) = specs
    k = layer.normalized_ndim
    shape = layer.normalized_shape or s.shape[s.ndim - k :]
    ins = [xs[0], g.input(shape)]
    if isinstance(layer, RMSNorm):
        g.opset = max(g.opset, 23)
        attrs: dict[str, Any] = {} if layer.eps is None else {"epsilon": layer.eps}
        return g.node("RMSNormalization", ins, axis=-k, **attrs)
    ins += [g.input(shape)] if layer.bias else []
    return g.node("LayerNormalization", ins, axis=-k, epsilon=layer.eps)[:1]


def _onnx_group_norm(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    (s,) = specs
    c = layer.num_channels if layer.num_channels is not None else s.shape[1]
    return g.node("GroupNormalization", [xs[0], g.input((c,)), g.input((c,))],
                  num_groups=layer.num_groups, epsilon=layer.eps)


# -- registration -----------------------------------------------------------------------

_cls: Any
for _cls in _BATCH + _INSTANCE:
    register(
        _cls,
        layers=_channel_layers(_cls),
        inputs=_channel_valid,
        invalid=_channel_invalid,
        oracles=(torch_oracle(_t_channel), jax_oracle(_j_channel, rejects=False), onnx_oracle()),
        accepts=lambda s, r=_cls._ranks: s.ndim in r and is_float(s),
        atol=1e-4,
    )
    BUILDERS[_cls.__name__] = _onnx_channel

for _cls in (LayerNorm, RMSNorm):
    register(
        _cls,
        layers=_trailing_layers(_cls),
        inputs=_layer_norm_valid,
        invalid=_layer_norm_invalid,
        oracles=(torch_oracle(_t_trailing), jax_oracle(_j_trailing), onnx_oracle()),
        accepts=lambda s: s.ndim >= 2 and is_float(s),
        atol=1e-4,
    )
    BUILDERS[_cls.__name__] = _onnx_trailing

register(
    GroupNorm,
    layers=_group_norm_layers(),
    inputs=_channel_valid,
    invalid=_channel_invalid,
    oracles=(torch_oracle(_t_group_norm), jax_oracle(_j_group_norm, rejects=False), onnx_oracle()),
    accepts=lambda s: s.ndim >= 2 and is_float(s),
    atol=1e-4,
)
BUILDERS["GroupNorm"] = _onnx_group_norm
