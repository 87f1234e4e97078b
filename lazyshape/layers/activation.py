"""Activations, ``Dropout`` and ``Identity``: shape-preserving layers.

The module holds the rules (pure functions of specs and hyperparameters),
then the layer classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._errors import ShapeError
from .._layer import Context, Layer
from .._specs import FLOATING, TensorSpec
from ._common import check_floating, normalize_axis, probability, real_number

__all__ = [
    "Identity",
    "Dropout",
    "ReLU",
    "GELU",
    "Tanh",
    "Sigmoid",
    "SiLU",
    "LeakyReLU",
    "Softmax",
    "same_spec",
    "float_same_spec",
    "softmax_output",
]


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


# -- layers ----------------------------------------------------------------------


class _Elementwise(Layer):
    """A floating-point input of any shape; the output has the same spec."""

    hparam_names: ClassVar[tuple[str, ...] | None] = ()

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        if x.dtype not in FLOATING:
            check_floating(x)
        return x


class Identity(Layer):
    """Returns its input unchanged (any shape, any dtype)."""

    hparam_names = ()

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return same_spec(x)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x


class Dropout(_Elementwise):
    """Zeroes elements with probability ``p`` in training; identity in evaluation."""

    hparam_names = ("p",)
    needs_context = True

    def __init__(self, p: float = 0.5, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.p = probability(p, "p", "Dropout")

    def forward(self, params: Mapping[str, Any], x: Any, *, ctx: Context) -> Any:
        if not ctx.training or self.p == 0.0:
            return x
        return ops.dropout(x, self.p, ctx.rng)


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.relu(x)


class GELU(_Elementwise):
    """Gaussian error linear unit, exact or ``approximate="tanh"``."""

    hparam_names = ("approximate",)

    def __init__(self, approximate: str = "none", *, name: str | None = None) -> None:
        super().__init__(name=name)
        if approximate not in ("none", "tanh"):
            raise ShapeError(
                "`approximate` 'none' or 'tanh'", f"`approximate` (={approximate!r})", kind="GELU"
            )
        self.approximate = approximate

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.gelu(x, self.approximate)


class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.tanh(x)


class Sigmoid(_Elementwise):
    """Logistic sigmoid."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.sigmoid(x)


class SiLU(_Elementwise):
    """``x * sigmoid(x)``."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.silu(x)


class LeakyReLU(_Elementwise):
    """``x if x >= 0 else negative_slope * x``."""

    hparam_names = ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.negative_slope = real_number(negative_slope, "negative_slope", "LeakyReLU")

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.leaky_relu(x, self.negative_slope)


class Softmax(Layer):
    """Softmax over ``dim`` (default the last); same shape as the input."""

    hparam_names = ("dim",)

    def __init__(self, dim: int = -1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if type(dim) is not int:
            raise ShapeError("`dim` to be an int", f"`dim` (={dim!r})", kind="Softmax")
        self.dim = dim

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return softmax_output(x, self.dim)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.softmax(x, self.dim)
