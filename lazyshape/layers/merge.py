"""Merge layers of the functional API: ``Add``, ``Multiply``, ``Concat``.

Inputs of different dtypes are promoted as PyTorch and JAX promote arrays, on
every backend: by category, bool < integer < floating < complex
(``int64, float32 -> float32``; `lazyshape.ops.promote_types`).

The module holds the rules (pure functions of specs and hyperparameters),
then the layer classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ops
from .._cost import KEEPS_NOTHING, Saved
from .._dims import Dim, format_shape
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec, promote_types
from ._common import normalize_axis, unify

__all__ = [
    "Add",
    "Multiply",
    "Concat",
    "broadcast_output",
    "concat_output",
    "result_dtype",
]


def result_dtype(specs: tuple[TensorSpec, ...]) -> str:
    """The promoted dtype of several inputs (`promote_types`)."""
    first = specs[0].dtype
    for s in specs:
        if s.dtype != first:
            return promote_types(*(s.dtype for s in specs))
    return first


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
    ndim = 0
    for s in specs:
        if len(s.shape) > ndim:
            ndim = len(s.shape)
    out: list[Dim] = [1] * ndim
    for s in specs:
        offset = ndim - len(s.shape)
        for i, d in enumerate(s.shape):
            if type(d) is int and d == 1:  # (a symbolic dim is never the int 1)
                continue
            cur = out[offset + i]
            if type(cur) is int:
                if cur == 1:
                    out[offset + i] = d
                    continue
                if cur == d:  # what `unify` keeps
                    continue
            elif cur is d:
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


# -- layers ----------------------------------------------------------------------


def _promoted(xs: tuple[Any, ...]) -> tuple[Any, ...]:
    """The input arrays in the dtype the rule promises (`promote_types`), on every
    backend (as `ls.ops` promotes); then Python's operators are safe."""
    return tuple(ops._promoted_all(xs))


class Add(Layer):
    """Elementwise sum of two or more inputs, with broadcasting."""

    hparam_names = ()

    def output_spec(self, *xs: TensorSpec) -> TensorSpec:
        return broadcast_output(*xs)

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        xs = _promoted(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_NOTHING


class Multiply(Layer):
    """Elementwise product of two or more inputs, with broadcasting."""

    hparam_names = ()

    def output_spec(self, *xs: TensorSpec) -> TensorSpec:
        return broadcast_output(*xs)

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        xs = _promoted(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(Layer):
    """Concatenation along ``dim`` (default 1, the channel/feature dim)."""

    hparam_names = ("dim",)

    def __init__(self, dim: int = 1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if type(dim) is not int:
            raise ShapeError("`dim` to be an int", f"`dim` (={dim!r})", kind="Concat")
        self.dim = dim

    def output_spec(self, *xs: TensorSpec) -> TensorSpec:
        return concat_output(self.dim, *xs)

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_NOTHING

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        return ops.concat(_promoted(xs), axis=self.dim)
