"""Linear ops for torch tensors: ``linear``. `LayerScale`: ``LayerScale``'s
native module (timm's, which torch.nn lacks).

``nn.Linear`` as the native module of ``Linear``: a model of thousands of
small layers is built faster by stamping it from a prototype and drawing its
parameters with the very calls ``reset_parameters`` makes (checked against
torch once per process)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Parameter

import lazyshape as ls
from lazyshape.backend import (
    LayerRecord,
)

from .native import Prototype, may_stamp, register, sizes

__all__ = ["linear"]


def linear(x: Any, weight: Any, bias: Any | None) -> Any:
    """``x @ weight.T + bias``."""
    return F.linear(x, weight, bias)


_LINEAR: dict[bool, Prototype] = {}  # bias -> prototype


_LINEAR_BOUNDS: dict[int, tuple[float, float]] = {}  # fan_in -> (weight bound, bias bound)


_FAST_LINEAR: list[bool] = []  # [verdict of `_linear_matches_torch`], once per process


def _linear_bounds(fan_in: int) -> tuple[float, float]:
    """The uniform bounds of ``nn.Linear.reset_parameters`` for ``fan_in`` > 0:
    ``kaiming_uniform_(weight, a=sqrt(5))`` (``sqrt(3) * gain / sqrt(fan_in)``,
    torch's own ``calculate_gain``) and the bias's ``1 / sqrt(fan_in)``,
    computed with torch's float expressions."""
    bounds = _LINEAR_BOUNDS.get(fan_in)
    if bounds is None:
        gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        std = gain / math.sqrt(fan_in)
        bounds = _LINEAR_BOUNDS[fan_in] = (math.sqrt(3.0) * std, 1 / math.sqrt(fan_in))
    return bounds


_make_subclass = Tensor._make_subclass


def _stamp_linear(
    in_features: int, out_features: int, bias: bool, dtype: Any, device: Any
) -> nn.Linear:
    """``nn.Linear(in_features, out_features, bias, dtype=, device=)`` with both
    sizes > 0: torch's parameter tensors (``torch.empty``), filled by the
    ``uniform_`` calls ``reset_parameters`` makes, in its order (weight, then
    bias), from the same RNG, wrapped as ``nn.Parameter(t)`` does; the module
    stamped from a prototype."""
    proto = _LINEAR.get(bias)
    if proto is None:
        with torch.device("meta"):  # draws nothing from any RNG
            proto = _LINEAR[bias] = Prototype(nn.Linear(1, 1, bias=bias))
    bounds = _LINEAR_BOUNDS.get(in_features) or _linear_bounds(in_features)
    w = torch.empty(out_features, in_features, dtype=dtype, device=device)
    w.uniform_(-bounds[0], bounds[0])
    plain = type(w) is Tensor  # else (a tensor subclass) Parameter's own path
    params: dict[str, Any] = {
        "weight": _make_subclass(Parameter, w, True) if plain else Parameter(w), "bias": None
    }
    if bias:
        b = torch.empty(out_features, dtype=dtype, device=device)
        b.uniform_(-bounds[1], bounds[1])
        params["bias"] = _make_subclass(Parameter, b, True) if plain else Parameter(b)
    return proto.new(  # type: ignore[no-any-return]
        in_features=in_features, out_features=out_features, _parameters=params
    )


def _linear_matches_torch() -> bool:
    """Whether `_stamp_linear` makes what ``nn.Linear`` makes on this torch: the
    same ``__dict__`` (keys, value types, sizes), bit-identical parameters, and
    the same RNG consumption. Checked once per process, on the CPU in a forked
    RNG; when it fails, ``nn.Linear`` is constructed for real. (If the check
    itself can't run, e.g. under a tensor mode, this call answers False.)"""
    if not _FAST_LINEAR:
        try:
            ok = _compare_with_nn_linear()
        except Exception:  # can't tell now: construct for real, ask again later
            return False
        _FAST_LINEAR.append(ok)
    return _FAST_LINEAR[0]


def _compare_with_nn_linear() -> bool:
    ok = True
    with torch.random.fork_rng(devices=[]):
        for bias in (True, False):
            torch.manual_seed(0)
            real = nn.Linear(5, 3, bias=bias, device="cpu")
            after_real = torch.get_rng_state()
            torch.manual_seed(0)
            fast = _stamp_linear(5, 3, bias, torch.float32, "cpu")
            ok = ok and torch.equal(torch.get_rng_state(), after_real)
            mine = fast.__dict__
            ok = ok and list(real.__dict__) == list(mine)
            for k, v in real.__dict__.items():
                ok = ok and type(v) is type(mine[k])
                if not isinstance(v, (dict, set, list)):
                    ok = ok and v == mine[k]
            ok = ok and list(real.state_dict()) == list(fast.state_dict())
            ok = ok and all(
                type(a) is type(b) and a.requires_grad == b.requires_grad and torch.equal(a, b)
                for a, b in zip(real.parameters(), fast.parameters(), strict=True)
            )
    return ok


@register(ls.Linear, exact=True)
def _linear(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    known = sizes(rec, "in_features", "out_features")
    if known is None:
        return None
    in_features, out_features = known
    bias = rec.resolved["bias"]
    if (
        in_features > 0
        and out_features > 0
        and may_stamp()
        and (_FAST_LINEAR[0] if _FAST_LINEAR else _linear_matches_torch())
    ):
        return _stamp_linear(in_features, out_features, bias, dtype, device)
    return nn.Linear(in_features, out_features, bias=bias, dtype=dtype, device=device)


class LayerScale(nn.Module):
    """``LayerScale``'s native module, as timm's: ``x * gamma``, ``gamma`` of
    shape ``(dim,)`` filled with ``init_values``."""

    def __init__(
        self, dim: int, init_values: float = 1e-5, *, dtype: Any = None, device: Any = None
    ) -> None:
        super().__init__()
        self.dim = dim
        self.init_values = init_values
        self.gamma = Parameter(torch.full((dim,), init_values, dtype=dtype, device=device))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma

    def extra_repr(self) -> str:
        return f"{self.dim}, init_values={self.init_values}"


@register(ls.LayerScale)
def _layer_scale(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    known = sizes(rec, "dim")
    if known is None:
        return None
    return LayerScale(known[0], rec.resolved["init_values"], dtype=dtype, device=device)
