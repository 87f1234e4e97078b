"""``Flatten``, ``Unflatten``, ``Reshape``, ``Permute`` and ``Transpose``.

The module holds the rules (pure functions of specs and hyperparameters),
then the layer classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ops
from .._dims import Dim, eq, format_shape, prod
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec
from ._common import assume_equal, normalize_axis

__all__ = [
    "Flatten",
    "Unflatten",
    "Reshape",
    "Permute",
    "Transpose",
    "flatten_output",
    "unflatten_output",
    "reshape_output",
    "permute_output",
    "transpose_output",
    "infer_size",
]


def flatten_output(x: TensorSpec, start_dim: int, end_dim: int) -> TensorSpec:
    """``(*a, d_start, ..., d_end, *b) -> (*a, d_start * ... * d_end, *b)``; a 0-d
    input ``() -> (1,)``, with ``start_dim`` and ``end_dim`` each 0 or -1
    (``torch.flatten`` treats a scalar as 1-d)."""
    if x.ndim == 0:
        if start_dim not in (0, -1) or end_dim not in (0, -1):
            raise ShapeError(
                "`start_dim` and `end_dim` in [-1, 0] for a 0-d input (flattened as a 1-d "
                "one, as torch.flatten)",
                f"`start_dim` (={start_dim}), `end_dim` (={end_dim}) for input shape ()",
            )
        return x.with_shape((1,))
    s = normalize_axis(start_dim, x.ndim, "start_dim")
    e = normalize_axis(end_dim, x.ndim, "end_dim")
    if s > e:
        raise ShapeError(
            "`start_dim` not after `end_dim`",
            f"`start_dim` (={start_dim}), `end_dim` (={end_dim}) for input shape "
            f"{format_shape(x.shape)}",
        )
    shape = x.shape
    return x.with_shape((*shape[:s], prod(shape[s : e + 1]), *shape[e + 1 :]))


def infer_size(total: Dim, sizes: tuple[int, ...], what: str) -> tuple[Dim, ...]:
    """Fill a single ``-1`` in ``sizes`` so that their product is ``total``:
    ``-1 -> total // prod(others)``, which must divide exactly."""
    if -1 not in sizes:
        n: Dim = prod(sizes)
        same = eq(n, total)
        if same is False:
            raise ShapeError(
                f"{what} with as many elements as the input",
                f"sizes {sizes} ({n} elements) for {total} elements",
            )
        if same is None:
            assume_equal(n, total)
        return sizes
    known = prod(s for s in sizes if s != -1)
    divisible = eq(total % known, 0)
    if divisible is False:
        raise ShapeError(
            f"{what} whose known sizes divide the input's element count",
            f"sizes {sizes} (product {known}) for {total} elements",
        )
    if divisible is None:
        assume_equal(total % known, 0)
    filled = total // known
    return tuple(filled if s == -1 else s for s in sizes)


def unflatten_output(x: TensorSpec, dim: int, sizes: tuple[int, ...]) -> TensorSpec:
    """``(*a, d, *b) -> (*a, *sizes, *b)`` where ``prod(sizes) == d`` (one ``-1`` allowed)."""
    d = normalize_axis(dim, x.ndim, "dim")
    filled = infer_size(x.shape[d], sizes, "`sizes`")
    return x.with_shape((*x.shape[:d], *filled, *x.shape[d + 1 :]))


def reshape_output(x: TensorSpec, shape: tuple[int, ...]) -> TensorSpec:
    """``(N, *rest) -> (N, *shape)`` where ``prod(shape) == prod(rest)`` (one ``-1``
    allowed); the batch dim is kept, as in Keras' ``Reshape``."""
    if x.ndim == 0:
        raise ShapeError("expected an input with a batch dim (N, ...)", "input shape ()")
    filled = infer_size(prod(x.shape[1:]), shape, "a target shape")
    return x.with_shape((x.shape[0], *filled))


def permute_output(x: TensorSpec, dims: tuple[int, ...]) -> TensorSpec:
    """``torch.permute``: an input with one dim per entry of ``dims`` (a
    permutation, negative entries counted from the end); output dim ``i`` is
    input dim ``dims[i]``, symbolic or not. Any dtype."""
    n = len(dims)
    shape = x.shape
    if len(shape) != n:
        raise ShapeError(
            f"expected an input with {n} dims, one per entry of `dims` (={dims})",
            f"input shape {format_shape(shape)} ({len(shape)} dims)",
        )
    # (entries are in [-n, n): a tuple's own indexing counts them from the end)
    return TensorSpec._make(tuple(map(shape.__getitem__, dims)), x.dtype)


def transpose_output(x: TensorSpec, dim0: int, dim1: int) -> TensorSpec:
    """``torch.transpose``: dims ``dim0`` and ``dim1`` swapped, symbolic or not.
    Any dtype; a 0-d input takes ``dim0`` and ``dim1`` 0 or -1 (torch treats a
    scalar as 1-d) and is returned as is."""
    if x.ndim == 0:
        if dim0 not in (0, -1) or dim1 not in (0, -1):
            raise ShapeError(
                "`dim0` and `dim1` in [-1, 0] for a 0-d input (a scalar counts as 1-d, as in "
                "torch)",
                f"`dim0` (={dim0}), `dim1` (={dim1}) for input shape ()",
            )
        return x
    a = normalize_axis(dim0, x.ndim, "dim0")
    b = normalize_axis(dim1, x.ndim, "dim1")
    shape = list(x.shape)
    shape[a], shape[b] = shape[b], shape[a]
    return x.with_shape(tuple(shape))


