"""Harness entries of the linear family: ``Linear``, ``LayerScale``.

``LayerScale``'s oracles are here: ``x * gamma`` with torch and with
``jax.numpy`` under ``jax.eval_shape``, ONNX ``Mul``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import lazyshape as ls

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import jax_oracle, jax_param, require_float, torch_oracle, torch_param
from .._primitives import Specs
from .._registry import Deviation, register
from ..strategies import sides
from ._common import NON_FLOAT, is_float, leading, oracles, spec, spec_of


def _linear_inputs(layer: Any) -> Any:
    last = st.just(layer.in_features) if layer.in_features is not None else sides(1, 6)
    return st.tuples(leading(0, 3), last).map(lambda t: (spec((*t[0], t[1])),))


def _linear_invalid(layer: Any) -> Any:
    cases = [
        st.just((spec(()),)),  # no feature dim
        _linear_inputs(layer).flatmap(
            lambda xs: st.sampled_from(NON_FLOAT).map(lambda d: (spec(xs[0].shape, d),))
        ),
    ]
    if layer.in_features is not None:
        wrong = sides(1, 8).filter(lambda d: d != layer.in_features)
        cases.append(st.tuples(leading(0, 3), wrong).map(lambda t: (spec((*t[0], t[1])),)))
    return st.one_of(cases)


register(
    ls.Linear,
    layers=st.builds(
        ls.Linear,
        sides(1, 6),
        bias=st.booleans(),
        in_features=st.none() | sides(1, 6),
    ),
    inputs=_linear_inputs,
    invalid=_linear_invalid,
    oracles=oracles("Linear"),
    accepts=lambda s: s.ndim >= 1 and is_float(s),
)


# -- LayerScale ---------------------------------------------------------------------


def _layer_scale_inputs(layer: Any) -> Any:
    last = st.just(layer.dim) if layer.dim is not None else sides(1, 6)
    return st.tuples(leading(0, 3), last).map(lambda t: (spec((*t[0], t[1])),))


def _layer_scale_invalid(layer: Any) -> Any:
    cases = [
        st.just((spec(()),)),  # no channel dim
        _layer_scale_inputs(layer).flatmap(
            lambda xs: st.sampled_from(NON_FLOAT).map(lambda d: (spec(xs[0].shape, d),))
        ),
    ]
    if layer.dim is not None:
        wrong = sides(1, 8).filter(lambda d: d != layer.dim)
        cases.append(st.tuples(leading(0, 3), wrong).map(lambda t: (spec((*t[0], t[1])),)))
    return st.one_of(cases)


def _layer_scale_channels(layer: Any, x: Any) -> int:
    """``gamma``'s size, where lazyshape's rule and the framework's broadcast
    ``x * gamma`` part ways (raising `Deviation`)."""
    s = spec_of(x)
    require_float(s)  # (an int input times a float gamma is float in torch)
    if s.ndim == 0:
        raise Deviation("a 0-d input: `x * gamma` broadcasts it to (D,); lazyshape requires a "
                        "channel dim")
    d = layer.dim if layer.dim is not None else int(s.shape[-1])
    if int(s.shape[-1]) != d:
        raise Deviation(f"last dim {s.shape[-1]} and `dim` {d}: `x * gamma` broadcasts a size "
                        "of 1 on either side; lazyshape checks them equal")
    return d


def _t_layer_scale(layer: Any, x: Any) -> Any:
    return x * torch_param(_layer_scale_channels(layer, x), like=x)


def _j_layer_scale(layer: Any, x: Any) -> Any:
    return x * jax_param(_layer_scale_channels(layer, x))


def _onnx_layer_scale(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    (s,) = specs
    d = layer.dim if layer.dim is not None else s.shape[-1]
    return g.node("Mul", [xs[0], g.input((d,), s.dtype)])


register(
    ls.LayerScale,
    layers=st.builds(
        ls.LayerScale,
        st.sampled_from([1e-5, 0.1, 1.0, -0.5]),
        dim=st.none() | sides(1, 6),
    ),
    inputs=_layer_scale_inputs,
    invalid=_layer_scale_invalid,
    oracles=(torch_oracle(_t_layer_scale), jax_oracle(_j_layer_scale), onnx_oracle()),
    accepts=lambda s: s.ndim >= 1 and is_float(s),
)
BUILDERS["LayerScale"] = _onnx_layer_scale
