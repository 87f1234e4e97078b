"""External oracles: the frameworks' own functionals compute the output spec.

- torch: ``torch.nn.functional`` (and tensor methods) on real CPU tensors
  (small) or ``meta`` tensors (large); the parameters are created as torch's
  own module would create them, in the model's dtype (float32);
- JAX: ``jax.numpy`` / ``jax.lax`` / ``jax.nn`` under ``jax.eval_shape`` (no
  computation); judges shapes only (float inputs run as float32).

Each oracle function takes ``(layer, specs)`` with concrete specs and returns
``((shape, dtype), ...)``; it raises when the framework rejects the inputs.
Where lazyshape deliberately rejects what the framework accepts (documented
in docs/testing.md), the oracle raises `Deviation` naming the reason.
Frameworks are imported lazily, inside the functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from lazyshape._layer import Layer
from lazyshape._specs import TensorSpec, normalize_dtype
from lazyshape.backend import numpy_dtype

from ._primitives import Specs
from ._registry import Deviation, NotApplicable, Oracle

__all__ = [
    "PARAM_DTYPE",
    "torch_oracle",
    "jax_oracle",
    "torch_tensor",
    "torch_result",
    "jax_struct",
    "jax_result",
    "require_float",
    "require_batched",
    "require_nonempty",
    "require_features",
]

#: the dtype of parameters the oracles create (the harness builds models in float32)
PARAM_DTYPE = "float32"
FLOATING = ("float16", "bfloat16", "float32", "float64")
#: above this many elements an input is a ``meta`` tensor (shape-only) for torch
_META_ELEMENTS = 1 << 16

Result = tuple[tuple[tuple[int, ...], str], ...]


# -- documented deviations (lazyshape rejects what the framework accepts) ---------


def require_float(*specs: TensorSpec) -> None:
    """lazyshape's activations, normalizations and linear maps require floating
    inputs (torch runs ``relu`` on ints and promotes ints in ``tanh``)."""
    for s in specs:
        if s.dtype not in FLOATING:
            raise Deviation(f"lazyshape requires a floating input; got {s.dtype}")


def require_batched(spec: TensorSpec, ndim: int) -> None:
    """lazyshape's convolutions, pools and norms require a batch dim (torch
    also accepts unbatched inputs of one dim less)."""
    if spec.ndim != ndim:
        raise Deviation(f"lazyshape requires a batched input of {ndim} dims; got {spec.ndim}")


def require_nonempty(shape: Sequence[int], first: int = 2) -> None:
    """lazyshape (as torch) rejects convolutions and pools with an empty
    spatial input or output; JAX computes empty arrays."""
    if any(int(d) == 0 for d in tuple(shape)[first:]):
        raise Deviation(f"an empty spatial dim in {tuple(shape)} (torch rejects it)")


def require_features(size: int, what: str) -> None:
    """lazyshape rejects a layer over zero features (input channels, an input or
    embedding size of 0), where a framework returns an empty or a zero output
    (or fails with an IndexError)."""
    if int(size) == 0:
        raise Deviation(f"{what} of 0: lazyshape rejects a layer over zero features")


# -- torch -----------------------------------------------------------------------


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def torch_tensor(spec: TensorSpec, *, device: str | None = None) -> Any:
    """A torch tensor of ``spec`` (zeros on CPU; on ``meta`` when large)."""
    import torch

    shape = tuple(int(d) for d in spec.shape)
    if device is None:
        device = "meta" if _numel(shape) > _META_ELEMENTS else "cpu"
    return torch.zeros(shape, dtype=_torch_dtype(spec.dtype), device=device)


def torch_param(*shape: int, like: Any = None) -> Any:
    """A float32 parameter tensor (on the device of ``like``)."""
    import torch

    device = like.device if like is not None else "cpu"
    return torch.zeros(tuple(int(d) for d in shape), dtype=_torch_dtype(PARAM_DTYPE),
                       device=device)


def torch_result(*ys: Any) -> Result:
    """``((shape, dtype), ...)`` of torch tensors."""
    return tuple((tuple(int(d) for d in y.shape), normalize_dtype(y.dtype)) for y in ys)


def torch_oracle(fn: Callable[..., Any]) -> Oracle:
    """An `Oracle` from ``fn(layer, *tensors) -> tensor | tuple of tensors``; the
    inputs arrive as torch tensors."""

    @functools.wraps(fn)
    def run(layer: Layer, specs: Specs) -> Result:
        ts = [torch_tensor(s) for s in specs]
        if len({t.device.type for t in ts}) > 1:  # some large: all on meta
            ts = [torch_tensor(s, device="meta") for s in specs]
        out = fn(layer, *ts)
        return torch_result(*(out if isinstance(out, tuple) else (out,)))

    return Oracle("torch.nn.functional", run, dtypes=True, rejects=True)


# -- JAX ---------------------------------------------------------------------------


def _jax_dtype(name: str) -> Any:
    import jax.numpy as jnp

    if name in FLOATING:  # shape-only oracle: every float runs as float32
        return jnp.float32
    return {"int64": jnp.int32, "uint64": jnp.uint32}.get(name, getattr(jnp, name))


def jax_struct(spec: TensorSpec) -> Any:
    """A ``jax.ShapeDtypeStruct`` of ``spec`` (floats as float32)."""
    import jax

    shape = tuple(int(d) for d in spec.shape)
    return jax.ShapeDtypeStruct(shape, _jax_dtype(spec.dtype))  # type: ignore[no-untyped-call]


def jax_result(*ys: Any) -> Result:
    return tuple((tuple(int(d) for d in y.shape), normalize_dtype(y.dtype)) for y in ys)


def jax_oracle(fn: Callable[..., Any], rejects: bool = True) -> Oracle:
    """An `Oracle` running ``fn(layer, *arrays)`` under ``jax.eval_shape`` (the
    inputs are abstract; ``jax_param`` makes parameters). ``rejects=False``
    where JAX computes what torch refuses for reasons of values, not shapes
    (statistics over a single value)."""

    @functools.wraps(fn)
    def run(layer: Layer, specs: Specs) -> Result:
        import jax

        structs = [jax_struct(s) for s in specs]
        out = jax.eval_shape(lambda *xs: fn(layer, *xs), *structs)
        return jax_result(*(out if isinstance(out, tuple) else (out,)))

    return Oracle("jax.eval_shape", run, dtypes=False, rejects=rejects)


def jax_param(*shape: int) -> Any:
    """A float32 parameter inside a `jax_oracle` function (abstract under eval_shape)."""
    import jax.numpy as jnp

    return jnp.zeros(tuple(int(d) for d in shape), jnp.float32)


def normalize_axis(axis: int, ndim: int) -> int:
    """NumPy's own axis normalization (raises ``AxisError`` out of range)."""
    from numpy.lib.array_utils import normalize_axis_index

    return int(normalize_axis_index(axis, ndim))


