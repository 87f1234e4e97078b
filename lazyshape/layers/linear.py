"""``Linear`` and ``LayerScale``: learned maps over the last dim, whose size
is inferred from the input.

``y = x @ weight.T + bias`` over the last dim; ``y = x * gamma`` per channel
of the last dim. The module holds the rules (pure functions of specs and
hyperparameters), then the layer classes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from .. import ops
from .._cost import Cost, matmul_cost
from .._dims import Dim, eq, format_shape, prod
from .._errors import ShapeError
from .._init import Initializer, constant, fan_in_uniform, kaiming_uniform
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ._common import (
    FLOATING,
    assume_equal,
    check_floating,
    check_rank,
    positive_int,
    real_number,
)

__all__ = [
    "Linear",
    "LayerScale",
    "check_linear",
    "linear_output",
    "linear_params",
    "linear_costs",
    "check_layer_scale",
    "layer_scale_output",
    "layer_scale_params",
    "LINEAR_WEIGHT_INIT",
]


#: PyTorch's nn.Linear default: kaiming_uniform(a=sqrt(5)).
LINEAR_WEIGHT_INIT: Initializer = kaiming_uniform(a=math.sqrt(5))


def check_last_dim(x: TensorSpec, given: int | None, layout: str, what: str) -> Dim:
    """Validate a floating-point input of shape ``layout`` (``(*, in_features)``)
    whose last dim is the hyperparameter ``what`` when ``given``; return that dim."""
    shape = x.shape
    if not shape:
        check_rank(x, 1, layout, at_least=True)
    if x.dtype not in FLOATING:
        check_floating(x)
    got = shape[-1]
    if given is None:
        return got
    if got is not given:
        same = eq(got, given)
        if same is False:
            raise ShapeError(
                f"expected last input dim {given} ({what})",
                f"input shape {format_shape(x.shape)}",
            )
        if same is None:
            assume_equal(got, given)
    return given


def check_linear(x: TensorSpec, in_features: int | None) -> Dim:
    """Validate the input of shape ``(*, in_features)``; return its in_features."""
    return check_last_dim(x, in_features, "(*, in_features)", "in_features")


def linear_output(x: TensorSpec, out_features: int, in_features: int | None) -> TensorSpec:
    """``(*, in_features) -> (*, out_features)``."""
    shape = x.shape
    if not shape or x.dtype not in FLOATING or in_features is not None:
        check_linear(x, in_features)  # (else nothing to check: float input, inferred size)
    return TensorSpec._make((*shape[:-1], out_features), x.dtype)


def linear_params(
    x: TensorSpec, out_features: int, bias: bool, in_features: int | None
) -> dict[str, ParamSpec]:
    """weight ``(out_features, in_features)``, bias ``(out_features,)``, with
    PyTorch's default initialization."""
    fan_in = x.shape[-1] if in_features is None else in_features
    return dict(_linear_params(out_features, fan_in, bias))


@functools.lru_cache(maxsize=512)
def _linear_params(out_features: int, fan_in: Dim, bias: bool) -> dict[str, ParamSpec]:
    # Specs are immutable values: layers of one size share them (callers copy the dict).
    params = {"weight": ParamSpec._make((out_features, fan_in), None, LINEAR_WEIGHT_INIT)}
    if bias:
        params["bias"] = ParamSpec._make((out_features,), None, fan_in_uniform(fan_in))
    return params


def linear_costs(x: TensorSpec, out_features: Dim, operand: int | None = 0,
                 weight: str = "weight") -> Cost:
    """``(*, in) @ weight.T``: ``2 * prod(*) * in * out`` FLOPs (the bias is not
    counted); gradients for the input and the weight."""
    return matmul_cost(prod(x.shape[:-1]), out_features, x.shape[-1], operand, weight)


def check_layer_scale(x: TensorSpec, dim: int | None) -> Dim:
    """Validate the floating-point input of shape ``(*, dim)``; return its ``dim``."""
    return check_last_dim(x, dim, "(*, D)", "`dim`")


def layer_scale_output(x: TensorSpec, dim: int | None) -> TensorSpec:
    """``(*, D) -> (*, D)``: the input's spec."""
    check_layer_scale(x, dim)
    return x


def layer_scale_params(x: TensorSpec, init_values: float, dim: int | None) -> dict[str, ParamSpec]:
    """``gamma (D,)``, every element ``init_values`` (timm's ``LayerScale``)."""
    d = x.shape[-1] if dim is None else dim
    return {"gamma": ParamSpec._make((d,), None, constant(init_values))}


# -- layers ----------------------------------------------------------------------


class Linear(Layer):
    """``y = x @ weight.T + bias``: input ``(*, in_features)``, output
    ``(*, out_features)``; weight ``(out_features, in_features)``.

    ``in_features`` is inferred from the input when omitted, checked when given.
    Initialization is PyTorch's: weight ``kaiming_uniform(a=sqrt(5))``, bias
    ``U(±1/sqrt(in_features))``.
    """

    hparam_names = ("in_features", "out_features", "bias")
    expected_ndim = 2

    def __init__(
        self,
        out_features: int,
        bias: bool = True,
        *,
        in_features: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.out_features = positive_int(out_features, "out_features", "Linear")
        if in_features is not None:
            positive_int(in_features, "in_features", "Linear")
        self.in_features = in_features
        self.bias = bool(bias)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return linear_output(x, self.out_features, self.in_features)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return linear_params(x, self.out_features, self.bias, self.in_features)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.linear(x, params["weight"], params.get("bias"))

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        return (linear_costs(inputs[0], self.out_features),)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim:
            hp["in_features"] = inputs[0].shape[-1]
        return hp


class LayerScale(Layer):
    """``y = x * gamma``: a learned scale per channel of the last dim (timm's
    ``LayerScale``, as in CaiT, ConvNeXt and ViT blocks): input ``(*, D)``, same
    output; ``gamma`` of shape ``(D,)``, every element ``init_values`` at
    initialization.

    ``dim`` (D) is inferred from the input when omitted, checked when given.
    """

    hparam_names = ("dim", "init_values")
    expected_ndim = 2

    def __init__(
        self,
        init_values: float = 1e-5,
        *,
        dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.init_values = real_number(init_values, "init_values", "LayerScale")
        if dim is not None:
            positive_int(dim, "dim", "LayerScale")
        self.dim = dim

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return layer_scale_output(x, self.dim)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return layer_scale_params(x, self.init_values, self.dim)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.multiply(x, params["gamma"])

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim:
            hp["dim"] = inputs[0].shape[-1]
        return hp
