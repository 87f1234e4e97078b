"""Flatten, Unflatten and Reshape."""

from __future__ import annotations

from .._dims import Dim, eq, format_shape, prod
from .._errors import ShapeError
from .._specs import TensorSpec
from ._common import assume_equal, normalize_axis

__all__ = ["flatten_output", "unflatten_output", "reshape_output", "infer_size"]


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
