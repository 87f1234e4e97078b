"""The primitive hypothesis strategies of the harness (dims, shapes, specs),
which know nothing of the layer registry; `lazyshape.testing.strategies`
re-exports them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.strategies import SearchStrategy

from lazyshape._dims import Dim, Sym, dim_max
from lazyshape._layer import Layer
from lazyshape._specs import TensorSpec

SYMBOLS = ("B", "C", "H", "W", "L", "T", "D")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
#: dtypes `probes` switches inputs to (the mixed-float cases are opt-in: see docs/testing.md)
PROBE_DTYPES = ("int32", "int64", "bool")

Specs = tuple[TensorSpec, ...]


# -- dims, shapes, specs ---------------------------------------------------------


def batch_sizes(max_value: int = 3) -> SearchStrategy[int]:
    """Batch sizes, ``1..max_value``."""
    return st.integers(1, max_value)


def sides(min_value: int = 1, max_value: int = 6) -> SearchStrategy[int]:
    """Non-batch sizes, small."""
    return st.integers(min_value, max_value)


def _expressions(symbols: Sequence[str], max_value: int) -> SearchStrategy[Dim]:
    sym = st.sampled_from(list(symbols)).map(Sym)
    k = st.integers(1, max(1, max_value // 2))
    return st.one_of(
        st.tuples(sym, k).map(lambda t: t[0] + t[1]),
        st.tuples(sym, st.integers(2, 3)).map(lambda t: t[0] * t[1]),
        st.tuples(sym, st.integers(2, 3)).map(lambda t: t[0] // t[1]),
        st.tuples(sym, st.integers(2, 3)).map(lambda t: (t[0] - 1) // t[1] + 1),
        st.tuples(sym, sym).map(lambda t: t[0] * t[1]),
        st.tuples(sym, k).map(lambda t: dim_max(t[0], t[1])),
    )


def dims(
    min_value: int = 1,
    max_value: int = 6,
    *,
    symbols: Sequence[str] | None = SYMBOLS,
    expressions: bool = True,
) -> SearchStrategy[Dim]:
    """A dim: an int in ``[min_value, max_value]``, a symbol from ``symbols``, or
    (with ``expressions``) an expression over them. ``symbols=None``: ints only."""
    ints = st.integers(min_value, max_value)
    if not symbols:
        return ints
    syms = st.sampled_from(list(symbols)).map(Sym)
    if not expressions:
        return st.one_of(ints, syms)
    return st.one_of(ints, syms, _expressions(symbols, max_value))


def shapes(
    min_ndim: int = 1,
    max_ndim: int = 4,
    min_side: int = 1,
    max_side: int = 6,
    *,
    symbols: Sequence[str] | None = None,
    expressions: bool = False,
) -> SearchStrategy[tuple[Dim, ...]]:
    """A shape tuple. Concrete shapes come from ``hypothesis.extra.numpy.array_shapes``;
    with ``symbols``, each dim may also be a symbol (or an expression)."""
    if not symbols:
        return hnp.array_shapes(
            min_dims=min_ndim, max_dims=max_ndim, min_side=min_side, max_side=max_side
        )
    return st.lists(
        dims(min_side, max_side, symbols=symbols, expressions=expressions),
        min_size=min_ndim,
        max_size=max_ndim,
    ).map(tuple)


def dtypes(names: Sequence[str] = ("float32",)) -> SearchStrategy[str]:
    """A dtype name from ``names``."""
    return st.sampled_from(list(names))


def specs(
    shape: SearchStrategy[tuple[Dim, ...]] | tuple[Any, ...] | None = None,
    *,
    dtype: Sequence[str] | str = ("float32",),
    **shape_kwargs: Any,
) -> SearchStrategy[TensorSpec]:
    """A `TensorSpec`: a shape from ``shape`` (a strategy, a fixed tuple, or
    ``shapes(**shape_kwargs)``) and a dtype from ``dtype``."""
    if shape is None:
        shape = shapes(**shape_kwargs)
    elif not isinstance(shape, SearchStrategy):
        shape = st.just(tuple(shape))
    names = [dtype] if isinstance(dtype, str) else list(dtype)
    return st.builds(TensorSpec, shape, st.sampled_from(names))


def default_inputs(layer: Layer) -> SearchStrategy[Specs]:
    """Inputs for a layer with no declared input strategy: one float32 input of
    rank 1 to 4 (its rule decides what it accepts)."""
    return st.tuples(specs(min_ndim=1, max_ndim=4))
