"""Harness entries of the activation family: the activations, ``Softmax``,
``Dropout``, ``DropPath`` and ``Identity``.

The activations added after the first ones (``ReLU6``, ``Hardswish``,
``Hardsigmoid``, ``ELU``, ``Mish``, ``Softplus``) and ``DropPath`` keep their
oracles here: ``torch.nn.functional`` (torchvision's stochastic depth, written
out, for ``DropPath``), ``jax.nn`` under ``jax.eval_shape``, and the ONNX ops
``Clip`` / ``HardSwish`` / ``HardSigmoid`` / ``Elu`` / ``Mish`` / ``Softplus``
(``DropPath`` is ``Identity`` in an inference graph).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lazyshape as ls

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import jax_oracle, require_float, torch_oracle
from .._primitives import Specs
from .._registry import Deviation, NotApplicable, register
from ._common import FLOAT, NON_FLOAT, is_float, one, oracles, rank_at_least, spec, spec_of


def _any_shape(layer: Any) -> Any:
    return one(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))


def _float_invalid(layer: Any) -> Any:
    shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
    return st.tuples(shape, st.sampled_from(NON_FLOAT)).map(lambda t: (spec(*t),))


for _tp, _hp in [
    (ls.ReLU, st.builds(ls.ReLU)),
    (ls.Tanh, st.builds(ls.Tanh)),
    (ls.Sigmoid, st.builds(ls.Sigmoid)),
    (ls.SiLU, st.builds(ls.SiLU)),
    (ls.GELU, st.builds(ls.GELU, st.sampled_from(["none", "tanh"]))),
    (ls.LeakyReLU, st.builds(ls.LeakyReLU, st.sampled_from([0.01, 0.2, 1.0, -0.5]))),
    (ls.Dropout, st.builds(ls.Dropout, st.sampled_from([0.0, 0.3, 0.5, 1.0]))),
]:
    register(
        _tp,
        layers=_hp,
        inputs=_any_shape,
        invalid=_float_invalid,
        oracles=oracles(_tp.__name__),
        accepts=is_float,
    )

register(
    ls.Identity,
    layers=st.builds(ls.Identity),
    inputs=lambda layer: st.tuples(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4),
        st.sampled_from([FLOAT, "int64", "bool"]),
    ).map(lambda t: (spec(*t),)),
    oracles=oracles("Identity"),
)


def _softmax_inputs(layer: Any) -> Any:
    need = layer.dim + 1 if layer.dim >= 0 else -layer.dim
    return one(rank_at_least(max(1, need)))


def _softmax_invalid(layer: Any) -> Any:
    need = layer.dim + 1 if layer.dim >= 0 else -layer.dim
    too_small = hnp.array_shapes(min_dims=max(1, need - 1), max_dims=max(1, need - 1),
                                 min_side=1, max_side=4) if need > 1 else st.nothing()
    return st.one_of(one(too_small), _softmax_inputs(layer).map(lambda xs: (
        spec(xs[0].shape, "int64"),)))


register(
    ls.Softmax,
    layers=st.builds(ls.Softmax, st.integers(-3, 2)),
    inputs=_softmax_inputs,
    invalid=_softmax_invalid,
    oracles=oracles("Softmax"),
    accepts=is_float,
)


# -- ReLU6, Hardswish, Hardsigmoid, ELU, Mish, Softplus -----------------------------


def _t_act(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A torch functional, on floating inputs only (torch runs ``relu6`` on ints:
    lazyshape's activations require floating inputs)."""

    def run(layer: Any, x: Any) -> Any:
        require_float(spec_of(x))
        return fn(layer, x)

    return run


