"""Merges of several inputs: broadcasting (Add, Multiply) and concatenation."""

from __future__ import annotations

import numpy as np

from .._dims import Dim, format_shape
from .._errors import ShapeError
from .._specs import TensorSpec
from ._common import normalize_axis, unify

__all__ = ["broadcast_output", "concat_output", "result_dtype"]


def result_dtype(specs: tuple[TensorSpec, ...]) -> str:
    """The promoted dtype of several inputs (NumPy's promotion rules)."""
    first = specs[0].dtype
    if all(s.dtype == first for s in specs):
        return first
    if any(s.dtype == "bfloat16" for s in specs):
        raise ShapeError(
            "inputs of one dtype when bfloat16 is involved",
            "dtypes " + ", ".join(s.dtype for s in specs),
        )
    return str(np.result_type(*(s.dtype for s in specs)))


def broadcast_output(*specs: TensorSpec) -> TensorSpec:
    """NumPy broadcasting: shapes aligned from the right; a dim of 1 stretches,
    other dims must be equal (symbols that can't be proved equal are assumed
    equal and reported)."""
    if len(specs) < 2:
        raise ShapeError("at least 2 inputs", f"{len(specs)} input(s)")
    first = specs[0]
    for s in specs:  # the common case (a residual add): equal shapes and dtypes
        if s.shape != first.shape or s.dtype != first.dtype:
            break
    else:
        return first
    ndim = max(s.ndim for s in specs)
    out: list[Dim] = [1] * ndim
    for s in specs:
        offset = ndim - s.ndim
        for i, d in enumerate(s.shape):
            cur = out[offset + i]
            if d == 1:
                continue
            if cur == 1:
                out[offset + i] = d
                continue
            try:
                out[offset + i] = unify(cur, d, f"dim {offset + i - ndim} of the inputs")
            except ShapeError:
                raise ShapeError(
                    "input shapes that broadcast together",
                    "shapes " + ", ".join(format_shape(t.shape) for t in specs),
                ) from None
    return TensorSpec._make(tuple(out), result_dtype(specs))


def concat_output(dim: int, *specs: TensorSpec) -> TensorSpec:
    """Concatenation along ``dim``: inputs of one rank, equal on every other dim;
    the output dim is the sum."""
    if len(specs) < 1:
        raise ShapeError("at least 1 input", "none")
    ndim = specs[0].ndim
    if any(s.ndim != ndim for s in specs):
        raise ShapeError(
            "inputs of the same rank",
            "shapes " + ", ".join(format_shape(s.shape) for s in specs),
        )
    axis = normalize_axis(dim, ndim, "dim")
    out = list(specs[0].shape)
    total: Dim = 0
    for s in specs:
        total = total + s.shape[axis]
        for i in range(ndim):
            if i != axis:
                try:
                    out[i] = unify(out[i], s.shape[i], f"dim {i}")
                except ShapeError:
                    raise ShapeError(
                        f"inputs equal on every dim but {axis} (`dim`={dim})",
                        "shapes " + ", ".join(format_shape(t.shape) for t in specs),
                    ) from None
    out[axis] = total
    return TensorSpec._make(tuple(out), result_dtype(specs))
