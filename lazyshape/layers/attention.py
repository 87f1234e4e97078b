"""The attention family: ``MultiheadAttention``, PyTorch's multi-head
attention whose embedding size is inferred, returning the attended output
only; and the blocks of Llama-style transformers, with Hugging Face
transformers' parameter names: ``Attention`` (grouped-query heads, optional
rotary position embedding, each framework's fused attention kernel),
``RotaryEmbedding`` and the ``SwiGLU`` MLP. The module holds the rules (pure
functions of specs and hyperparameters), then the layer classes.

``MultiheadAttention``'s layout: ``(B, T, E)`` (``batch_first=True``) or
``(T, B, E)``; the query has length ``T``, key and value length ``S``; the
optional ``key_padding_mask`` is a bool ``(B, S)`` (True = ignore that key).
``Attention`` takes ``(B, T, E)`` (and keys / values ``(B, S, E)``);
``RotaryEmbedding`` takes heads, ``(B, heads, T, head_dim)``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .. import ops
from .._cost import INTERNAL, KEEPS_NOTHING, Cost, Operand, Saved, matmul_cost
from .._dims import Dim, definitely_equal, eq, format_dim, format_shape, prod
from .._errors import ShapeError
from .._init import fan_in_uniform, kaiming_uniform, xavier_uniform, zeros
from .._layer import Context, Layer
from .._specs import ParamSpec, TensorSpec, itemsize
from ._common import (
    FLOATING,
    assume_equal,
    check_floating,
    check_rank,
    positive_int,
    probability,
    unify,
)
from .linear import LINEAR_WEIGHT_INIT, check_linear

__all__ = [
    "MultiheadAttention",
    "attention_costs",
    "attention_saved",
    "check_num_heads",
    "packed_projections",
    "split_inputs",
    "AttentionSizes",
    "check_attention",
    "attention_output",
    "attention_params",
    "Attention",
    "RotaryEmbedding",
    "SwiGLU",
    "DEFAULT_ROPE_THETA",
    "check_kv_heads",
    "normalize_rope",
    "split_qkv",
    "GQASizes",
    "check_rotary",
    "check_gqa",
    "rotary_output",
    "gqa_params",
    "swiglu_output",
    "swiglu_params",
]


_INPUTS = (
    "1 input (self-attention), 3 (query, key, value) "
    "or 4 (query, key, value, key_padding_mask)"
)

#: out_proj is torch's NonDynamicallyQuantizableLinear: nn.Linear's default init
#: (its bias is then zeroed by MultiheadAttention._reset_parameters)
_OUT_PROJ_INIT = kaiming_uniform(a=math.sqrt(5))
_IN_PROJ_INIT = xavier_uniform()
_ZEROS = zeros()

#: the base of the rotary position embedding's frequencies (Llama's ``rope_theta``)
DEFAULT_ROPE_THETA = 10000.0

_QKV_INPUTS = "1 input (self-attention) or 3 (query, key, value)"


# -- hyperparameters (at construction) -------------------------------------------


def check_num_heads(embed_dim: int | None, num_heads: int, kind: str) -> None:
    """A given ``embed_dim`` must split evenly into ``num_heads`` heads."""
    if embed_dim is not None and embed_dim % num_heads:
        raise ShapeError(
            "`embed_dim` divisible by `num_heads`",
            f"`embed_dim` (={embed_dim}), `num_heads` (={num_heads})",
            kind=kind,
        )


def packed_projections(
    embed_dim: int | None, kdim: int | None, vdim: int | None, kind: str
) -> bool:
    """Whether the three input projections are torch's packed ``in_proj_weight``
    (``kdim == vdim == embed_dim``, the default) or ``q/k/v_proj_weight``.

    Decided at construction, as torch does: parameter names never depend on
    input shapes. Other key / value sizes therefore need ``embed_dim`` given."""
    if kdim is None and vdim is None:
        return True
    if embed_dim is None:
        given = ", ".join(f"`{n}` (={v})" for n, v in (("kdim", kdim), ("vdim", vdim)) if v)
        raise ShapeError(
            "`embed_dim` given with `kdim` or `vdim` (torch's separate projections)",
            f"{given} without `embed_dim`",
            kind=kind,
        )
    return kdim in (None, embed_dim) and vdim in (None, embed_dim)


def _positive_number(value: object, name: str, kind: str) -> float:
    """A finite real number > 0 (at construction)."""
    number = None
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        with contextlib.suppress(OverflowError):  # (an int beyond any float)
            number = float(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise ShapeError(
            f"`{name}` to be a positive finite number", f"`{name}` (={value!r})", kind=kind
        )
    return number


def _head_dim(value: object, kind: str, rope: bool) -> int | None:
    """None (inferred), or a positive int; an even one with RoPE."""
    if value is None:
        return None
    head_dim = positive_int(value, "head_dim", kind)
    if rope and head_dim % 2:
        raise ShapeError(
            "an even `head_dim` with RoPE (it rotates the two halves of each head)",
            f"`head_dim` (={head_dim})",
            kind=kind,
        )
    return head_dim


def check_kv_heads(num_heads: int, num_kv_heads: object, kind: str) -> int:
    """``num_kv_heads`` (default ``num_heads``) must divide ``num_heads``: each
    key / value head serves a group of ``num_heads // num_kv_heads`` query heads."""
    if num_kv_heads is None:
        return num_heads
    kv = positive_int(num_kv_heads, "num_kv_heads", kind)
    if num_heads % kv:
        raise ShapeError(
            "`num_kv_heads` dividing `num_heads` (each key/value head serves a group of "
            "query heads)",
            f"`num_heads` (={num_heads}), `num_kv_heads` (={kv})",
            kind=kind,
        )
    return kv


