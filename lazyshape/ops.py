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
from ._specs import FLOATING, normalize_dtype
from ._specs import promote_types as _promote_types

_NAMESPACES: dict[type, Any] = {}
_BACKEND_OPS: dict[type, Any] = {}
# The hot path of every op below is one dict lookup on the array's type:
# ``(_nn_of(type(x)) or nn(x)).relu(x)`` (a bound ``dict.get``, so no Python call
# frame); `nn` / `namespace` fill the caches on a type's first use.
_nn_of = _BACKEND_OPS.get
_ns_of = _NAMESPACES.get


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


# -- promotion ------------------------------------------------------------------
# Every function below that combines arrays computes in `promote_types` of their
# dtypes on every backend (NumPy alone would give float64 for int32 and float32;
# torch's matmul refuses mixed dtypes): arrays of another dtype are cast first.
# A Python float with a bool or integer array gives float32, as in torch and JAX.


def _cast(x: Any, name: str, dtype: str) -> Any:
    return x if name == dtype else astype(x, backend_for(x).native_dtype(dtype))


def _promoted(x1: Any, x2: Any) -> tuple[Any, Any]:
    """``x1, x2`` in their common dtype (`promote_types`)."""
    d1 = getattr(x1, "dtype", None)
    d2 = getattr(x2, "dtype", None)
    if d1 is None or d2 is None:
        if d1 is None and d2 is None:
            return x1, x2
        a, scalar = (x1, x2) if d2 is None else (x2, x1)
        if isinstance(scalar, float) and normalize_dtype(a.dtype) not in FLOATING:
            a = astype(a, "float32")
            return (a, x2) if d2 is None else (x1, a)
        return x1, x2
    if d1 == d2:  # the common case
        return x1, x2
    n1, n2 = normalize_dtype(d1), normalize_dtype(d2)
    target = promote_types(n1, n2)
    return _cast(x1, n1, target), _cast(x2, n2, target)


def _promoted_all(arrays: Sequence[Any]) -> list[Any]:
    """``arrays`` in their common dtype (`promote_types`)."""
    first = arrays[0].dtype
    if all(a.dtype == first for a in arrays):
        return list(arrays)
    names = [normalize_dtype(a.dtype) for a in arrays]
    target = promote_types(*names)
    return [_cast(a, n, target) for a, n in zip(arrays, names, strict=True)]


def _with_weights(x: Any, weight: Any, bias: Any | None) -> tuple[Any, Any, Any | None]:
    """``x``, ``weight`` and ``bias`` in their common dtype (an int32 input with
    float32 weights computes in float32 on every backend)."""
    dtype = x.dtype
    if weight.dtype == dtype and (bias is None or bias.dtype == dtype):
        return x, weight, bias  # the common case
    arrays = _promoted_all([x, weight] if bias is None else [x, weight, bias])
    return arrays[0], arrays[1], None if bias is None else arrays[2]


def promote_types(*dtypes: str) -> str:
    """The dtype `lazyshape.ops` computes in for arrays of ``dtypes``, on every
    backend: ``int32, float32 -> float32``; ``float16, float32 -> float32``;
    ``uint8, int8 -> int16``; ``float16, bfloat16 -> float32`` (the table is
    `lazyshape.ops` promotion, documented with the layer API)."""
    return _promote_types(*dtypes)


# -- array API (the names layers use most; any other resolves via __getattr__) --


def matmul(x1: Any, x2: Any) -> Any:
    """Matrix product, ``(..., n, k) @ (..., k, m) -> (..., n, m)``, in the
    promoted dtype."""
    if x1.dtype != x2.dtype:
        x1, x2 = _promoted(x1, x2)
    return (_ns_of(type(x1)) or namespace(x1)).matmul(x1, x2)


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> Any:
    """Tensor contraction over ``axes`` (array API), in the promoted dtype."""
    if x1.dtype != x2.dtype:
        x1, x2 = _promoted(x1, x2)
    return (_ns_of(type(x1)) or namespace(x1)).tensordot(x1, x2, axes=axes)


def permute_dims(x: Any, axes: tuple[int, ...]) -> Any:
    """Reorder the dims of ``x``."""
    return (_ns_of(type(x)) or namespace(x)).permute_dims(x, axes)


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` with a new shape of the same size (one ``-1`` allowed)."""
    return (_ns_of(type(x)) or namespace(x)).reshape(x, tuple(shape))


def concat(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along ``axis``."""
    first = arrays[0]
    return (_ns_of(type(first)) or namespace(first)).concat(_promoted_all(arrays), axis=axis)


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Stack arrays along a new ``axis``."""
    first = arrays[0]
    return (_ns_of(type(first)) or namespace(first)).stack(_promoted_all(arrays), axis=axis)


def where(condition: Any, x1: Any, x2: Any) -> Any:
    """Elementwise ``x1 if condition else x2``."""
    x1, x2 = _promoted(x1, x2)
    return (_ns_of(type(condition)) or namespace(condition)).where(condition, x1, x2)


def _unary(name: str) -> Callable[[Any], Any]:
    def op(x: Any) -> Any:
        return getattr(_ns_of(type(x)) or namespace(x), name)(x)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` (array API)."
    return op


