"""``Flatten``, ``Unflatten`` and ``Reshape``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ops
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec
from ..rules.reshape import flatten_output, reshape_output, unflatten_output

__all__ = ["Flatten", "Unflatten", "Reshape"]


def _sizes(value: Any, kind: str, name: str) -> tuple[int, ...]:
    sizes: tuple[Any, ...] = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    ok = all(type(s) is int and (s > 0 or s == -1) for s in sizes)
    if not ok or sum(1 for s in sizes if s == -1) > 1 or not sizes:
        raise ShapeError(
            f"`{name}` of positive ints with at most one -1", f"`{name}` (={sizes!r})", kind=kind
        )
    return sizes


class Flatten(Layer):
    """``(*a, d_start, ..., d_end, *b) -> (*a, d_start*...*d_end, *b)``
    (``torch.nn.Flatten``; default: everything after the batch dim)."""

    hparam_names = ("start_dim", "end_dim")

    def __init__(self, start_dim: int = 1, end_dim: int = -1, *, name: str | None = None):
        super().__init__(name=name)
        if type(start_dim) is not int or type(end_dim) is not int:
            raise ShapeError(
                "`start_dim` and `end_dim` to be ints", f"({start_dim!r}, {end_dim!r})",
                kind="Flatten",
            )
        self.start_dim = start_dim
        self.end_dim = end_dim

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return flatten_output(x, self.start_dim, self.end_dim)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
        shape = tuple(x.shape)
        if not shape:
            return ops.reshape(x, (1,))
        n = len(shape)
        s = self.start_dim % n
        e = self.end_dim % n
        size = 1  # the product, not -1: a 0 dim makes -1 ambiguous
        for d in shape[s : e + 1]:
            size *= int(d)
        return ops.reshape(x, (*shape[:s], size, *shape[e + 1 :]))


class Unflatten(Layer):
    """``(*a, d, *b) -> (*a, *sizes, *b)`` with ``prod(sizes) == d``
    (``torch.nn.Unflatten``; one ``-1`` in ``sizes`` is inferred)."""

    hparam_names = ("dim", "sizes")

    def __init__(self, dim: int, sizes: Any, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if type(dim) is not int:
            raise ShapeError("`dim` to be an int", f"`dim` (={dim!r})", kind="Unflatten")
        self.dim = dim
        self.sizes = _sizes(sizes, "Unflatten", "sizes")

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return unflatten_output(x, self.dim, self.sizes)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
        shape = tuple(x.shape)
        d = self.dim % len(shape)
        return ops.reshape(x, (*shape[:d], *self.sizes, *shape[d + 1 :]))


class Reshape(Layer):
    """``(N, *rest) -> (N, *shape)``: reshapes each sample, keeping the batch dim
    (as Keras' ``Reshape``); one ``-1`` is inferred.

    ``Reshape(4, -1)`` on ``(B, 8, 3)`` gives ``(B, 4, 6)``."""

    hparam_names = ("shape",)

    def __init__(self, *shape: int, name: str | None = None) -> None:
        super().__init__(name=name)
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        self.shape = _sizes(shape, "Reshape", "shape")

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return reshape_output(x, self.shape)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
        return ops.reshape(x, (x.shape[0], *self.shape))

    def __repr__(self) -> str:
        return f"Reshape({', '.join(map(str, self.shape))})"
