"""Harness entries of the activation family: the activations, ``Softmax``,
``Dropout`` and ``Identity``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lazyshape as ls

from .._registry import register
from ._common import FLOAT, NON_FLOAT, is_float, one, oracles, rank_at_least, spec


def _any_shape(layer: Any) -> Any:
    return one(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))


def _float_invalid(layer: Any) -> Any:
    shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
    return st.tuples(shape, st.sampled_from(NON_FLOAT)).map(lambda t: (spec(*t),))


for _tp, _hp in [
    (ls.ReLU, st.builds(ls.ReLU)),
    (ls.Tanh, st.builds(ls.Tanh)),
    (ls.Sigmoid, st.builds(ls.Sigmoid)),
    (ls.SiLU, st.builds(ls.SiLU)),
    (ls.GELU, st.builds(ls.GELU, st.sampled_from(["none", "tanh"]))),
    (ls.LeakyReLU, st.builds(ls.LeakyReLU, st.sampled_from([0.01, 0.2, 1.0, -0.5]))),
    (ls.Dropout, st.builds(ls.Dropout, st.sampled_from([0.0, 0.3, 0.5, 1.0]))),
]:
    register(
        _tp,
        layers=_hp,
        inputs=_any_shape,
        invalid=_float_invalid,
        oracles=oracles(_tp.__name__),
        accepts=is_float,
    )

register(
    ls.Identity,
    layers=st.builds(ls.Identity),
    inputs=lambda layer: st.tuples(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4),
        st.sampled_from([FLOAT, "int64", "bool"]),
    ).map(lambda t: (spec(*t),)),
    oracles=oracles("Identity"),
)


def _softmax_inputs(layer: Any) -> Any:
    need = layer.dim + 1 if layer.dim >= 0 else -layer.dim
    return one(rank_at_least(max(1, need)))


def _softmax_invalid(layer: Any) -> Any:
    need = layer.dim + 1 if layer.dim >= 0 else -layer.dim
    too_small = hnp.array_shapes(min_dims=max(1, need - 1), max_dims=max(1, need - 1),
                                 min_side=1, max_side=4) if need > 1 else st.nothing()
    return st.one_of(one(too_small), _softmax_inputs(layer).map(lambda xs: (
        spec(xs[0].shape, "int64"),)))


register(
    ls.Softmax,
    layers=st.builds(ls.Softmax, st.integers(-3, 2)),
    inputs=_softmax_inputs,
    invalid=_softmax_invalid,
    oracles=oracles("Softmax"),
    accepts=is_float,
)