def normalize_rope(
    rope: object, head_dim: int | None, kind: str
) -> tuple[float | None, int | None]:
    """``(rope_theta or None, head_dim)`` from ``rope``: None (no rotary
    embedding), a `RotaryEmbedding` (its base; its ``head_dim``, when given, is
    the head dim) or a number (the base, ``rope_theta``)."""
    if rope is None:
        return None, head_dim
    if isinstance(rope, RotaryEmbedding):
        if rope.head_dim is not None:
            if head_dim is not None and head_dim != rope.head_dim:
                raise ShapeError(
                    "the RotaryEmbedding's `head_dim` equal to `head_dim`",
                    f"`head_dim` (={head_dim}), RotaryEmbedding `head_dim` (={rope.head_dim})",
                    kind=kind,
                )
            head_dim = rope.head_dim
        return rope.rope_theta, head_dim
    if isinstance(rope, bool) or not isinstance(rope, (int, float)):
        raise ShapeError(
            "`rope` a RotaryEmbedding, a RoPE base (`rope_theta`, a positive number) or None",
            f"`rope` (={rope!r})",
            kind=kind,
        )
    return _positive_number(rope, "rope", kind), head_dim


# -- validation ------------------------------------------------------------------


def split_inputs(
    inputs: tuple[TensorSpec, ...],
) -> tuple[TensorSpec, TensorSpec, TensorSpec, TensorSpec | None]:
    """``(query, key, value, key_padding_mask)`` from 1, 3 or 4 inputs."""
    n = len(inputs)
    if n == 1:
        return inputs[0], inputs[0], inputs[0], None
    if n == 3:
        return inputs[0], inputs[1], inputs[2], None
    if n == 4:
        return inputs[0], inputs[1], inputs[2], inputs[3]
    raise ShapeError(_INPUTS, f"{n} inputs")


class AttentionSizes(NamedTuple):
    """The sizes an attention call resolves to."""

    batch: Dim
    embed_dim: Dim
    kdim: Dim
    vdim: Dim
    #: torch packs the three projections in one ``in_proj_weight`` when
    #: ``kdim == vdim == embed_dim``; else ``q/k/v_proj_weight``
    packed: bool


def _check_3d(x: TensorSpec, what: str, layout: str) -> None:
    if x.ndim != 3:
        hint = " (is the batch dim missing?)" if x.ndim == 2 else ""
        raise ShapeError(
            f"`{what}` with 3 dims {layout}",
            f"`{what}` shape {format_shape(x.shape)} ({x.ndim} dims){hint}",
        )


def _match(
    got: Dim, want: Dim | None, expected: Callable[[], str], shape_of: str, x: TensorSpec
) -> Dim:
    """``got`` checked against a given size ``want`` (None: ``got`` as it is);
    ``expected()`` words the requirement on failure."""
    if want is None or got is want:
        return got
    same = eq(got, want)
    if same is False:
        raise ShapeError(expected(), f"{shape_of} shape {format_shape(x.shape)}")
    if same is None:
        assume_equal(got, want)
    return want


def _check_query(q: TensorSpec, embed_dim: int | None, layout: str) -> Dim:
    """Validate the floating-point query of shape ``layout``; its embed dim E
    (checked against ``embed_dim`` when given, at least 1)."""
    check_rank(q, 3, layout)
    if q.dtype not in FLOATING:
        check_floating(q)
    e = q.shape[2]
    if embed_dim is not None:  # (no message to word when nothing is checked)
        e = _match(e, embed_dim, lambda: f"expected last query dim {embed_dim} (embed_dim)",
                   "query", q)
    if type(e) is int and e == 0:
        raise ShapeError("an embedding dim E >= 1", f"query shape {format_shape(q.shape)}")
    return e


def _check_heads_divide(e: Dim, num_heads: int, q: TensorSpec, alternative: str = "") -> None:
    """E divisible by ``num_heads`` (assumed when symbolic and undecided)."""
    rem = e % num_heads
    if type(rem) is int and rem:
        raise ShapeError(
            f"an embedding dim E divisible by `num_heads`{alternative}",
            f"E={format_dim(e)}, `num_heads` (={num_heads}) (query shape {format_shape(q.shape)})",
        )
    if type(rem) is not int and eq(rem, 0) is None:
        assume_equal(rem, 0)


def _check_key_value(
    q: TensorSpec, k: TensorSpec, v: TensorSpec, layouts: tuple[str, str], b: int, t: int,
    each: Callable[[TensorSpec, str], object] | None = None,
) -> tuple[Dim, Dim]:
    """Validate a separate key and value (3 dims of ``layouts``, the query's
    dtype, then ``each(x, "key"/"value")``); their batch, unified with the
    query's (dim ``b``), and their sequence length (dim ``t``)."""
    for x, what, layout in ((k, "key", layouts[0]), (v, "value", layouts[1])):
        _check_3d(x, what, layout)
        if x.dtype != q.dtype:
            raise ShapeError(
                f"`{what}` of the query's dtype {q.dtype}", f"`{what}` dtype {x.dtype}"
            )
        if each is not None:
            each(x, what)
    batch = unify(q.shape[b], k.shape[b], "query and key batch dims")
    batch = unify(batch, v.shape[b], "query and value batch dims")
    return batch, unify(k.shape[t], v.shape[t], "key and value sequence dims")


