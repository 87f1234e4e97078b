"""Harness entries of the reshape family: ``Flatten``, ``Unflatten``, ``Reshape``,
``Permute``, ``Transpose``.

``Permute`` and ``Transpose`` keep their oracles here: ``torch.permute`` /
``torch.transpose``, ``jnp.transpose`` / ``jnp.swapaxes`` under
``jax.eval_shape``, ONNX ``Transpose``.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lazyshape as ls

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import jax_oracle, normalize_axis, torch_oracle
from .._primitives import Specs
from .._registry import register
from ..strategies import batch_sizes
from ._common import FLOAT, one, oracles, spec


def _flatten_ok(layer: Any, n: int) -> bool:
    if n == 0:
        return False  # a 0-d input: see the scalar probe in tests/test_harness.py
    try:
        s = range(n)[layer.start_dim]
        e = range(n)[layer.end_dim]
    except IndexError:
        return False
    return bool(s <= e)


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


# -- Permute, Transpose: any dtype -----------------------------------------------------

#: the dtypes the dim-moving layers are drawn with (they take any)
_ANY_DTYPE = st.sampled_from([FLOAT, FLOAT, "int64", "bool"])


def _of_rank(n: int) -> Any:
    return st.tuples(
        hnp.array_shapes(min_dims=n, max_dims=n, min_side=1, max_side=4), _ANY_DTYPE
    ).map(lambda t: (spec(*t),))


@st.composite
def _permute_layers(draw: Any) -> Any:
    n = draw(st.integers(0, 4))
    order = draw(st.permutations(range(n)))
    negative = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return ls.Permute(*(d - n if neg else d for d, neg in zip(order, negative, strict=True)))


def _permute_inputs(layer: Any) -> Any:
    return _of_rank(len(layer.dims))


def _permute_invalid(layer: Any) -> Any:
    n = len(layer.dims)
    return st.sampled_from([r for r in (n - 1, n + 1, n + 2) if r >= 0]).flatmap(_of_rank)


def _t_permute(layer: Any, x: Any) -> Any:
    import torch

    return torch.permute(x, layer.dims)


def _j_permute(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.transpose(x, layer.dims)


def _onnx_permute(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    n = len(layer.dims)
    if n == 0:
        return g.node("Identity", xs)  # (an empty `perm` can't be written)
    return g.node("Transpose", xs, perm=[d % n for d in layer.dims])


register(
    ls.Permute,
    layers=_permute_layers(),
    inputs=_permute_inputs,
    invalid=_permute_invalid,
    oracles=(torch_oracle(_t_permute), jax_oracle(_j_permute), onnx_oracle()),
    accepts=lambda s: s.ndim <= 4,
)


def _transpose_need(layer: Any) -> int:
    """The fewest dims the input needs (a 0-d input counts as 1-d)."""
    return max(int(d) + 1 if d >= 0 else -int(d) for d in (layer.dim0, layer.dim1))


def _transpose_inputs(layer: Any) -> Any:
    need = _transpose_need(layer)
    low = 0 if need == 1 else need  # a scalar takes dims 0 and -1, as torch
    return st.integers(low, max(need, 4)).flatmap(_of_rank)


def _transpose_invalid(layer: Any) -> Any:
    need = _transpose_need(layer)
    if need == 1:
        return st.nothing()  # dims 0 and -1: every rank fits
    return st.integers(0, need - 1).flatmap(_of_rank)


def _t_transpose(layer: Any, x: Any) -> Any:
    import torch

    return torch.transpose(x, layer.dim0, layer.dim1)


def _j_transpose(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    if x.ndim == 0:  # as torch (and lazyshape): a scalar counts as 1-d
        normalize_axis(layer.dim0, 1)
        normalize_axis(layer.dim1, 1)
        return x
    return jnp.swapaxes(x, layer.dim0, layer.dim1)


def _onnx_transpose(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    (s,) = specs
    n = s.ndim
    if n == 0:
        return g.node("Identity", xs)
    perm = list(range(n))
    a, b = layer.dim0 % n, layer.dim1 % n
    perm[a], perm[b] = perm[b], perm[a]
    return g.node("Transpose", xs, perm=perm)


register(
    ls.Transpose,
    layers=st.builds(ls.Transpose, st.integers(-3, 2), st.integers(-3, 2)),
    inputs=_transpose_inputs,
    invalid=_transpose_invalid,
    oracles=(torch_oracle(_t_transpose), jax_oracle(_j_transpose), onnx_oracle()),
    accepts=lambda s: s.ndim <= 4,
)
BUILDERS["Permute"] = _onnx_permute
BUILDERS["Transpose"] = _onnx_transpose
