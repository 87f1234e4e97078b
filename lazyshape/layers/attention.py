"""``MultiheadAttention``: PyTorch's multi-head attention whose embedding size
is inferred, returning the attended output only.

Scaled dot-product attention over ``num_heads`` heads, with PyTorch's input
and output projections and parameter names. The module holds the rules
(pure functions of specs and hyperparameters), then the layer class.

Canonical layout: ``(B, T, E)`` (``batch_first=True``) or ``(T, B, E)``; the
query has length ``T``, key and value length ``S``; the optional
``key_padding_mask`` is a bool ``(B, S)`` (True = ignore that key).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .. import ops
from .._dims import Dim, definitely_equal, eq, format_dim, format_shape
from .._errors import ShapeError
from .._init import kaiming_uniform, xavier_uniform, zeros
from .._layer import Context, Layer
from .._specs import ParamSpec, TensorSpec
from ._common import (
    FLOATING,
    assume_equal,
    check_floating,
    check_rank,
    positive_int,
    probability,
    unify,
)

__all__ = [
    "MultiheadAttention",
    "check_num_heads",
    "packed_projections",
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
    check_rank(q, 3, "(B, T, E)" if batch_first else "(T, B, E)")
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


# -- layers ----------------------------------------------------------------------


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

    def _sizes(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, Attention]:
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