def check_attention(
    q: TensorSpec,
    k: TensorSpec,
    v: TensorSpec,
    mask: TensorSpec | None,
    num_heads: int,
    embed_dim: int | None,
    kdim: int | None,
    vdim: int | None,
    batch_first: bool,
    packed: bool,
) -> AttentionSizes:
    """Validate query, key, value (and mask); return the resolved sizes. The key
    and value sizes are ``kdim`` / ``vdim`` when given, else the embedding dim."""
    b, t = (0, 1) if batch_first else (1, 0)
    e = _check_query(q, embed_dim, "(B, T, E)" if batch_first else "(T, B, E)")
    _check_heads_divide(e, num_heads, q)
    if k is q and v is q:
        if kdim is not None:
            _match(e, kdim, lambda: _size_needed("key", "kdim", kdim, e), "key", k)
        if vdim is not None:
            _match(e, vdim, lambda: _size_needed("value", "vdim", vdim, e), "value", v)
        return AttentionSizes(q.shape[b], e, e, e, packed)
    layouts = (("(B, S, kdim)", "(B, S, vdim)") if batch_first
               else ("(S, B, kdim)", "(S, B, vdim)"))
    batch, seq = _check_key_value(q, k, v, layouts, b, t)
    kd = _match(k.shape[2], e if kdim is None else kdim,
                lambda: _size_needed("key", "kdim", kdim, e), "key", k)
    vd = _match(v.shape[2], e if vdim is None else vdim,
                lambda: _size_needed("value", "vdim", vdim, e), "value", v)
    if mask is not None:
        _check_mask(mask, batch, seq)
    return AttentionSizes(batch, e, kd, vd, packed)


def _size_needed(what: str, name: str, given: int | None, e: Dim) -> str:
    if given is not None:
        return f"expected last {what} dim {given} ({name})"
    return (
        f"expected last {what} dim {format_dim(e)} (the embedding dim; give `embed_dim` and "
        f"`{name}` for other {what} sizes)"
    )


def _check_mask(mask: TensorSpec, batch: Dim, seq: Dim) -> None:
    """``key_padding_mask``: bool ``(B, S)``."""
    if mask.dtype != "bool":
        raise ShapeError(
            "a bool `key_padding_mask` (True = ignore that key)", f"dtype {mask.dtype}"
        )
    if mask.ndim != 2:
        raise ShapeError(
            "`key_padding_mask` with 2 dims (B, S)",
            f"`key_padding_mask` shape {format_shape(mask.shape)} ({mask.ndim} dims)",
        )
    try:
        unify(mask.shape[0], batch, "batch")
        unify(mask.shape[1], seq, "sequence")
    except ShapeError:
        raise ShapeError(
            f"`key_padding_mask` of shape (B, S) = {format_shape((batch, seq))}",
            f"`key_padding_mask` shape {format_shape(mask.shape)}",
        ) from None
    if 0 in (batch, seq):  # torch can't merge an empty padding mask into its heads
        raise ShapeError(
            "B >= 1 and S >= 1 with a `key_padding_mask`",
            f"`key_padding_mask` shape {format_shape(mask.shape)}",
        )


def split_qkv(inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, TensorSpec, TensorSpec]:
    """``(query, key, value)`` from 1 (self-attention) or 3 inputs."""
    if len(inputs) == 1:
        return inputs[0], inputs[0], inputs[0]
    if len(inputs) == 3:
        return inputs[0], inputs[1], inputs[2]
    raise ShapeError(_QKV_INPUTS, f"{len(inputs)} inputs")


def _even_head_dim(d: Dim, got: Callable[[], str]) -> None:
    """RoPE rotates the two halves of each head: an even head dim >= 2 (a
    symbolic one is assumed even, and reported)."""
    if type(d) is int:
        if d < 2 or d % 2:
            raise ShapeError(
                "an even head dim >= 2 (RoPE rotates the two halves of each head)", got()
            )
        return
    rem = d % 2
    same = eq(rem, 0)
    if same is False:
        raise ShapeError("an even head dim (RoPE rotates the two halves of each head)", got())
    if same is None:
        assume_equal(rem, 0)


def check_rotary(x: TensorSpec, head_dim: int | None) -> Dim:
    """Heads ``(B, heads, T, head_dim)``, floating, with an even head dim
    (``head_dim`` when given); returns the head dim."""
    check_rank(x, 4, "(B, heads, T, head_dim)")
    if x.dtype not in FLOATING:
        check_floating(x)
    d = _match(x.shape[3], head_dim, lambda: f"expected last input dim {head_dim} (head_dim)",
               "input", x)
    _even_head_dim(d, lambda: f"head dim {format_dim(d)} (input shape {format_shape(x.shape)})")
    return d


def _query_e(what: str, e: Dim) -> Callable[[], str]:
    return lambda: f"expected last {what} dim {format_dim(e)} (the query's E)"


class GQASizes(NamedTuple):
    """The sizes an `Attention` call resolves to."""

    batch: Dim
    embed_dim: Dim
    head_dim: Dim
    #: rows of ``q_proj.weight`` (``num_heads * head_dim``) and of ``k_proj`` /
    #: ``v_proj`` (``num_kv_heads * head_dim``)
    q_size: Dim
    kv_size: Dim


