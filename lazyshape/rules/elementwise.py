"""Elementwise layers (activations, dropout, identity) and softmax."""

from __future__ import annotations

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
    """Softmax over ``dim``: a floating-point input with that dim; same shape."""
    check_floating(x)
    normalize_axis(dim, x.ndim, "dim")
    return x
