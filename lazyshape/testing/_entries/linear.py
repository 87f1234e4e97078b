"""Harness entries of the linear family: ``Linear``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import lazyshape as ls

from .._registry import register
from ..strategies import sides
from ._common import NON_FLOAT, is_float, leading, oracles, spec


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