def check_gqa(
    q: TensorSpec,
    k: TensorSpec,
    v: TensorSpec,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int | None,
    embed_dim: int | None,
    rope: bool,
) -> GQASizes:
    """Validate query, key and value ``(B, T|S, E)``; return the resolved sizes.
    Without ``head_dim`` the head dim is ``E // num_heads`` (E divisible by
    ``num_heads``); with RoPE it must be even."""
    e = _check_query(q, embed_dim, "(B, T, E)")
    if head_dim is None:
        _check_heads_divide(e, num_heads, q, " (or `head_dim` given)")
        d = e // num_heads
        if rope:
            _even_head_dim(d, lambda: f"head dim {format_dim(d)} = E // `num_heads` "
                           f"(query shape {format_shape(q.shape)}, `num_heads` (={num_heads}))")
        q_size: Dim = e  # num_heads * (E // num_heads)
        kv_size = e if num_kv_heads == num_heads else e // (num_heads // num_kv_heads)
    else:
        d, q_size, kv_size = head_dim, num_heads * head_dim, num_kv_heads * head_dim
    if k is q and v is q:
        return GQASizes(q.shape[0], e, d, q_size, kv_size)
    batch, _ = _check_key_value(q, k, v, ("(B, S, E)", "(B, S, E)"), 0, 1,
                                lambda x, what: _match(x.shape[2], e, _query_e(what, e), what, x))
    return GQASizes(batch, e, d, q_size, kv_size)


# -- shapes ----------------------------------------------------------------------


def attention_output(q: TensorSpec, sizes: AttentionSizes | GQASizes) -> TensorSpec:
    """The query's shape, ``(B, T, E)`` (or ``(T, B, E)``), with E the embed dim."""
    return TensorSpec._make((*q.shape[:2], sizes.embed_dim), q.dtype)


def rotary_output(x: TensorSpec, head_dim: int | None) -> TensorSpec:
    """The input's spec, ``(B, heads, T, head_dim)`` (its own dims, as a norm's)."""
    check_rotary(x, head_dim)
    return x




def swiglu_output(x: TensorSpec, in_features: int | None, out_features: int | None) -> TensorSpec:
    """``(*, in_features) -> (*, out_features)`` (``out_features`` default: ``in_features``)."""
    d = check_linear(x, in_features)
    return TensorSpec._make((*x.shape[:-1], d if out_features is None else out_features),
                            x.dtype)


# -- parameters ------------------------------------------------------------------


def attention_params(sizes: AttentionSizes, bias: bool) -> dict[str, ParamSpec]:
    """torch's names, shapes and init: ``in_proj_weight (3E, E)`` xavier-uniform
    (``q/k/v_proj_weight (E, E|kdim|vdim)`` when key or value sizes differ),
    ``in_proj_bias (3E,)`` zeros, ``out_proj.weight (E, E)`` nn.Linear's
    default, ``out_proj.bias (E,)`` zeros."""
    return dict(_attention_params(sizes.embed_dim, sizes.kdim, sizes.vdim, sizes.packed, bias))


@functools.lru_cache(maxsize=512)
def _attention_params(
    e: Dim, kdim: Dim, vdim: Dim, packed: bool, bias: bool
) -> dict[str, ParamSpec]:
    # Specs are immutable values: layers of one size share them (callers copy the dict).
    params: dict[str, ParamSpec] = {}
    if packed:
        params["in_proj_weight"] = ParamSpec._make((3 * e, e), None, _IN_PROJ_INIT)
    else:
        params["q_proj_weight"] = ParamSpec._make((e, e), None, _IN_PROJ_INIT)
        params["k_proj_weight"] = ParamSpec._make((e, kdim), None, _IN_PROJ_INIT)
        params["v_proj_weight"] = ParamSpec._make((e, vdim), None, _IN_PROJ_INIT)
    if bias:
        params["in_proj_bias"] = ParamSpec._make((3 * e,), None, _ZEROS)
    params["out_proj.weight"] = ParamSpec._make((e, e), None, _OUT_PROJ_INIT)
    if bias:
        params["out_proj.bias"] = ParamSpec._make((e,), None, _ZEROS)
    return params


def _linear(params: dict[str, ParamSpec], name: str, out: Dim, fan_in: Dim, bias: bool) -> None:
    """``{name}.weight (out, fan_in)`` and ``{name}.bias (out,)``, nn.Linear's
    names and default initialization."""
    params[f"{name}.weight"] = ParamSpec._make((out, fan_in), None, LINEAR_WEIGHT_INIT)
    if bias:
        params[f"{name}.bias"] = ParamSpec._make((out,), None, fan_in_uniform(fan_in))


def gqa_params(sizes: GQASizes, bias: bool) -> dict[str, ParamSpec]:
    """Hugging Face Llama's: ``q_proj.weight (num_heads * head_dim, E)``,
    ``k_proj.weight`` and ``v_proj.weight (num_kv_heads * head_dim, E)``,
    ``o_proj.weight (E, num_heads * head_dim)`` (and their biases), each
    nn.Linear's default initialization."""
    return dict(_gqa_params(sizes.embed_dim, sizes.q_size, sizes.kv_size, bias))