def _binary(name: str) -> Callable[[Any, Any], Any]:
    def op(x1: Any, x2: Any, **kwargs: Any) -> Any:
        x1, x2 = _promoted(x1, x2)
        x = x1 if hasattr(x1, "shape") else x2
        return getattr(_ns_of(type(x)) or namespace(x), name)(x1, x2, **kwargs)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` with broadcasting (array API), in the promoted dtype."
    return op


#: the array API's elementwise functions of two arrays (promoted like `add`)
_BINARY_NAMES = frozenset({
    "add", "subtract", "multiply", "divide", "floor_divide", "remainder", "pow", "maximum",
    "minimum", "atan2", "hypot", "copysign", "logaddexp", "nextafter", "equal", "not_equal",
    "less", "less_equal", "greater", "greater_equal", "bitwise_and", "bitwise_or",
    "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift", "logical_and", "logical_or",
    "logical_xor", "vecdot",
})


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
    return (_ns_of(type(x)) or namespace(x)).sum(x, axis=axis, keepdims=keepdims)


def mean(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``."""
    return (_ns_of(type(x)) or namespace(x)).mean(x, axis=axis, keepdims=keepdims)


def max(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Maximum over ``axis``."""
    return (_ns_of(type(x)) or namespace(x)).max(x, axis=axis, keepdims=keepdims)


def astype(x: Any, dtype: str) -> Any:
    """``x`` converted to the dtype named ``dtype`` (``"float32"``)."""
    ns = _ns_of(type(x)) or namespace(x)
    native = getattr(ns, dtype, None)
    if native is None:  # bfloat16 on NumPy: ml_dtypes' type
        import ml_dtypes

        native = getattr(ml_dtypes, dtype)
    return ns.astype(x, native)


# -- NN operations (the backend's ops module) ---------------------------------


def relu(x: Any) -> Any:
    """``max(x, 0)``."""
    return (_nn_of(type(x)) or nn(x)).relu(x)


def gelu(x: Any, approximate: str = "none") -> Any:
    """GELU, exact (erf) or ``approximate="tanh"``, as ``torch.nn.GELU``."""
    return (_nn_of(type(x)) or nn(x)).gelu(x, approximate)


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))``."""
    return (_nn_of(type(x)) or nn(x)).sigmoid(x)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``."""
    return (_nn_of(type(x)) or nn(x)).silu(x)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """``x if x >= 0 else negative_slope * x``."""
    return (_nn_of(type(x)) or nn(x)).leaky_relu(x, negative_slope)


def softmax(x: Any, axis: int = -1) -> Any:
    """Softmax over ``axis`` (numerically stable)."""
    return (_nn_of(type(x)) or nn(x)).softmax(x, axis)


def dropout(x: Any, p: float, rng: Any) -> Any:
    """Zero each element with probability ``p``, scale the rest by ``1/(1-p)``;
    ``rng`` is the backend's source of randomness (from the forward's context)."""
    return (_nn_of(type(x)) or nn(x)).dropout(x, p, rng)


def linear(x: Any, weight: Any, bias: Any | None = None) -> Any:
    """``x @ weight.T + bias``, weight of shape ``(out, in)``."""
    x, weight, bias = _with_weights(x, weight, bias)
    return (_nn_of(type(x)) or nn(x)).linear(x, weight, bias)


def pad(x: Any, pads: tuple[tuple[int, int], ...], mode: str = "constant") -> Any:
    """Pad the trailing ``len(pads)`` dims by ``(lo, hi)`` each; ``mode`` is
    ``"constant"`` (zeros), ``"reflect"``, ``"replicate"`` or ``"circular"``."""
    return (_nn_of(type(x)) or nn(x)).pad(x, pads, mode)


def conv(
    x: Any,
    weight: Any,
    bias: Any | None,
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int = 1,
) -> Any:
    """N-d convolution: input ``(N, C, *d)``, weight ``(out, C/groups, *k)``,
    explicit zero padding ``(lo, hi)`` per spatial dim -> ``(N, out, *d_out)``."""
    x, weight, bias = _with_weights(x, weight, bias)
    return (_nn_of(type(x)) or nn(x)).conv(x, weight, bias, stride, padding, dilation, groups)


def conv_transpose(
    x: Any,
    weight: Any,
    bias: Any | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int = 1,
) -> Any:
    """N-d transposed convolution: input ``(N, C, *d)``, weight ``(C, out/groups, *k)``
    -> ``(N, out, (d - 1)*s - 2p + dil*(k - 1) + output_padding + 1)``."""
    x, weight, bias = _with_weights(x, weight, bias)
    return (_nn_of(type(x)) or nn(x)).conv_transpose(
        x, weight, bias, stride, padding, output_padding, dilation, groups
    )


def max_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool = False,
) -> Any:
    """Max over windows of the trailing ``len(kernel_size)`` dims."""
    return (_nn_of(type(x)) or nn(x)).max_pool(x, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool(
    x: Any,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Any:
    """Mean over windows of the trailing ``len(kernel_size)`` dims (torch's divisor)."""
    return (_nn_of(type(x)) or nn(x)).avg_pool(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def adaptive_avg_pool(x: Any, output_size: tuple[int, ...]) -> Any:
    """Average pooling to a fixed ``output_size`` of the trailing dims (torch's bins)."""
    return (_nn_of(type(x)) or nn(x)).adaptive_avg_pool(x, output_size)


def embedding(ids: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of ``weight (num, dim)`` for integer ``ids (*)`` -> ``(*, dim)``."""
    return (_nn_of(type(weight)) or nn(weight)).embedding(ids, weight, padding_idx)


def scaled_dot_product_attention(
    q: Any,
    k: Any,
    v: Any,
    key_padding_mask: Any | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    rng: Any = None,
) -> Any:
    """``softmax(q @ k^T / sqrt(D)) @ v`` for ``q (B, H, T, D)``, ``k, v (B, H, S, D)``;
    ``key_padding_mask (B, S)`` is True where a key is ignored."""
    return (_nn_of(type(q)) or nn(q)).scaled_dot_product_attention(
        q, k, v, key_padding_mask, causal, dropout_p, rng
    )


def dot_product_attention(
    q: Any, k: Any, v: Any, *, is_causal: bool = False, scale: float | None = None
) -> Any:
    """``softmax(q @ k^T * scale) @ v`` with the framework's fused kernel, for
    ``q (B, H, T, D)``, ``k, v (B, Hkv, S, D)`` where ``Hkv`` divides ``H``
    (grouped-query: query head ``i`` attends with key / value head ``i // (H //
    Hkv)``); ``scale`` defaults to ``1 / sqrt(D)``; ``is_causal``: query ``i``
    sees keys ``j <= i``. ``-> (B, H, T, D)``."""
    return (_nn_of(type(q)) or nn(q)).dot_product_attention(
        q, k, v, is_causal=is_causal, scale=scale
    )


def rotary_embedding(x: Any, theta: float = 10000.0) -> Any:
    """Llama's rotary position embedding of ``x (..., T, D)``, ``D`` even:
    position ``t`` along dim -2 rotates by angles ``t / theta ** (arange(0, D, 2)
    / D)``, pairing the two halves of the last dim (``x * cos + rotate_half(x) *
    sin``), cos and sin computed in float32 and cast to ``x``'s dtype."""
    return (_nn_of(type(x)) or nn(x)).rotary_embedding(x, theta)


def lstm(
    x: Any,
    h0: Any | None,
    c0: Any | None,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any | None,
    b_hh: Any | None,
    reverse: bool = False,
) -> Any:
    """One LSTM layer, one direction, over ``x (T, B, F)`` (gates i, f, g, o):
    ``(out (T, B, H), h_n (B, H), c_n (B, H))``."""
    return (_nn_of(type(x)) or nn(x)).lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)


def gru(
    x: Any,
    h0: Any | None,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any | None,
    b_hh: Any | None,
    reverse: bool = False,
) -> Any:
    """One GRU layer, one direction, over ``x (T, B, F)`` (gates r, z, n):
    ``(out (T, B, H), h_n (B, H))``."""
    return (_nn_of(type(x)) or nn(x)).gru(x, h0, w_ih, w_hh, b_ih, b_hh, reverse)


def __getattr__(name: str) -> Callable[..., Any]:
    """Any other operation, dispatched on its first array argument: the owning
    backend's NN op of that name if it has one, else the array-API function.
    Made once per name (then a plain attribute of this module), and resolved
    once per array type."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _BINARY_NAMES:
        op2 = _binary(name)
        globals()[name] = op2
        return op2
    resolved: dict[type, Callable[..., Any]] = {}

    def op(*args: Any, **kwargs: Any) -> Any:
        first = next((a for a in args if hasattr(a, "shape")), None)
        if first is None:
            raise TypeError(f"ls.ops.{name} needs an array argument")
        fn = resolved.get(type(first))
        if fn is None:
            fn = getattr(nn(first), name, None)
            if fn is None:
                fn = getattr(namespace(first), name)
            resolved[type(first)] = fn
        return fn(*args, **kwargs)

    op.__name__ = op.__qualname__ = name
    if not name.startswith("_"):
        globals()[name] = op
    return op
