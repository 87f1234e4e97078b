"""Checks and hyperparameter validators shared by the layer families' rules."""

from __future__ import annotations

from .._dims import Dim, eq, format_dim, format_shape
from .._errors import ShapeError
from .._specs import TensorSpec

__all__ = [
    "check_rank",
    "check_floating",
    "normalize_axis",
    "unify",
    "assume_equal",
    "ASSUMPTIONS",
    "FLOATING",
    "positive_int",
    "probability",
    "check_input_rank",
    "MODEL_DTYPE",
    "model_dtype",
]

FLOATING = frozenset({"float16", "bfloat16", "float32", "float64"})

#: equalities the rules assumed but could not prove, drained by the propagation
#: pass after each node (``(a, b)`` pairs of symbolic dims).
ASSUMPTIONS: list[tuple[Dim, Dim]] = []

#: ``[dtype]``: the dtype of the parameters that layers leave to the model
#: (``ParamSpec.dtype`` None), set by the propagation pass around its run and
#: float32 otherwise (a functional model being defined). Rules read it with
#: `model_dtype`.
MODEL_DTYPE: list[str] = ["float32"]


def model_dtype() -> str:
    """The model's dtype, for a rule whose output has its parameters' dtype
    (an `Embedding`'s): the ``dtype`` of the `infer` or `build` running."""
    return MODEL_DTYPE[0]


def check_rank(x: TensorSpec, min_ndim: int, layout: str, exact: bool = False) -> None:
    """Require ``x.ndim >= min_ndim`` (or ``==`` when ``exact``); ``layout`` names
    the dims, e.g. ``"(N, C, L)"``, for the message."""
    ok = x.ndim == min_ndim if exact else x.ndim >= min_ndim
    if not ok:
        need = f"{min_ndim}" if exact else f"at least {min_ndim}"
        raise ShapeError(
            f"expected an input with {need} dims {layout}",
            f"input shape {format_shape(x.shape)} ({x.ndim} dims)",
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


def assume_equal(a: Dim, b: Dim) -> None:
    """Record that ``a == b`` was assumed without proof (reported by `infer`)."""
    ASSUMPTIONS.append((a, b))


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


def positive_int(value: object, name: str, kind: str) -> int:
    """Validate a hyperparameter that must be a positive int (at construction)."""
    if type(value) is not int or value <= 0:
        raise ShapeError(f"`{name}` to be a positive int", f"`{name}` (={value!r})", kind=kind)
    return value


def probability(value: object, name: str, kind: str) -> float:
    """Validate a hyperparameter that is a probability in ``[0, 1]`` (at construction)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ShapeError(f"`{name}` in [0, 1]", f"`{name}` (={value!r})", kind=kind)
    return float(value)


def check_input_rank(x: TensorSpec, ndim: int, layout: str) -> None:
    """Require a batched input of exactly ``ndim`` dims laid out as ``layout``
    (``"(N, C, H, W)"``); one dim short is reported as a missing batch dim."""
    if x.ndim == ndim:
        return
    hint = " (is the batch dim missing?)" if x.ndim == ndim - 1 else ""
    raise ShapeError(
        f"expected an input with {ndim} dims {layout}",
        f"input shape {format_shape(x.shape)} ({x.ndim} dims){hint}",
    )