# -- layers ----------------------------------------------------------------------


def _filled(sizes: tuple[int, ...], total: Any) -> tuple[Any, ...]:
    """``sizes`` with its ``-1`` (if any) filled so the product is ``total`` (a
    concrete or a framework's symbolic size, checked by the rule): a ``-1`` is
    ambiguous to frameworks' reshapes when ``total`` is 0."""
    if -1 not in sizes:
        return sizes
    known = 1
    for s in sizes:
        if s != -1:
            known *= s
    return tuple(total // known if s == -1 else s for s in sizes)


def _permutation(value: tuple[Any, ...]) -> tuple[int, ...]:
    """``Permute``'s ``dims``: ints, each in ``[-n, n)`` for ``n`` of them, naming
    every dim once (at construction)."""
    n = len(value)
    ok = all(type(d) is int and -n <= d < n for d in value)
    if not ok or len({d % n for d in value}) != n:
        raise ShapeError(
            f"`dims` to be a permutation of the {n} input dims (ints in [{-n}, {n - 1}], "
            "each dim once)",
            f"`dims` (={value!r})",
            kind="Permute",
        )
    return tuple(value)


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
    aliases_input = True  # a view of the input

    def __init__(self, start_dim: int = 1, end_dim: int = -1, *, name: str | None = None):
        super().__init__(name=name)
        if type(start_dim) is not int or type(end_dim) is not int:
            raise ShapeError(
                "`start_dim` and `end_dim` to be ints", f"({start_dim!r}, {end_dim!r})",
                kind="Flatten",
            )
        self.start_dim = start_dim
        self.end_dim = end_dim

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return flatten_output(x, self.start_dim, self.end_dim)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
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
    aliases_input = True  # a view of the input

    def __init__(self, dim: int, sizes: Any, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if type(dim) is not int:
            raise ShapeError("`dim` to be an int", f"`dim` (={dim!r})", kind="Unflatten")
        self.dim = dim
        self.sizes = _sizes(sizes, "Unflatten", "sizes")

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return unflatten_output(x, self.dim, self.sizes)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        # the -1 is filled from the dim (frameworks' reshapes can't infer it for
        # an empty array)
        shape = tuple(x.shape)
        d = self.dim % len(shape)
        return ops.reshape(x, (*shape[:d], *_filled(self.sizes, shape[d]), *shape[d + 1 :]))


class Reshape(Layer):
    """``(N, *rest) -> (N, *shape)``: reshapes each sample, keeping the batch dim
    (as Keras' ``Reshape``); one ``-1`` is inferred.

    ``Reshape(4, -1)`` on ``(B, 8, 3)`` gives ``(B, 4, 6)``."""

    hparam_names = ("shape",)
    aliases_input = True  # a view of the input

    def __init__(self, *shape: int, name: str | None = None) -> None:
        super().__init__(name=name)
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        self.shape = _sizes(shape, "Reshape", "shape")

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return reshape_output(x, self.shape)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        # each sample reshaped: the -1 is filled from a sample's size, so an empty
        # batch works
        sample = 1
        for d in tuple(x.shape)[1:]:
            sample = sample * d
        return ops.reshape(x, (x.shape[0], *_filled(self.shape, sample)))

    def __repr__(self) -> str:
        return f"Reshape({', '.join(map(str, self.shape))})"


class Permute(Layer):
    """Reorders the input's dims (``torch.permute``; torchvision's ``Permute``):
    output dim ``i`` is input dim ``dims[i]``. ``Permute(0, 2, 3, 1)`` on
    ``(N, C, H, W)`` gives ``(N, H, W, C)``; negative entries count from the end.
    Any dtype; the input has ``len(dims)`` dims."""

    hparam_names = ("dims",)
    aliases_input = True  # a view of the input

    def __init__(self, *dims: int, name: str | None = None) -> None:
        super().__init__(name=name)
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        self.dims = _permutation(dims)
        self.expected_ndim = len(self.dims)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return permute_output(x, self.dims)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        n = len(self.dims)
        return ops.permute_dims(x, tuple(d % n for d in self.dims))

    def __repr__(self) -> str:
        return f"Permute({', '.join(map(str, self.dims))})"


class Transpose(Layer):
    """Swaps dims ``dim0`` and ``dim1`` (``torch.transpose``); any dtype."""

    hparam_names = ("dim0", "dim1")
    aliases_input = True  # a view of the input

    def __init__(self, dim0: int, dim1: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        for what, d in (("dim0", dim0), ("dim1", dim1)):
            if type(d) is not int:
                raise ShapeError(f"`{what}` to be an int", f"`{what}` (={d!r})", kind="Transpose")
        self.dim0 = dim0
        self.dim1 = dim1

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return transpose_output(x, self.dim0, self.dim1)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        n = len(x.shape)
        if n == 0:
            return x
        order = list(range(n))
        a, b = self.dim0 % n, self.dim1 % n
        order[a], order[b] = order[b], order[a]
        return ops.permute_dims(x, tuple(order))