@functools.lru_cache(maxsize=512)
def _gqa_params(e: Dim, q_size: Dim, kv_size: Dim, bias: bool) -> dict[str, ParamSpec]:
    # Specs are immutable values: layers of one size share them (callers copy the dict).
    params: dict[str, ParamSpec] = {}
    _linear(params, "q_proj", q_size, e, bias)
    _linear(params, "k_proj", kv_size, e, bias)
    _linear(params, "v_proj", kv_size, e, bias)
    _linear(params, "o_proj", e, q_size, bias)
    return params


def swiglu_params(
    x: TensorSpec, hidden: int, out_features: int | None, bias: bool, in_features: int | None
) -> dict[str, ParamSpec]:
    """Hugging Face Llama's MLP: ``gate_proj.weight`` and ``up_proj.weight
    (hidden, in)``, ``down_proj.weight (out, hidden)`` (and their biases), each
    nn.Linear's default initialization."""
    fan_in = x.shape[-1] if in_features is None else in_features
    return dict(_swiglu_params(hidden, fan_in, fan_in if out_features is None else out_features,
                               bias))


@functools.lru_cache(maxsize=512)
def _swiglu_params(hidden: int, fan_in: Dim, out: Dim, bias: bool) -> dict[str, ParamSpec]:
    # Specs are immutable values: layers of one size share them (callers copy the dict).
    params: dict[str, ParamSpec] = {}
    _linear(params, "gate_proj", hidden, fan_in, bias)
    _linear(params, "up_proj", hidden, fan_in, bias)
    _linear(params, "down_proj", out, hidden, bias)
    return params


# -- layers ----------------------------------------------------------------------


def attention_costs(
    batch: Dim, t: Dim, s: Dim, heads: int, head_dim: Dim, projections: tuple[
        tuple[Dim, Dim, Dim, Operand, str], ...]
) -> tuple[Cost, ...]:
    """An attention's products: each projection ``(rows, out, in, factor,
    weight)`` (a linear map of ``rows`` vectors), then the scores ``Q @ K.T``
    and ``weights @ V`` over ``batch * heads`` heads of ``head_dim``, queries of
    length ``t`` and keys of length ``s``, as FlopCounterMode counts
    ``scaled_dot_product_attention`` (a causal mask is not discounted; grouped
    key heads count as repeated to every query head)."""
    costs = [matmul_cost(rows, out, d_in, factor, weight)
             for rows, out, d_in, factor, weight in projections]
    costs.append(matmul_cost(t, s, head_dim, INTERNAL, INTERNAL, batch * heads))
    costs.append(matmul_cost(t, head_dim, s, INTERNAL, INTERNAL, batch * heads))
    return tuple(costs)


