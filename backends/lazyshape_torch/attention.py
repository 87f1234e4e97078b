"""Attention ops for torch tensors: ``scaled_dot_product_attention`` and
``dot_product_attention`` (torch's fused ``scaled_dot_product_attention``) on
heads, ``(B, H, T, D)``; ``rotary_embedding``.

Native modules: ``nn.MultiheadAttention``; for `Attention` and `SwiGLU`,
modules holding Hugging Face Llama's ``nn.Linear`` children (``q_proj``,
``k_proj``, ``v_proj``, ``o_proj``; ``gate_proj``, ``up_proj``,
``down_proj``), so that state-dict keys are Llama's."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lazyshape.backend import (
    LayerRecord,
)
from lazyshape.layers.attention import Attention as LsAttention
from lazyshape.layers.attention import MultiheadAttention as LsMultiheadAttention
from lazyshape.layers.attention import SwiGLU as LsSwiGLU

from .activation import dropout
from .native import register, sizes

__all__ = ["scaled_dot_product_attention", "dot_product_attention", "rotary_embedding"]


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


def dot_product_attention(
    q: Any, k: Any, v: Any, *, is_causal: bool = False, scale: float | None = None
) -> Any:
    """``softmax(q @ k^T * scale) @ v`` for ``q (B, H, T, D)``, ``k, v (B, Hkv, S,
    D)``, ``Hkv`` dividing ``H`` (grouped-query: ``enable_gqa``), by torch's fused
    ``scaled_dot_product_attention``; ``scale`` default ``1 / sqrt(D)``;
    ``is_causal``: query ``i`` sees keys ``j <= i``."""
    if k.shape[-3] != q.shape[-3]:
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale,
                                              enable_gqa=True)
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale)


def rotary_embedding(x: Any, theta: float) -> Any:
    """Llama's rotary position embedding of ``x (..., T, D)`` (``D`` even), as
    Hugging Face transformers computes it (``LlamaRotaryEmbedding``,
    ``apply_rotary_pos_emb``): ``x * cos + rotate_half(x) * sin``, angles ``t *
    inv_freq`` for positions ``t`` along dim -2, ``inv_freq = 1 / theta **
    (arange(0, D, 2) / D)``; cos and sin in float32, cast to ``x``'s dtype."""
    t, d = x.shape[-2], x.shape[-1]
    exponent = torch.arange(0, d, 2, dtype=torch.float32, device=x.device) / d
    inv_freq = 1.0 / (theta ** exponent)
    freqs = torch.arange(t, dtype=torch.float32, device=x.device)[:, None] * inv_freq[None, :]
    angles = torch.cat((freqs, freqs), dim=-1)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    half = d // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos) + (rotated * sin)


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


class Attention(nn.Module):
    """Grouped-query attention with Hugging Face Llama's projections (``q_proj``,
    ``k_proj``, ``v_proj``, ``o_proj``: ``nn.Linear``), the rotary embedding of
    base ``rope`` (None: none) on queries and keys, and torch's fused
    ``scaled_dot_product_attention``. Its forward takes ``(x)``
    (self-attention) or ``(query, key, value)``, ``(B, T|S, embed_dim)``."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        bias: bool = False,
        is_causal: bool = False,
        rope: float | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.is_causal = is_causal
        self.rope = rope
        kw: dict[str, Any] = {"bias": bias, "device": device, "dtype": dtype}
        self.q_proj = nn.Linear(embed_dim, num_heads * head_dim, **kw)
        self.k_proj = nn.Linear(embed_dim, num_kv_heads * head_dim, **kw)
        self.v_proj = nn.Linear(embed_dim, num_kv_heads * head_dim, **kw)
        self.o_proj = nn.Linear(num_heads * head_dim, embed_dim, **kw)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if key is None or value is None:
            key = value = query
        b, t = query.shape[0], query.shape[1]
        s = key.shape[1]
        h, kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.q_proj(query).view(b, t, h, d).transpose(1, 2)
        k = self.k_proj(key).view(b, s, kv, d).transpose(1, 2)
        v = self.v_proj(value).view(b, s, kv, d).transpose(1, 2)
        if self.rope is not None:
            q = rotary_embedding(q, self.rope)
            k = rotary_embedding(k, self.rope)
        o = dot_product_attention(q, k, v, is_causal=self.is_causal)
        return self.o_proj(o.transpose(1, 2).reshape(b, t, h * d))  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"num_kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, "
            f"is_causal={self.is_causal}, rope={self.rope}"
        )


class SwiGLU(nn.Module):
    """Hugging Face Llama's MLP: ``down_proj(silu(gate_proj(x)) * up_proj(x))``,
    three ``nn.Linear`` children."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int,
        *,
        bias: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw: dict[str, Any] = {"bias": bias, "device": device, "dtype": dtype}
        self.gate_proj = nn.Linear(in_features, hidden_features, **kw)
        self.up_proj = nn.Linear(in_features, hidden_features, **kw)
        self.down_proj = nn.Linear(hidden_features, out_features, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(  # type: ignore[no-any-return]
            F.silu(self.gate_proj(x)) * self.up_proj(x)
        )


@register(LsAttention)
def _gqa(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    if sizes(rec, "embed_dim", "head_dim") is None:
        return None
    return Attention(**rec.resolved, dtype=dtype, device=device)


@register(LsSwiGLU)
def _swiglu(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    if sizes(rec, "in_features", "out_features") is None:
        return None
    return SwiGLU(**rec.resolved, dtype=dtype, device=device)
