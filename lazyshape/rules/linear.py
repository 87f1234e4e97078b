"""Linear: ``y = x @ weight.T + bias`` over the last dim."""

from __future__ import annotations

import functools
import math

from .._dims import Dim, eq, format_shape
from .._errors import ShapeError
from .._init import Initializer, fan_in_uniform, kaiming_uniform
from .._specs import ParamSpec, TensorSpec
from ._common import FLOATING, assume_equal, check_floating, check_rank

__all__ = ["check_linear", "linear_output", "linear_params", "LINEAR_WEIGHT_INIT"]

#: PyTorch's nn.Linear default: kaiming_uniform(a=sqrt(5)).
LINEAR_WEIGHT_INIT: Initializer = kaiming_uniform(a=math.sqrt(5))


def check_linear(x: TensorSpec, in_features: int | None) -> Dim:
    """Validate the input of shape ``(*, in_features)``; return its in_features."""
    shape = x.shape
    if not shape:
        check_rank(x, 1, "(*, in_features)")
    if x.dtype not in FLOATING:
        check_floating(x)
    got = shape[-1]
    if in_features is None:
        return got
    if got is not in_features:
        same = eq(got, in_features)
        if same is False:
            raise ShapeError(
                f"expected last input dim {in_features} (in_features)",
                f"input shape {format_shape(x.shape)}",
            )
        if same is None:
            assume_equal(got, in_features)
    return in_features


def linear_output(x: TensorSpec, out_features: int, in_features: int | None) -> TensorSpec:
    """``(*, in_features) -> (*, out_features)``."""
    check_linear(x, in_features)
    return TensorSpec._make((*x.shape[:-1], out_features), x.dtype)


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
