"""Merge layers of the functional API: ``Add``, ``Multiply``, ``Concat``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ops
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec
from ..rules.merge import broadcast_output, concat_output

__all__ = ["Add", "Multiply", "Concat"]


class Add(Layer):
    """Elementwise sum of two or more inputs, with broadcasting."""

    hparam_names = ()

    def output_spec(self, *xs: TensorSpec) -> TensorSpec:
        return broadcast_output(*xs)

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
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
        return ops.concat(xs, axis=self.dim)
