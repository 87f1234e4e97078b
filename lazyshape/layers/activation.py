"""Activations, ``Dropout``, ``DropPath`` and ``Identity``: shape-preserving layers.

The module holds the rules (pure functions of specs and hyperparameters),
then the layer classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._cost import KEEPS_NOTHING, KEEPS_OUTPUT, Saved, nbytes
from .._errors import ShapeError
from .._layer import Context, Layer
from .._specs import FLOATING, TensorSpec, itemsize
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
    "ReLU6",
    "Hardswish",
    "Hardsigmoid",
    "ELU",
    "Mish",
    "Softplus",
    "DropPath",
    "same_spec",
    "float_same_spec",
    "softmax_output",
    "drop_path_output",
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


def drop_path_output(x: TensorSpec, mode: str) -> TensorSpec:
    """Stochastic depth: a floating-point input, same spec; in mode ``"row"``
    each sample (index of dim 0) is dropped whole, so the input needs a batch dim."""
    check_floating(x)
    if mode == "row" and x.ndim == 0:
        raise ShapeError(
            "expected an input with a batch dim (N, ...) for `mode` 'row' (each sample is "
            "kept or dropped whole)",
            "input shape () (0 dims)",
        )
    return x


def _softplus(z: Any) -> Any:
    """``log(1 + exp(z))``, computed without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return ops.maximum(z, 0.0) + ops.log1p(ops.exp(-ops.abs(z)))


def _relu6(x: Any) -> Any:
    """``min(max(x, 0), 6)``."""
    return ops.minimum(ops.maximum(x, 0.0), 6.0)


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
    aliases_input = True

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return same_spec(x)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x


class Dropout(_Elementwise):
    """Zeroes elements with probability ``p`` in training; identity in evaluation."""

    hparam_names = ("p",)
    shape_free_attributes = ("p",)
    needs_context = True

    def __init__(self, p: float = 0.5, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.p = probability(p, "p", "Dropout")

    aliases_input = True  # in evaluation

    def forward(self, params: Mapping[str, Any], x: Any, *, ctx: Context) -> Any:
        if not ctx.training or self.p == 0.0:
            return x
        return ops.dropout(x, self.p, ctx.rng)

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        """In training, the mask (one byte per element)."""
        return Saved(extra=nbytes(inputs[0], "bool")) if self.p else KEEPS_NOTHING


class DropPath(Layer):
    """Stochastic depth (``torchvision.ops.StochasticDepth``; timm's ``DropPath``):
    in training, mode ``"row"`` keeps each sample (index of dim 0) with
    probability ``1 - p`` and scales it by ``1 / (1 - p)``, zeroing the others;
    mode ``"batch"`` keeps or drops the whole batch at once. Identity in
    evaluation or when ``p == 0``. Floating-point input of any shape (with a
    batch dim in mode ``"row"``); same output spec."""

    hparam_names = ("p", "mode")
    shape_free_attributes = ("p",)
    needs_context = True

    def __init__(self, p: float = 0.0, mode: str = "row", *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.p = probability(p, "p", "DropPath")
        if not isinstance(mode, str) or mode not in ("row", "batch"):
            raise ShapeError("`mode` 'row' or 'batch'", f"`mode` (={mode!r})", kind="DropPath")
        self.mode = mode

    aliases_input = True  # in evaluation

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return drop_path_output(x, self.mode)

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        """In training, the noise: one value per sample."""
        x = inputs[0]
        per = itemsize(x.dtype or "float32")
        return Saved(extra=(x.shape[0] if x.ndim and self.mode == "row" else 1) * per)

    def forward(self, params: Mapping[str, Any], x: Any, *, ctx: Context) -> Any:
        if not ctx.training or self.p == 0.0:
            return x
        ndim = len(x.shape)
        if ndim:
            # one noise value per sample ("row") or for the whole batch, broadcast
            first = slice(None) if self.mode == "row" else slice(0, 1)
            like = x[(first, *([slice(0, 1)] * (ndim - 1)))]
        else:
            like = x
        # ones dropped as `Dropout` drops: 0 or 1 / (1 - p), from the forward's rng
        return x * ops.dropout(ops.ones_like(like), self.p, ctx.rng)


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_OUTPUT

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

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_OUTPUT

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.tanh(x)


class Sigmoid(_Elementwise):
    """Logistic sigmoid."""

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_OUTPUT

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

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_OUTPUT

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.softmax(x, self.dim)


class ReLU6(_Elementwise):
    """``min(max(x, 0), 6)`` (``torch.nn.ReLU6``)."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return _relu6(x)


class Hardswish(_Elementwise):
    """``x * relu6(x + 3) / 6`` (``torch.nn.Hardswish``)."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x * _relu6(x + 3.0) / 6.0


class Hardsigmoid(_Elementwise):
    """``relu6(x + 3) / 6`` (``torch.nn.Hardsigmoid``)."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return _relu6(x + 3.0) / 6.0


class ELU(_Elementwise):
    """``x if x > 0 else alpha * (exp(x) - 1)`` (``torch.nn.ELU``)."""

    hparam_names = ("alpha",)

    def __init__(self, alpha: float = 1.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.alpha = real_number(alpha, "alpha", "ELU")

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        # (expm1 of the negative part only: no overflow where x is large)
        return ops.where(x > 0, x, self.alpha * ops.expm1(ops.minimum(x, 0.0)))


class Mish(_Elementwise):
    """``x * tanh(softplus(x))`` (``torch.nn.Mish``)."""

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x * ops.tanh(_softplus(x))


class Softplus(_Elementwise):
    """``log(1 + exp(beta * x)) / beta``, reverting to ``x`` where
    ``beta * x > threshold`` (``torch.nn.Softplus``). ``beta`` is nonzero."""

    hparam_names = ("beta", "threshold")

    def __init__(
        self, beta: float = 1.0, threshold: float = 20.0, *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.beta = real_number(beta, "beta", "Softplus")
        if self.beta == 0.0:
            raise ShapeError("`beta` to be nonzero", f"`beta` (={beta!r})", kind="Softplus")
        self.threshold = real_number(threshold, "threshold", "Softplus")

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        z = x * self.beta
        return ops.where(z > self.threshold, x, _softplus(z) / self.beta)
