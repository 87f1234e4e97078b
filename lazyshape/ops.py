"""``ls.ops``: backend-neutral operations for layer computations.

Each function dispatches on the framework of its array arguments. The array
API standard's functions come from that framework's array-API namespace
(through ``array-api-compat``); the NN operations the standard lacks
(activations, softmax, dropout, conv, pooling, ...) come from the owning
backend's ``ops`` module. Any other array-API name is looked up on first use,
so ``ls.ops.tensordot`` works as the standard defines it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._backends import backend_for

_NAMESPACES: dict[type, Any] = {}
_BACKEND_OPS: dict[type, Any] = {}


def namespace(x: Any) -> Any:
    """The array-API namespace of array ``x`` (cached per array type)."""
    tp = type(x)
    ns = _NAMESPACES.get(tp)
    if ns is None:
        import array_api_compat

        ns = array_api_compat.array_namespace(x)
        _NAMESPACES[tp] = ns
    return ns


def nn(x: Any) -> Any:
    """The NN-op module of the backend owning array ``x``."""
    tp = type(x)
    mod = _BACKEND_OPS.get(tp)
    if mod is None:
        mod = backend_for(x).ops()
        _BACKEND_OPS[tp] = mod
    return mod


# -- array API (the names layers use most; any other resolves via __getattr__) --


def matmul(x1: Any, x2: Any) -> Any:
    """Matrix product, ``(..., n, k) @ (..., k, m) -> (..., n, m)``."""
    return namespace(x1).matmul(x1, x2)


def permute_dims(x: Any, axes: tuple[int, ...]) -> Any:
    """Reorder the dims of ``x``."""
    return namespace(x).permute_dims(x, axes)


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` with a new shape of the same size (one ``-1`` allowed)."""
    return namespace(x).reshape(x, tuple(shape))


def concat(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along ``axis``."""
    return namespace(arrays[0]).concat(list(arrays), axis=axis)


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Stack arrays along a new ``axis``."""
    return namespace(arrays[0]).stack(list(arrays), axis=axis)


def where(condition: Any, x1: Any, x2: Any) -> Any:
    """Elementwise ``x1 if condition else x2``."""
    return namespace(condition).where(condition, x1, x2)


def _unary(name: str) -> Callable[[Any], Any]:
    def op(x: Any) -> Any:
        return getattr(namespace(x), name)(x)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` (array API)."
    return op


def _binary(name: str) -> Callable[[Any, Any], Any]:
    def op(x1: Any, x2: Any) -> Any:
        return getattr(namespace(x1 if hasattr(x1, "shape") else x2), name)(x1, x2)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` with broadcasting (array API)."
    return op


exp = _unary("exp")
log = _unary("log")
sqrt = _unary("sqrt")
tanh = _unary("tanh")
abs = _unary("abs")  # noqa: A001 - the array API's name
maximum = _binary("maximum")
minimum = _binary("minimum")
add = _binary("add")
subtract = _binary("subtract")
multiply = _binary("multiply")
divide = _binary("divide")


def sum(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis``."""
    return namespace(x).sum(x, axis=axis, keepdims=keepdims)


def mean(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``."""
    return namespace(x).mean(x, axis=axis, keepdims=keepdims)


def max(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Maximum over ``axis``."""
    return namespace(x).max(x, axis=axis, keepdims=keepdims)


def astype(x: Any, dtype: str) -> Any:
    """``x`` converted to the dtype named ``dtype`` (``"float32"``)."""
    ns = namespace(x)
    return ns.astype(x, getattr(ns, dtype))


# -- NN operations (the backend's ops module) ---------------------------------


def relu(x: Any) -> Any:
    """``max(x, 0)``."""
    return nn(x).relu(x)


def gelu(x: Any, approximate: str = "none") -> Any:
    """GELU, exact (erf) or ``approximate="tanh"``, as ``torch.nn.GELU``."""
    return nn(x).gelu(x, approximate)


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))``."""
    return nn(x).sigmoid(x)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``."""
    return nn(x).silu(x)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """``x if x >= 0 else negative_slope * x``."""
    return nn(x).leaky_relu(x, negative_slope)


def softmax(x: Any, axis: int = -1) -> Any:
    """Softmax over ``axis`` (numerically stable)."""
    return nn(x).softmax(x, axis)


def dropout(x: Any, p: float, rng: Any) -> Any:
    """Zero each element with probability ``p``, scale the rest by ``1/(1-p)``;
    ``rng`` is the backend's source of randomness (from the forward's context)."""
    return nn(x).dropout(x, p, rng)


def linear(x: Any, weight: Any, bias: Any | None = None) -> Any:
    """``x @ weight.T + bias``, weight of shape ``(out, in)``."""
    return nn(x).linear(x, weight, bias)


def __getattr__(name: str) -> Callable[..., Any]:
    """Any other operation, dispatched on its first array argument: the owning
    backend's NN op of that name if it has one, else the array-API function."""
    if name.startswith("__"):
        raise AttributeError(name)

    def op(*args: Any, **kwargs: Any) -> Any:
        first = next((a for a in args if hasattr(a, "shape")), None)
        if first is None:
            raise TypeError(f"ls.ops.{name} needs an array argument")
        fn = getattr(nn(first), name, None)
        if fn is None:
            fn = getattr(namespace(first), name)
        return fn(*args, **kwargs)

    op.__name__ = op.__qualname__ = name
    return op
