"""Merge layers of the functional API: ``Add``, ``Multiply``, ``Concat``.

Inputs of different dtypes are promoted as PyTorch and JAX promote arrays, on
every backend: by category, bool < integer < floating < complex
(``int64, float32 -> float32``; `lazyshape.rules.merge.promote_dtypes`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ops
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec, normalize_dtype
from ..rules.merge import broadcast_output, concat_output, promote_dtypes

__all__ = ["Add", "Multiply", "Concat"]


def _promoted(xs: tuple[Any, ...]) -> tuple[Any, ...]:
    """The input arrays cast to the dtype the rule promises (`promote_dtypes`),
    so that every backend computes in it: NumPy alone would give float64 for
    int32 + float32, and torch leaves a 0-d input's dtype out of the promotion."""
    first = xs[0].dtype
    for x in xs:
        if x.dtype != first:
            break
    else:
        return xs  # one dtype: the common case, nothing to cast
    names = [normalize_dtype(x.dtype) for x in xs]
    target = promote_dtypes(names)
    return tuple(
        x if name == target else ops.astype(x, target) for x, name in zip(xs, names, strict=True)
    )


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

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        return ops.concat(_promoted(xs), axis=self.dim)
