"""``MultiheadAttention``: PyTorch's multi-head attention whose embedding size
is inferred, returning the attended output only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import ops
from .._errors import ShapeError
from .._layer import Context, Layer
from .._specs import ParamSpec, TensorSpec
from ..rules._common import positive_int
from ..rules.attention import (
    Attention,
    attention_output,
    attention_params,
    check_attention,
    check_dropout,
    check_num_heads,
    packed_projections,
    split_inputs,
)

__all__ = ["MultiheadAttention"]


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
        self.dropout = check_dropout(dropout, kind)
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

    def forward(self, params: Mapping[str, Any], *xs: Any, ctx: Context) -> Any:  # type: ignore[override]
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

    def describe(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim == 3:
            hp["embed_dim"] = inputs[0].shape[2]
        return hp


def _heads(x: Any, batch: int, length: int, heads: int, head_dim: int) -> Any:
    """``(B, L, E) -> (B, H, L, D)``."""
    return ops.permute_dims(ops.reshape(x, (batch, length, heads, head_dim)), (0, 2, 1, 3))