# -- issue-2 layers: torch ---------------------------------------------------------


def _t_linear(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    in_features = layer.in_features if layer.in_features is not None else x.shape[-1]
    w = torch_param(layer.out_features, in_features, like=x)
    b = torch_param(layer.out_features, like=x) if layer.bias else None
    return F.linear(x, w, b)


def _float_unary(op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def fn(layer: Any, x: Any) -> Any:
        require_float(TensorSpec._make(tuple(x.shape), normalize_dtype(x.dtype)))
        return op(layer, x)

    return fn


def _t_act(name: str) -> Callable[[Any, Any], Any]:
    def op(layer: Any, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        if name == "relu":
            return F.relu(x)
        if name == "gelu":
            return F.gelu(x, approximate=layer.approximate)
        if name == "tanh":
            return torch.tanh(x)
        if name == "sigmoid":
            return torch.sigmoid(x)
        if name == "silu":
            return F.silu(x)
        if name == "leaky_relu":
            return F.leaky_relu(x, layer.negative_slope)
        if name == "softmax":
            return F.softmax(x, dim=layer.dim)
        if name == "dropout":
            return F.dropout(x, layer.p, training=False)
        raise NotApplicable(name)

    return op


def _t_identity(layer: Any, x: Any) -> Any:
    return x


def _t_flatten(layer: Any, x: Any) -> Any:
    import torch

    return torch.flatten(x, layer.start_dim, layer.end_dim)


def _t_unflatten(layer: Any, x: Any) -> Any:
    return x.unflatten(layer.dim, tuple(layer.sizes))


def _t_reshape(layer: Any, x: Any) -> Any:
    """Each sample reshaped (a sample on ``meta`` tells the -1), as Keras' ``Reshape``."""
    import torch

    sample = torch.empty(tuple(x.shape[1:]), device="meta").reshape(layer.shape)
    return x.reshape((x.shape[0], *sample.shape))


def _t_add(layer: Any, *xs: Any) -> Any:
    return functools.reduce(lambda a, b: a + b, xs)


def _t_multiply(layer: Any, *xs: Any) -> Any:
    return functools.reduce(lambda a, b: a * b, xs)


def _t_concat(layer: Any, *xs: Any) -> Any:
    import torch

    if len({x.ndim for x in xs}) > 1 and any(tuple(x.shape) == (0,) for x in xs):
        raise Deviation("torch.cat skips 1-d empty tensors (legacy); lazyshape requires one rank")
    return torch.cat(xs, dim=layer.dim)


# -- issue-2 layers: JAX ---------------------------------------------------------


def _j_linear(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    in_features = layer.in_features if layer.in_features is not None else x.shape[-1]
    w = jax_param(layer.out_features, in_features)
    y = jnp.matmul(x, w.T)
    return y + jax_param(layer.out_features) if layer.bias else y


def _j_act(name: str) -> Callable[[Any, Any], Any]:
    def fn(layer: Any, x: Any) -> Any:
        import jax
        import jax.numpy as jnp

        if name == "relu":
            return jax.nn.relu(x)
        if name == "gelu":
            return jax.nn.gelu(x, approximate=layer.approximate == "tanh")
        if name == "tanh":
            return jnp.tanh(x)
        if name == "sigmoid":
            return jax.nn.sigmoid(x)
        if name == "silu":
            return jax.nn.silu(x)
        if name == "leaky_relu":
            return jax.nn.leaky_relu(x, layer.negative_slope)
        if name == "softmax":
            if x.ndim == 0:  # as torch (and lazyshape): a scalar counts as 1-d
                normalize_axis(layer.dim, 1)
                return jax.nn.softmax(x.reshape((1,)), axis=0).reshape(())
            return jax.nn.softmax(x, axis=layer.dim)
        if name in ("dropout", "identity"):
            return x
        raise NotApplicable(name)

    return fn


def _j_flatten(layer: Any, x: Any) -> Any:
    import jax

    if x.ndim == 0:
        normalize_axis(layer.start_dim, 1)  # a scalar flattens as a 1-d array
        normalize_axis(layer.end_dim, 1)
        return x.reshape((1,))
    s = normalize_axis(layer.start_dim, x.ndim)
    e = normalize_axis(layer.end_dim, x.ndim)
    if s > e:
        raise ValueError("start_dim after end_dim")
    return jax.lax.collapse(x, s, e + 1)


def _j_unflatten(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    d = normalize_axis(layer.dim, x.ndim)
    if 0 in x.shape and -1 in layer.sizes:
        raise NotApplicable("jnp.reshape can't infer a -1 for an empty array (torch's "
                            "unflatten fills it from the dim)")
    return jnp.reshape(x, (*x.shape[:d], *layer.sizes, *x.shape[d + 1 :]))


def _j_reshape(layer: Any, x: Any) -> Any:
    """Each sample reshaped (``jax.vmap``), as Keras' ``Reshape``."""
    import jax
    import jax.numpy as jnp

    return jax.vmap(lambda s: jnp.reshape(s, layer.shape))(x)


def _j_add(layer: Any, *xs: Any) -> Any:
    import jax.numpy as jnp

    return functools.reduce(jnp.add, xs)


def _j_multiply(layer: Any, *xs: Any) -> Any:
    import jax.numpy as jnp

    return functools.reduce(jnp.multiply, xs)


def _j_concat(layer: Any, *xs: Any) -> Any:
    import jax.numpy as jnp

    return jnp.concatenate(xs, axis=layer.dim)


#: ``{kind: (torch oracle, jax oracle)}`` for the issue-2 layers
BASIC: dict[str, tuple[Oracle, Oracle]] = {
    "Linear": (torch_oracle(_t_linear), jax_oracle(_j_linear)),
    "Identity": (torch_oracle(_t_identity), jax_oracle(_j_act("identity"))),
    "Flatten": (torch_oracle(_t_flatten), jax_oracle(_j_flatten)),
    "Unflatten": (torch_oracle(_t_unflatten), jax_oracle(_j_unflatten)),
    "Reshape": (torch_oracle(_t_reshape), jax_oracle(_j_reshape)),
    "Add": (torch_oracle(_t_add), jax_oracle(_j_add)),
    "Multiply": (torch_oracle(_t_multiply), jax_oracle(_j_multiply)),
    "Concat": (torch_oracle(_t_concat), jax_oracle(_j_concat)),
}
for _kind, _name in [
    ("ReLU", "relu"),
    ("GELU", "gelu"),
    ("Tanh", "tanh"),
    ("Sigmoid", "sigmoid"),
    ("SiLU", "silu"),
    ("LeakyReLU", "leaky_relu"),
    ("Softmax", "softmax"),
    ("Dropout", "dropout"),
]:
    BASIC[_kind] = (torch_oracle(_float_unary(_t_act(_name))), jax_oracle(_j_act(_name)))


def as_numpy_dtype(name: str) -> Any:
    """A NumPy dtype for a canonical name (bfloat16 through ml_dtypes)."""
    return numpy_dtype(name)
