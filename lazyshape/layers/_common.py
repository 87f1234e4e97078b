"""Checks and hyperparameter validators shared by the layer families' rules."""

from __future__ import annotations

import math

from .._dims import Dim, eq, format_dim, format_shape, ge, le
from .._errors import ShapeError
from .._layer import assume_at_least, assume_at_most, assume_equal
from .._specs import FLOATING, TensorSpec

__all__ = [
    "LAYOUTS",
    "check_rank",
    "check_floating",
    "normalize_axis",
    "unify",
    "assume_equal",
    "at_least",
    "at_most",
    "FLOATING",
    "positive_int",
    "probability",
    "int_tuple",
]

#: the channels-first layout of a batched input with ``n`` spatial dims (what
#: conv, pooling and the channel norms take), as messages name it
LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def check_rank(x: TensorSpec, ndim: int, layout: str, *, at_least: bool = False) -> None:
    """Require an input of exactly ``ndim`` dims (``at_least``: ``ndim`` or more)
    laid out as ``layout`` (``"(N, C, H, W)"``), for the message; an input one
    dim short of an exact rank is reported as a missing batch dim."""
    got = len(x.shape)
    if got == ndim or (at_least and got > ndim):
        return
    need = f"at least {ndim}" if at_least else f"{ndim}"
    hint = " (is the batch dim missing?)" if not at_least and got == ndim - 1 else ""
    raise ShapeError(
        f"expected an input with {need} dims {layout}",
        f"input shape {format_shape(x.shape)} ({got} dims){hint}",
    )


def check_floating(x: TensorSpec) -> None:
    """Require a floating-point input."""
    if x.dtype not in FLOATING:
        raise ShapeError("expected a floating-point input", f"dtype {x.dtype}")


def normalize_axis(axis: int, ndim: int, what: str = "dim") -> int:
    """``axis`` in ``[-ndim, ndim)`` mapped to ``[0, ndim)``."""
    if not -ndim <= axis < ndim:
        raise ShapeError(
            f"`{what}` in [{-ndim}, {ndim - 1}] for an input with {ndim} dims",
            f"`{what}` (={axis})",
        )
    return axis + ndim if axis < 0 else axis


def unify(a: Dim, b: Dim, what: str) -> Dim:
    """The common value of two dims that must be equal: different constants are a
    `ShapeError`; undecidable pairs are assumed equal and recorded."""
    if a is b or (type(a) is int and a == b):
        return a
    same = eq(a, b)
    if same is None:
        assume_equal(a, b)
        return a if type(b) is not int else b
    if not same:
        raise ShapeError(f"{what} to match", f"{format_dim(a)} and {format_dim(b)}")
    return a


def at_least(d: Dim, k: Dim) -> bool:
    """Whether ``d >= k`` can hold: False when it provably fails (the rule
    raises); True otherwise, recording it as an assumption when it cannot be
    decided (a symbolic size: `Inference.valid_ranges` reports the range)."""
    holds = ge(d, k)
    if holds is None:
        assume_at_least(d, k)
        return True
    return holds


def at_most(d: Dim, k: Dim) -> bool:
    """Whether ``d <= k`` can hold; see `at_least`."""
    holds = le(d, k)
    if holds is None:
        assume_at_most(d, k)
        return True
    return holds


def positive_int(value: object, name: str, kind: str, maximum: int | None = None) -> int:
    """Validate a hyperparameter that must be a positive int, at most ``maximum``
    when given (at construction)."""
    if type(value) is not int or value <= 0:
        raise ShapeError(f"`{name}` to be a positive int", f"`{name}` (={value!r})", kind=kind)
    if maximum is not None and value > maximum:
        raise ShapeError(f"`{name}` of at most {maximum:,}", f"`{name}` (={value!r})", kind=kind)
    return value


def real_number(value: object, name: str, kind: str) -> float:
    """Validate a hyperparameter that is a finite real number (at construction)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ShapeError(
            f"`{name}` to be a finite real number", f"`{name}` (={value!r})", kind=kind
        )
    return float(value)


def probability(value: object, name: str, kind: str) -> float:
    """Validate a hyperparameter that is a probability in ``[0, 1]`` (at construction)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ShapeError(f"`{name}` in [0, 1]", f"`{name}` (={value!r})", kind=kind)
    return float(value)


def int_tuple(value: object, n: int, name: str, kind: str, minimum: int = 1) -> tuple[int, ...]:
    """A per-spatial-dim hyperparameter (``kernel_size``, ``stride``,
    ``padding``, ``dilation``): an int (repeated) or a tuple/list of ``n``
    ints, each ``>= minimum`` (at construction)."""
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    ints = tuple(v for v in vals if type(v) is int and v >= minimum)
    if len(ints) != n or len(vals) != n:
        what = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
        shown = tuple(value) if isinstance(value, list) else value
        raise ShapeError(
            f"`{name}` to be a {what} int or a tuple of {n} {what} int{'s' if n > 1 else ''}",
            f"`{name}` (={shown!r})",
            kind=kind,
        )
    return ints
