"""Elementwise layers (activations, dropout, identity) and softmax."""

from __future__ import annotations

from .._errors import ShapeError
from .._specs import TensorSpec
from ._common import check_floating, normalize_axis

__all__ = ["same_spec", "float_same_spec", "softmax_output"]


def same_spec(x: TensorSpec) -> TensorSpec:
    """Any input; the output has the input's shape and dtype."""
    return x


def float_same_spec(x: TensorSpec) -> TensorSpec:
    """A floating-point input; the output has its shape and dtype."""
    check_floating(x)
    return x


def softmax_output(x: TensorSpec, dim: int) -> TensorSpec:
    """Softmax over ``dim``: a floating-point input with that dim; same shape. A
    0-d input takes ``dim`` 0 or -1 (torch treats a scalar as 1-d)."""
    check_floating(x)
    if x.ndim == 0:
        if dim not in (0, -1):
            raise ShapeError(
                "`dim` in [-1, 0] for a 0-d input (a scalar counts as 1-d, as in torch)",
                f"`dim` (={dim}) for input shape ()",
            )
        return x
    normalize_axis(dim, x.ndim, "dim")
    return x
