"""Harness entries of the merge family: ``Add``, ``Multiply``, ``Concat``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lazyshape as ls

from .._primitives import Specs
from .._registry import register
from ._common import oracles, spec


def _broadcast_inputs(layer: Any) -> Any:
    any_ranks = st.integers(2, 3).flatmap(
        lambda n: hnp.mutually_broadcastable_shapes(
            num_shapes=n, min_dims=1, max_dims=3, min_side=1, max_side=4
        )
    ).map(lambda bs: tuple(spec(s) for s in bs.input_shapes))
    # a batch of equal shapes (the residual add): the batch dim can go symbolic
    same = st.tuples(st.integers(2, 3), hnp.array_shapes(min_dims=2, max_dims=3, max_side=4)).map(
        lambda t: tuple(spec(t[1]) for _ in range(t[0]))
    )
    return st.one_of(any_ranks, same)


def _broadcast_invalid(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        shape = list(draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)))
        other = list(shape)
        i = draw(st.integers(0, len(shape) - 1))
        other[i] = draw(st.integers(2, 5).filter(lambda d: d != shape[i]))
        return (spec(shape), spec(other))

    return build()


def _merge_axes(layer: Any, specs: Specs) -> tuple[int | None, ...]:
    # broadcasting aligns from the right: a batch dim only when ranks agree
    ranks = {s.ndim for s in specs}
    if len(ranks) == 1 and next(iter(ranks)) >= 2:
        return (0,) * len(specs)
    return (None,) * len(specs)


for _tp in (ls.Add, ls.Multiply):
    register(
        _tp,
        layers=st.builds(_tp),
        inputs=_broadcast_inputs,
        invalid=_broadcast_invalid,
        oracles=oracles(_tp.__name__),
        batch_axes=_merge_axes,
        chain_arity=None,
    )


def _concat_inputs(layer: Any) -> Any:
    need = layer.dim + 1 if layer.dim >= 0 else -layer.dim

    @st.composite
    def build(draw: Any) -> Specs:
        n = draw(st.integers(max(1, need), 4))
        shape = list(draw(hnp.array_shapes(min_dims=n, max_dims=n, min_side=1, max_side=4)))
        out = []
        for _ in range(draw(st.integers(2, 3))):
            shape[layer.dim] = draw(st.integers(0 if n > 1 else 1, 4))
            out.append(spec(shape))
        return tuple(out)

    return build()


def _concat_invalid(layer: Any) -> Any:
    def break_one(xs: Specs) -> Any:
        a = list(xs[0].shape)
        n = len(a)
        others = [i for i in range(n) if i != layer.dim % n]
        if not others:  # rank 1: a rank mismatch instead
            return st.just((xs[0], spec((*a, 2))))
        return st.sampled_from(others).map(
            lambda i: (xs[0], spec([*a[:i], a[i] + 1, *a[i + 1 :]]))
        )

    return _concat_inputs(layer).flatmap(break_one)


register(
    ls.Concat,
    layers=st.builds(ls.Concat, st.integers(-2, 2)),
    inputs=_concat_inputs,
    invalid=_concat_invalid,
    oracles=oracles("Concat"),
    batch_axes=lambda layer, specs: tuple(
        None if s.ndim < 2 or layer.dim % s.ndim == 0 else 0 for s in specs
    ),
    chain_arity=None,
)
