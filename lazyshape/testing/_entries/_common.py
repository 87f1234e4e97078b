"""Helpers shared by the harness entries of every layer family."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lazyshape._specs import TensorSpec

from .._onnx import onnx_oracle
from .._oracles import BASIC
from ..strategies import batch_sizes, sides

FLOAT = "float32"
#: dtypes a floating-only layer must reject
NON_FLOAT = ("int32", "int64", "bool")


def spec(shape: Any, dtype: str = FLOAT) -> TensorSpec:
    return TensorSpec(tuple(shape), dtype)


def spec_of(t: Any) -> TensorSpec:
    """The spec of a framework's array (its shape and dtype)."""
    from lazyshape._specs import normalize_dtype

    return TensorSpec._make(tuple(int(d) for d in t.shape), normalize_dtype(t.dtype))


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


