"""Attention ops for torch tensors: ``scaled_dot_product_attention`` on heads,
``(B, H, T, D)``.

``nn.MultiheadAttention`` as the native module."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lazyshape.backend import (
    LayerRecord,
)
from lazyshape.layers.attention import MultiheadAttention as LsMultiheadAttention

from .activation import dropout
from .native import register, sizes

__all__ = ["scaled_dot_product_attention"]


def scaled_dot_product_attention(
    q: Any,
    k: Any,
    v: Any,
    key_padding_mask: Any | None,
    causal: bool,
    dropout_p: float,
    rng: Any,
) -> Any:
    """``softmax(q @ k^T / sqrt(D)) @ v`` for ``q (B, H, T, D)``, ``k, v (B, H, S, D)``;
    ``key_padding_mask`` (bool ``(B, S)``) True = ignore; a query that sees no
    key gets zeros. ``rng`` (a ``torch.Generator``, or None for torch's global
    RNG) drives the dropout of attention weights."""
    keep = None  # F.scaled_dot_product_attention's bool mask: True = take part
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]
    if causal:
        t, s = q.shape[-2], k.shape[-2]
        lower = torch.ones(t, s, dtype=torch.bool, device=q.device).tril()
        keep = lower if keep is None else keep & lower
    if dropout_p == 0.0 or rng is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout_p)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)

    return dropout(weights, dropout_p, rng) @ v


class MultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose forward takes ``(x)`` (self-attention),
    ``(query, key, value)`` or ``(query, key, value, key_padding_mask)`` and
    returns the attended output only; ``causal=True`` adds the causal mask."""

    def __init__(self, embed_dim: int, num_heads: int, *, causal: bool = False, **kw: Any) -> None:
        super().__init__(embed_dim, num_heads, **kw)
        self.causal = causal

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if key is None:
            key = value = query
        assert value is not None
        mask = None
        if self.causal:
            t = 1 if self.batch_first else 0
            mask = torch.ones(
                query.shape[t], key.shape[t], dtype=torch.bool, device=query.device
            ).triu(1)
        out, _ = super().forward(
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            attn_mask=mask,
            is_causal=self.causal,
        )
        return out

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"batch_first={self.batch_first}, causal={self.causal}"
        )


@register(LsMultiheadAttention)
def _attention(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    hp = rec.resolved
    if sizes(rec, "embed_dim", *(k for k in ("kdim", "vdim") if k in hp)) is None:
        return None
    return MultiheadAttention(**hp, dtype=dtype, device=device)

