"""MultiheadAttention: scaled dot-product attention over ``num_heads`` heads,
with PyTorch's input and output projections and parameter names.

Canonical layout: ``(B, T, E)`` (``batch_first=True``) or ``(T, B, E)``; the
query has length ``T``, key and value length ``S``; the optional
``key_padding_mask`` is a bool ``(B, S)`` (True = ignore that key).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from .._dims import Dim, eq, format_dim, format_shape
from .._errors import ShapeError
from .._init import kaiming_uniform, xavier_uniform, zeros
from .._specs import ParamSpec, TensorSpec
from ._common import FLOATING, assume_equal, check_floating, check_input_rank, unify

__all__ = [
    "check_num_heads",
    "packed_projections",
    "check_dropout",
    "split_inputs",
    "Attention",
    "check_attention",
    "attention_output",
    "attention_params",
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


def check_dropout(p: object, kind: str) -> float:
    """``dropout`` is a probability in ``[0, 1]``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ShapeError("`dropout` in [0, 1]", f"`dropout` (={p!r})", kind=kind)
    return float(p)


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


class Attention(NamedTuple):
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
) -> Attention:
    """Validate query, key, value (and mask); return the resolved sizes. The key
    and value sizes are ``kdim`` / ``vdim`` when given, else the embedding dim."""
    b, t = (0, 1) if batch_first else (1, 0)
    check_input_rank(q, 3, "(B, T, E)" if batch_first else "(T, B, E)")
    if q.dtype not in FLOATING:
        check_floating(q)
    e = _match(q.shape[2], embed_dim, lambda: f"expected last query dim {embed_dim} (embed_dim)",
               "query", q)
    if type(e) is int and e == 0:
        raise ShapeError("an embedding dim E >= 1", f"query shape {format_shape(q.shape)}")
    rem = e % num_heads
    if type(rem) is int and rem:
        raise ShapeError(
            "an embedding dim E divisible by `num_heads`",
            f"E={format_dim(e)}, `num_heads` (={num_heads}) (query shape {format_shape(q.shape)})",
        )
    if type(rem) is not int and eq(rem, 0) is None:
        assume_equal(rem, 0)
    if k is q and v is q:
        _match(e, kdim, lambda: _size_needed("key", "kdim", kdim, e), "key", k)
        _match(e, vdim, lambda: _size_needed("value", "vdim", vdim, e), "value", v)
        return Attention(q.shape[b], e, e, e, packed)
    for x, what in ((k, "key"), (v, "value")):
        _check_3d(x, what, f"(B, S, {what[0]}dim)" if batch_first else f"(S, B, {what[0]}dim)")
        if x.dtype != q.dtype:
            raise ShapeError(
                f"`{what}` of the query's dtype {q.dtype}", f"`{what}` dtype {x.dtype}"
            )
    batch = unify(q.shape[b], k.shape[b], "query and key batch dims")
    batch = unify(batch, v.shape[b], "query and value batch dims")
    seq = unify(k.shape[t], v.shape[t], "key and value sequence dims")
    kd = _match(k.shape[2], e if kdim is None else kdim,
                lambda: _size_needed("key", "kdim", kdim, e), "key", k)
    vd = _match(v.shape[2], e if vdim is None else vdim,
                lambda: _size_needed("value", "vdim", vdim, e), "value", v)
    if mask is not None:
        _check_mask(mask, batch, seq)
    return Attention(batch, e, kd, vd, packed)


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


# -- shapes ----------------------------------------------------------------------


def attention_output(q: TensorSpec, sizes: Attention) -> TensorSpec:
    """The query's shape, ``(B, T, E)`` (or ``(T, B, E)``), with E the embed dim."""
    return TensorSpec._make((*q.shape[:2], sizes.embed_dim), q.dtype)


# -- parameters ------------------------------------------------------------------


def attention_params(sizes: Attention, bias: bool) -> dict[str, ParamSpec]:
    """torch's names, shapes and init: ``in_proj_weight (3E, E)`` xavier-uniform
    (``q/k/v_proj_weight (E, E|kdim|vdim)`` when key or value sizes differ),
    ``in_proj_bias (3E,)`` zeros, ``out_proj.weight (E, E)`` nn.Linear's
    default, ``out_proj.bias (E,)`` zeros."""
    e = sizes.embed_dim
    params: dict[str, ParamSpec] = {}
    if sizes.packed:
        params["in_proj_weight"] = ParamSpec._make((3 * e, e), None, _IN_PROJ_INIT)
    else:
        params["q_proj_weight"] = ParamSpec._make((e, e), None, _IN_PROJ_INIT)
        params["k_proj_weight"] = ParamSpec._make((e, sizes.kdim), None, _IN_PROJ_INIT)
        params["v_proj_weight"] = ParamSpec._make((e, sizes.vdim), None, _IN_PROJ_INIT)
    if bias:
        params["in_proj_bias"] = ParamSpec._make((3 * e,), None, _ZEROS)
    params["out_proj.weight"] = ParamSpec._make((e, e), None, _OUT_PROJ_INIT)
    if bias:
        params["out_proj.bias"] = ParamSpec._make((e,), None, _ZEROS)
    return params
