"""Harness entries of the core layers: Linear, activations, Dropout, Identity,
Flatten, Unflatten, Reshape, Add, Multiply, Concat.

Each entry: a strategy of layers (hyperparameters), the input specs a layer
accepts, the ones it must reject, and its oracles (torch, JAX, ONNX).
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lazyshape as ls
from lazyshape._specs import TensorSpec

from ._onnx import onnx_oracle
from ._oracles import BASIC
from ._registry import Specs, register
from .strategies import batch_sizes, sides

FLOAT = "float32"
#: dtypes a floating-only layer must reject
NON_FLOAT = ("int32", "int64", "bool")


def spec(shape: Any, dtype: str = FLOAT) -> TensorSpec:
    return TensorSpec(tuple(shape), dtype)


def one(shape_strategy: Any, dtype: str = FLOAT) -> Any:
    """A 1-tuple of specs of shapes from ``shape_strategy``."""
    return shape_strategy.map(lambda s: (spec(s, dtype),))


def oracles(kind: str) -> tuple[Any, ...]:
    torch_o, jax_o = BASIC[kind]
    return (torch_o, jax_o, onnx_oracle())


def is_float(s: TensorSpec) -> bool:
    return s.dtype in ("float16", "bfloat16", "float32", "float64")


def leading(min_ndim: int = 0, max_ndim: int = 2) -> Any:
    """A batch dim then up to ``max_ndim - 1`` small dims (or nothing)."""
    return st.integers(min_ndim, max_ndim).flatmap(
        lambda n: st.tuples(*([batch_sizes()] + [sides(1, 4)] * (n - 1))) if n else st.just(())
    )


def rank_at_least(n: int, max_ndim: int = 4) -> Any:
    return hnp.array_shapes(min_dims=n, max_dims=max(n, max_ndim), min_side=1, max_side=4)


# -- Linear --------------------------------------------------------------------------


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


# -- shape-preserving layers -----------------------------------------------------------


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


# -- Flatten, Unflatten, Reshape --------------------------------------------------------


def _flatten_ok(layer: Any, n: int) -> bool:
    if n == 0:
        return False  # a 0-d input: see the scalar probe in tests/test_harness.py
    try:
        s = range(n)[layer.start_dim]
        e = range(n)[layer.end_dim]
    except IndexError:
        return False
    return s <= e


def _flatten_inputs(layer: Any) -> Any:
    ranks = [n for n in range(1, 5) if _flatten_ok(layer, n)]
    return st.sampled_from(ranks).flatmap(
        lambda n: one(hnp.array_shapes(min_dims=n, max_dims=n, min_side=1, max_side=4))
    )


def _flatten_invalid(layer: Any) -> Any:
    ranks = [n for n in range(1, 5) if not _flatten_ok(layer, n)]
    if not ranks:
        return st.nothing()
    return st.sampled_from(ranks).flatmap(
        lambda n: one(hnp.array_shapes(min_dims=n, max_dims=n, min_side=1, max_side=4))
    )


def _flatten_layers() -> Any:
    pairs = st.tuples(st.integers(-3, 2), st.integers(-3, 2)).filter(
        lambda p: any(_flatten_ok(ls.Flatten(*p), n) for n in range(1, 5))
    )
    return st.one_of(st.just(ls.Flatten()), pairs.map(lambda p: ls.Flatten(*p)))


register(
    ls.Flatten,
    layers=_flatten_layers(),
    inputs=_flatten_inputs,
    invalid=_flatten_invalid,
    oracles=oracles("Flatten"),
    accepts=lambda s: s.ndim >= 2,
)


def _sizes(max_len: int = 3) -> Any:
    """Positive sizes with at most one -1."""
    base = st.lists(st.integers(1, 4), min_size=1, max_size=max_len)
    return st.tuples(base, st.booleans(), st.integers(0, max_len)).map(
        lambda t: tuple(t[0][: t[2]] + [-1] + t[0][t[2] :])[:max_len] if t[1] else tuple(t[0])
    ).filter(lambda s: len(s) >= 1 and s.count(-1) <= 1)


def _fill(sizes: tuple[int, ...], k: int) -> int:
    """The element count ``sizes`` describe, with ``-1`` standing for ``k``."""
    return math.prod(k if s == -1 else s for s in sizes)


def _unflatten_inputs(layer: Any) -> Any:
    need = layer.dim + 1 if layer.dim >= 0 else -layer.dim

    @st.composite
    def build(draw: Any) -> Specs:
        n = draw(st.integers(max(1, need), max(1, need) + 1))
        shape = list(draw(hnp.array_shapes(min_dims=n, max_dims=n, min_side=1, max_side=3)))
        shape[layer.dim] = _fill(layer.sizes, draw(st.integers(1, 3)))
        return (spec(shape),)

    return build()


def _unflatten_invalid(layer: Any) -> Any:
    def wrong(xs: Specs) -> Any:
        shape = list(xs[0].shape)
        known = _fill(layer.sizes, 1)
        bad = [d for d in range(1, 13) if (d % known if -1 in layer.sizes else d != known)]
        if not bad:  # `-1` with known sizes 1: any size fits; only a missing dim fails
            return st.just((spec(()),))
        return st.sampled_from(bad).map(
            lambda d: (spec([*shape[: layer.dim % len(shape)], d,
                             *shape[layer.dim % len(shape) + 1 :]]),)
        )

    return _unflatten_inputs(layer).flatmap(wrong)


register(
    ls.Unflatten,
    layers=st.builds(ls.Unflatten, st.integers(-2, 1), _sizes()),
    inputs=_unflatten_inputs,
    invalid=_unflatten_invalid,
    oracles=oracles("Unflatten"),
    accepts=lambda s: s.ndim >= 1,
)


def _reshape_inputs(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        total = _fill(layer.shape, draw(st.integers(1, 3)))
        # split `total` into 1-3 factors for the sample dims
        rest: list[int] = []
        left = total
        for _ in range(draw(st.integers(0, 2))):
            divs = [d for d in range(1, left + 1) if left % d == 0]
            d = draw(st.sampled_from(divs))
            rest.append(d)
            left //= d
        rest.append(left)
        return (spec((draw(batch_sizes()), *draw(st.permutations(rest)))),)

    return build()


def _reshape_invalid(layer: Any) -> Any:
    known = _fill(layer.shape, 1)
    if -1 in layer.shape:
        bad = [d for d in range(1, 13) if d % known]
    else:
        bad = [d for d in range(1, 13) if d != known]
    no_batch = st.just((spec(()),))
    if not bad:  # `-1` with known sizes 1: every sample size fits
        return no_batch
    return st.one_of(
        no_batch, st.tuples(batch_sizes(), st.sampled_from(bad)).map(lambda t: (spec(t),))
    )


register(
    ls.Reshape,
    layers=_sizes().map(lambda s: ls.Reshape(*s)),
    inputs=_reshape_inputs,
    invalid=_reshape_invalid,
    oracles=oracles("Reshape"),
    accepts=lambda s: s.ndim >= 2,
)


# -- merges -----------------------------------------------------------------------


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