@functools.lru_cache(maxsize=256)
def _mha_costs(b: Dim, t: Dim, s: Dim, e: Dim, h: int, kd: Dim, vd: Dim, packed: bool,
               cross: bool) -> tuple[Cost, ...]:
    """`MultiheadAttention.costs` from its sizes: batch ``b``, query and key
    lengths ``t`` and ``s``, embedding ``e``, ``h`` heads, key and value sizes
    (a pure, bounded memo: the same attention, block after block, is one lookup)."""
    names = (("in_proj_weight",) * 3 if packed
             else ("q_proj_weight", "k_proj_weight", "v_proj_weight"))
    ins = (0, 1, 2) if cross else (0, 0, 0)
    projections = ((b * t, e, e, ins[0], names[0]), (b * s, e, kd, ins[1], names[1]),
                   (b * s, e, vd, ins[2], names[2]))
    return (*attention_costs(b, t, s, h, e // h, projections),
            matmul_cost(b * t, e, e, INTERNAL, "out_proj.weight"))


def attention_saved(batch: Dim, t: Dim, s: Dim, heads: int, kv_heads: int, head_dim: Dim,
                    dtype: str, projected_output: bool = True) -> Saved:
    """What an attention's backward keeps besides its inputs, as PyTorch's fused
    CPU attention keeps it: the projected query, key and value heads, the
    attention's output, one float32 log-sum-exp per query and head, and (with
    ``projected_output``) the merged heads the output projection reads."""
    size = itemsize(dtype)
    q = batch * heads * t * head_dim * size
    kv = 2 * batch * kv_heads * s * head_dim * size
    extra = q + kv + q + batch * heads * t * 4
    return Saved((0,), (), extra + q if projected_output else extra)


class MultiheadAttention(Layer):
    """Multi-head scaled dot-product attention, as ``torch.nn.MultiheadAttention``.

    Called on one input ``x`` of shape ``(B, T, E)`` it is self-attention; on
    ``(query, key, value)`` of shapes ``(B, T, E)``, ``(B, S, kdim)``,
    ``(B, S, vdim)`` it attends from the query to the keys; a fourth input,
    a bool ``key_padding_mask`` of shape ``(B, S)``, ignores the keys where it
    is True. With ``batch_first=False`` the sequences are ``(T, B, E)``. The
    output is the attended query, ``(B, T, E)`` (torch's first output; the
    attention weights are not returned). ``causal=True`` lets query ``i``
    attend to keys ``j <= i`` only.

    ``embed_dim`` is inferred from the query's last dim (checked when given)
    and must be divisible by ``num_heads``. Key and value have the embedding
    size unless ``kdim`` / ``vdim`` (with ``embed_dim``) say otherwise, as in
    torch. Parameters are torch's: ``in_proj_weight (3E, E)`` (``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight`` when ``kdim`` or ``vdim`` differs from
    E), ``in_proj_bias (3E,)``, ``out_proj.weight (E, E)``, ``out_proj.bias
    (E,)``, with torch's initialization.
    """

    hparam_names = ("embed_dim", "num_heads", "dropout", "bias", "batch_first", "causal")
    expected_ndim = 3
    needs_context = True

    def __init__(
        self,
        num_heads: int,
        *,
        embed_dim: int | None = None,
        batch_first: bool = True,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = "MultiheadAttention"
        self.num_heads = positive_int(num_heads, "num_heads", kind)
        for key, value in (("embed_dim", embed_dim), ("kdim", kdim), ("vdim", vdim)):
            if value is not None:
                positive_int(value, key, kind)
        check_num_heads(embed_dim, num_heads, kind)
        self._packed = packed_projections(embed_dim, kdim, vdim, kind)
        if not isinstance(batch_first, bool):
            raise ShapeError("`batch_first` a bool", f"`batch_first` (={batch_first!r})", kind=kind)
        self.embed_dim = embed_dim
        self.kdim = kdim
        self.vdim = vdim
        self.batch_first = batch_first
        self.dropout = probability(dropout, "dropout", kind)
        self.bias = bool(bias)
        self.causal = bool(causal)

    def _sizes(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, AttentionSizes]:
        q, k, v, mask = split_inputs(inputs)
        return q, check_attention(
            q, k, v, mask, self.num_heads, self.embed_dim, self.kdim, self.vdim, self.batch_first,
            self._packed,
        )

    def output_spec(self, *inputs: TensorSpec) -> TensorSpec:
        q, sizes = self._sizes(inputs)
        return attention_output(q, sizes)

    def param_specs(self, *inputs: TensorSpec) -> dict[str, ParamSpec]:
        _, sizes = self._sizes(inputs)
        return attention_params(sizes, self.bias)

    def forward(self, params: Mapping[str, Any], *xs: Any, ctx: Context) -> Any:
        self_attention = len(xs) == 1
        q, k, v = (xs[0],) * 3 if self_attention else xs[:3]
        mask = xs[3] if len(xs) == 4 else None
        if not self.batch_first:  # (T, B, E) -> (B, T, E)
            q = ops.permute_dims(q, (1, 0, 2))
            k, v = (q, q) if self_attention else (
                ops.permute_dims(k, (1, 0, 2)), ops.permute_dims(v, (1, 0, 2))
            )
        batch, t, e = q.shape
        s = k.shape[1]
        h = self.num_heads
        d = e // h
        b = params.get("in_proj_bias")
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e : 2 * e], b[2 * e :])
        w = params.get("in_proj_weight")
        if w is None:
            wq, wk, wv = params["q_proj_weight"], params["k_proj_weight"], params["v_proj_weight"]
        else:
            wq, wk, wv = w[:e], w[e : 2 * e], w[2 * e :]
        if self_attention and w is not None:  # one (3E, E) projection, split by heads after
            qkv = ops.reshape(ops.linear(q, w, b), (batch, t, 3, h, d))
            qkv = ops.permute_dims(qkv, (2, 0, 3, 1, 4))  # (3, B, H, T, D)
            qh, kh, vh = qkv[0], qkv[1], qkv[2]
        else:
            qh = _heads(ops.linear(q, wq, bq), batch, t, h, d)
            kh = _heads(ops.linear(k, wk, bk), batch, s, h, d)
            vh = _heads(ops.linear(v, wv, bv), batch, s, h, d)
        p = self.dropout if ctx.training else 0.0
        o = ops.scaled_dot_product_attention(qh, kh, vh, mask, self.causal, p, ctx.rng)
        o = ops.reshape(ops.permute_dims(o, (0, 2, 1, 3)), (batch, t, e))
        y = ops.linear(o, params["out_proj.weight"], params.get("out_proj.bias"))
        return y if self.batch_first else ops.permute_dims(y, (1, 0, 2))

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        # (the inputs passed the shape rule: the sizes are read, not checked again)
        q = inputs[0]
        cross = len(inputs) > 1
        k = inputs[1] if cross else q
        bi, ti = (0, 1) if self.batch_first else (1, 0)
        e = q.shape[2] if self.embed_dim is None else self.embed_dim
        return _mha_costs(q.shape[bi], q.shape[ti], k.shape[ti], e, self.num_heads,
                          (e if self.kdim is None else self.kdim) if cross else e,
                          (e if self.vdim is None else self.vdim) if cross else e,
                          self._packed, cross)

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        q, sizes = self._sizes(inputs)
        k = inputs[1] if len(inputs) > 1 else q
        t, s = (q.shape[1], k.shape[1]) if self.batch_first else (q.shape[0], k.shape[0])
        h = self.num_heads
        kept = attention_saved(sizes.batch, t, s, h, h, sizes.embed_dim // h, q.dtype or "float32")
        return kept._replace(inputs=tuple(range(min(len(inputs), 3))))

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim == 3:
            embed_dim = hp["embed_dim"] = inputs[0].shape[2]
            if len(inputs) >= 3 and inputs[1].ndim == inputs[2].ndim == 3:
                kdim, vdim = inputs[1].shape[2], inputs[2].shape[2]
                if not (definitely_equal(kdim, embed_dim) and definitely_equal(vdim, embed_dim)):
                    hp["kdim"], hp["vdim"] = kdim, vdim  # torch's kdim / vdim
        return hp


def _heads(x: Any, batch: int, length: int, heads: int, head_dim: int) -> Any:
    """``(B, L, E) -> (B, H, L, D)``."""
    return ops.permute_dims(ops.reshape(x, (batch, length, heads, head_dim)), (0, 2, 1, 3))


class RotaryEmbedding(Layer):
    """Rotary position embedding (RoPE) as Llama applies it to queries and keys:
    heads ``(B, heads, T, head_dim)`` in, the same shape out; no parameters.

    Position ``t`` (``0 .. T-1``, along dim 2) rotates each head by angles
    ``t * inv_freq``, ``inv_freq = 1 / rope_theta ** (arange(0, head_dim, 2) /
    head_dim)``, pairing the two halves of the head dim (``rotate_half``, not
    interleaved pairs): ``x * cos + rotate_half(x) * sin``. cos and sin are
    computed in float32, then cast to the input's dtype, as Hugging Face
    transformers' ``LlamaRotaryEmbedding`` and ``apply_rotary_pos_emb`` do.

    ``head_dim`` is inferred from the input (checked when given) and must be
    even; both arguments are keywords. Pass a ``RotaryEmbedding`` (or its
    ``rope_theta``) as `Attention`'s ``rope`` to rotate its queries and keys.
    """

    hparam_names = ("head_dim", "rope_theta")
    expected_ndim = 4

    def __init__(
        self,
        *,
        head_dim: int | None = None,
        rope_theta: float = DEFAULT_ROPE_THETA,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.head_dim = _head_dim(head_dim, "RotaryEmbedding", rope=True)
        self.rope_theta = _positive_number(rope_theta, "rope_theta", "RotaryEmbedding")

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_NOTHING  # (the sines and cosines: one row per position)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return rotary_output(x, self.head_dim)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.rotary_embedding(x, self.rope_theta)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim == 4:
            hp["head_dim"] = inputs[0].shape[3]
        return hp


class Attention(Layer):
    """Attention with grouped query heads, as Hugging Face transformers' Llama
    attention: ``(B, T, E) -> (B, T, E)``.

    Called on one input ``x`` of shape ``(B, T, E)`` it is self-attention; on
    ``(query, key, value)`` of shapes ``(B, T, E)``, ``(B, S, E)``, ``(B, S,
    E)`` it attends from the query to the keys. The query is projected to
    ``num_heads`` heads of ``head_dim``, keys and values to ``num_kv_heads``
    heads (which must divide ``num_heads``: 1 is multi-query attention, fewer
    than ``num_heads`` grouped-query, ``num_heads`` multi-head); query head
    ``i`` attends with key / value head ``i // (num_heads // num_kv_heads)``.
    Scores are scaled by ``1 / sqrt(head_dim)``; ``is_causal=True`` lets query
    ``i`` attend to keys ``j <= i`` only. Each backend runs its fused kernel
    (torch's ``scaled_dot_product_attention``, ``jax.nn.dot_product_attention``).

    ``rope``: None, a `RotaryEmbedding` or its base (``rope_theta``, a number)
    rotates queries and keys (positions ``0 .. T-1`` and ``0 .. S-1``) before
    the scores; the head dim must then be even.

    ``embed_dim`` (E) is inferred from the query (checked when given); the head
    dim defaults to ``E // num_heads`` (E must then be divisible). Parameters
    are Llama's, in torch's ``(out, in)`` layout: ``q_proj.weight (num_heads *
    head_dim, E)``, ``k_proj.weight`` and ``v_proj.weight (num_kv_heads *
    head_dim, E)``, ``o_proj.weight (E, num_heads * head_dim)``, and a bias of
    each with ``bias=True`` (Llama's ``attention_bias``); nn.Linear's
    initialization.
    """

    hparam_names = (
        "embed_dim", "num_heads", "num_kv_heads", "head_dim", "bias", "is_causal", "rope"
    )
    expected_ndim = 3

    def __init__(
        self,
        num_heads: int,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        *,
        bias: bool = False,
        is_causal: bool = False,
        rope: RotaryEmbedding | float | None = None,
        embed_dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = "Attention"
        self.num_heads = positive_int(num_heads, "num_heads", kind)
        self.num_kv_heads = check_kv_heads(self.num_heads, num_kv_heads, kind)
        if head_dim is not None:
            positive_int(head_dim, "head_dim", kind)
        theta, head_dim = normalize_rope(rope, head_dim, kind)
        self.head_dim = _head_dim(head_dim, kind, rope=theta is not None)
        #: the RoPE base (``rope_theta``), or None: no rotary embedding
        self.rope = theta
        if embed_dim is not None:
            positive_int(embed_dim, "embed_dim", kind)
            if self.head_dim is None:
                check_num_heads(embed_dim, self.num_heads, kind)
                if theta is not None and (embed_dim // self.num_heads) % 2:
                    raise ShapeError(
                        "an even head dim `embed_dim` // `num_heads` with RoPE (it rotates "
                        "the two halves of each head)",
                        f"`embed_dim` (={embed_dim}), `num_heads` (={self.num_heads})",
                        kind=kind,
                    )
        self.embed_dim = embed_dim
        self.bias = bool(bias)
        self.is_causal = bool(is_causal)

    def hparams(self) -> dict[str, Any]:
        hp = super().hparams()
        if hp["rope"] is None:  # None is "no rotary embedding", not an unknown size
            del hp["rope"]
        return hp

    def _sizes(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, GQASizes]:
        q, k, v = split_qkv(inputs)
        return q, check_gqa(q, k, v, self.num_heads, self.num_kv_heads, self.head_dim,
                            self.embed_dim, self.rope is not None)

    def output_spec(self, *inputs: TensorSpec) -> TensorSpec:
        q, sizes = self._sizes(inputs)
        return attention_output(q, sizes)

    def param_specs(self, *inputs: TensorSpec) -> dict[str, ParamSpec]:
        _, sizes = self._sizes(inputs)
        return gqa_params(sizes, self.bias)

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        x = xs[0]
        key, value = (x, x) if len(xs) == 1 else (xs[1], xs[2])
        batch, t = x.shape[0], x.shape[1]
        s = key.shape[1]
        h, kv = self.num_heads, self.num_kv_heads
        wq = params["q_proj.weight"]
        d = wq.shape[0] // h
        q = _heads(ops.linear(x, wq, params.get("q_proj.bias")), batch, t, h, d)
        k = _heads(ops.linear(key, params["k_proj.weight"], params.get("k_proj.bias")),
                   batch, s, kv, d)
        v = _heads(ops.linear(value, params["v_proj.weight"], params.get("v_proj.bias")),
                   batch, s, kv, d)
        if self.rope is not None:
            q = ops.rotary_embedding(q, self.rope)
            k = ops.rotary_embedding(k, self.rope)
        o = ops.dot_product_attention(q, k, v, is_causal=self.is_causal)  # (B, H, T, D)
        o = ops.reshape(ops.permute_dims(o, (0, 2, 1, 3)), (batch, t, h * d))
        return ops.linear(o, params["o_proj.weight"], params.get("o_proj.bias"))

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        q, sizes = self._sizes(inputs)
        k = inputs[1] if len(inputs) > 1 else q
        b, t, s, e = sizes.batch, q.shape[1], k.shape[1], sizes.embed_dim
        kf, vf = (0, 0) if len(inputs) == 1 else (1, 2)
        projections = (
            (b * t, sizes.q_size, e, 0, "q_proj.weight"),
            (b * s, sizes.kv_size, e, kf, "k_proj.weight"),
            (b * s, sizes.kv_size, e, vf, "v_proj.weight"),
        )
        return (*attention_costs(b, t, s, self.num_heads, sizes.head_dim, projections),
                matmul_cost(b * t, e, sizes.q_size, INTERNAL, "o_proj.weight"))

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        q, sizes = self._sizes(inputs)
        k = inputs[1] if len(inputs) > 1 else q
        kept = attention_saved(sizes.batch, q.shape[1], k.shape[1], self.num_heads,
                               self.num_kv_heads, sizes.head_dim, q.dtype or "float32")
        return kept._replace(inputs=tuple(range(len(inputs))))

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim == 3:
            e = hp["embed_dim"] = inputs[0].shape[2]
            if hp["head_dim"] is None:
                hp["head_dim"] = e // self.num_heads
        return hp


class SwiGLU(Layer):
    """The gated MLP of Llama: ``down_proj(silu(gate_proj(x)) * up_proj(x))``,
    input ``(*, in_features)``, output ``(*, out_features)``.

    ``in_features`` is inferred from the input when omitted, checked when
    given; ``out_features`` defaults to ``in_features``. Parameters are Hugging
    Face Llama's ``LlamaMLP``'s: ``gate_proj.weight`` and ``up_proj.weight
    (hidden_features, in_features)``, ``down_proj.weight (out_features,
    hidden_features)``, and a bias of each with ``bias=True`` (Llama's
    ``mlp_bias``); nn.Linear's initialization.
    """

    hparam_names = ("in_features", "hidden_features", "out_features", "bias")
    expected_ndim = 2

    def __init__(
        self,
        hidden_features: int,
        out_features: int | None = None,
        *,
        bias: bool = False,
        in_features: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = "SwiGLU"
        self.hidden_features = positive_int(hidden_features, "hidden_features", kind)
        for key, value in (("out_features", out_features), ("in_features", in_features)):
            if value is not None:
                positive_int(value, key, kind)
        self.out_features = out_features
        self.in_features = in_features
        self.bias = bool(bias)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return swiglu_output(x, self.in_features, self.out_features)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return swiglu_params(x, self.hidden_features, self.out_features, self.bias,
                             self.in_features)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        gate = ops.silu(ops.linear(x, params["gate_proj.weight"], params.get("gate_proj.bias")))
        up = ops.linear(x, params["up_proj.weight"], params.get("up_proj.bias"))
        return ops.linear(ops.multiply(gate, up), params["down_proj.weight"],
                          params.get("down_proj.bias"))

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        x = inputs[0]
        rows, d_in, hidden = prod(x.shape[:-1]), x.shape[-1], self.hidden_features
        return (matmul_cost(rows, hidden, d_in, 0, "gate_proj.weight"),
                matmul_cost(rows, hidden, d_in, 0, "up_proj.weight"),
                matmul_cost(rows, outputs[0].shape[-1], hidden, INTERNAL, "down_proj.weight"))

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        """The input, and four hidden-sized tensors: the gate before and after
        its SiLU, the up projection, and their product."""
        x = inputs[0]
        hidden = prod(x.shape[:-1]) * self.hidden_features * itemsize(x.dtype or "float32")
        return Saved((0,), (), 4 * hidden)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim:
            d = hp["in_features"] = inputs[0].shape[-1]
            if hp["out_features"] is None:
                hp["out_features"] = d
        return hp