def _t_relu6(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    return F.relu6(x)


def _t_hardswish(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    return F.hardswish(x)


def _t_hardsigmoid(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    return F.hardsigmoid(x)


def _t_elu(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    return F.elu(x, layer.alpha)


def _t_mish(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    return F.mish(x)


def _t_softplus(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    return F.softplus(x, layer.beta, layer.threshold)


def _j_relu6(layer: Any, x: Any) -> Any:
    import jax

    return jax.nn.relu6(x)


def _j_hardswish(layer: Any, x: Any) -> Any:
    import jax

    return jax.nn.hard_swish(x)


def _j_hardsigmoid(layer: Any, x: Any) -> Any:
    import jax

    return jax.nn.hard_sigmoid(x)


def _j_elu(layer: Any, x: Any) -> Any:
    import jax

    return jax.nn.elu(x, layer.alpha)


def _j_mish(layer: Any, x: Any) -> Any:
    import jax

    return jax.nn.mish(x)


def _j_softplus(layer: Any, x: Any) -> Any:
    import jax
    import jax.numpy as jnp

    z = x * layer.beta
    return jnp.where(z > layer.threshold, x, jax.nn.softplus(z) / layer.beta)


def _onnx_scalar(g: Graph, value: float, s: Any) -> str:
    """A constant scalar of the input's floating dtype (NumPy has no bfloat16)."""
    if s.dtype not in ("float16", "float32", "float64"):
        raise NotApplicable(f"an ONNX constant of dtype {s.dtype}")
    return g.const(value, s.dtype)


def _onnx_relu6(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    (s,) = specs
    return g.node("Clip", [xs[0], _onnx_scalar(g, 0.0, s), _onnx_scalar(g, 6.0, s)])


def _onnx_softplus(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    """``Where(beta * x > threshold, x, Softplus(beta * x) / beta)``."""
    (s,) = specs
    (x,) = xs
    beta = _onnx_scalar(g, layer.beta, s)
    (z,) = g.node("Mul", [x, beta])
    (soft,) = g.node("Softplus", [z])
    (soft,) = g.node("Div", [soft, beta])
    (above,) = g.node("Greater", [z, _onnx_scalar(g, layer.threshold, s)])
    return g.node("Where", [above, x, soft])


def _onnx_hardswish(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    return g.node("HardSwish", xs)


def _onnx_hardsigmoid(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    return g.node("HardSigmoid", xs, alpha=1.0 / 6.0, beta=0.5)  # torch's slope and offset


def _onnx_elu(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    return g.node("Elu", xs, alpha=layer.alpha)


def _onnx_mish(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    return g.node("Mish", xs)


_ACTIVATIONS: list[tuple[type[ls.Layer], Any, Any, Any, Any]] = [
    (ls.ReLU6, st.builds(ls.ReLU6), _t_relu6, _j_relu6, _onnx_relu6),
    (ls.Hardswish, st.builds(ls.Hardswish), _t_hardswish, _j_hardswish, _onnx_hardswish),
    (ls.Hardsigmoid, st.builds(ls.Hardsigmoid), _t_hardsigmoid, _j_hardsigmoid,
     _onnx_hardsigmoid),
    (ls.ELU, st.builds(ls.ELU, st.sampled_from([1.0, 0.5, 2.0, -0.3])), _t_elu, _j_elu,
     _onnx_elu),
    (ls.Mish, st.builds(ls.Mish), _t_mish, _j_mish, _onnx_mish),
    (ls.Softplus,
     st.builds(ls.Softplus, st.sampled_from([1.0, 2.0, 0.5, -1.0]),
               st.sampled_from([20.0, 1.0, 0.0, -2.0])),
     _t_softplus, _j_softplus, _onnx_softplus),
]
for _kind, _hp, _t_fn, _j_fn, _onnx_fn in _ACTIVATIONS:
    register(
        _kind,
        layers=_hp,
        inputs=_any_shape,
        invalid=_float_invalid,
        oracles=(torch_oracle(_t_act(_t_fn)), jax_oracle(_j_fn), onnx_oracle()),
        accepts=is_float,
    )
    BUILDERS[_kind.__name__] = _onnx_fn


# -- DropPath ------------------------------------------------------------------------


def _drop_path_inputs(layer: Any) -> Any:
    low = 1 if layer.mode == "row" else 0
    return one(hnp.array_shapes(min_dims=low, max_dims=4, min_side=1, max_side=4))


def _drop_path_invalid(layer: Any) -> Any:
    cases = [_float_invalid(layer)]
    if layer.mode == "row":
        cases.append(st.just((spec(()),)))  # no batch dim to drop samples along
    return st.one_of(cases)


def _drop_path_deviations(layer: Any, x: Any) -> None:
    s = spec_of(x)
    require_float(s)  # (as Dropout: torchvision's noise of an int input fails for p < 1)
    if layer.mode == "row" and s.ndim == 0:
        raise Deviation("lazyshape's DropPath in mode 'row' requires a batch dim whatever `p` "
                        "(torchvision returns a 0-d input as is when p == 0, and fails in "
                        "training otherwise)")


def _t_drop_path(layer: Any, x: Any) -> Any:
    """torchvision's ``stochastic_depth`` in training (the noise's shape)."""
    import torch

    _drop_path_deviations(layer, x)
    survival = 1.0 - layer.p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if layer.mode == "row" else [1] * x.ndim
    noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


def _j_drop_path(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    _drop_path_deviations(layer, x)
    size = (x.shape[0],) + (1,) * (x.ndim - 1) if layer.mode == "row" else (1,) * x.ndim
    return x * jnp.ones(size, x.dtype)


register(
    ls.DropPath,
    layers=st.builds(ls.DropPath, st.sampled_from([0.0, 0.2, 0.5, 1.0]),
                     st.sampled_from(["row", "batch"])),
    inputs=_drop_path_inputs,
    invalid=_drop_path_invalid,
    oracles=(torch_oracle(_t_drop_path), jax_oracle(_j_drop_path), onnx_oracle()),
    accepts=is_float,
)
BUILDERS["DropPath"] = lambda layer, g, xs, specs: g.node("Identity", xs)  # (inference graph)
