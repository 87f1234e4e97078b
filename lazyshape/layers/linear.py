"""``Linear``: a fully connected layer whose input size is inferred."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ops
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ..rules._common import positive_int
from ..rules.linear import linear_output, linear_params

__all__ = ["Linear"]


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

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return linear_output(x, self.out_features, self.in_features)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:  # type: ignore[override]
        return linear_params(x, self.out_features, self.bias, self.in_features)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
        return ops.linear(x, params["weight"], params.get("bias"))

    def describe(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim:
            hp["in_features"] = inputs[0].shape[-1]
        return hp
