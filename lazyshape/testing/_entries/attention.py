"""Harness entry of ``MultiheadAttention``: self-attention on one input, or
attention from a query to keys and values (and a bool key padding mask).

Oracles: ``torch.nn.MultiheadAttention`` in evaluation mode, and
``jax.nn.dot_product_attention`` between JAX projections under
``jax.eval_shape``. ONNX: see `UNSUPPORTED`.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from lazyshape.layers.attention import MultiheadAttention

from .._onnx import UNSUPPORTED
from .._oracles import jax_oracle, jax_param, require_features, require_float, torch_oracle
from .._primitives import Specs
from .._registry import Deviation, register
from ..strategies import batch_sizes
from ._common import NON_FLOAT, is_float, spec, spec_of


def _layers() -> Any:
    @st.composite
    def build(draw: Any) -> Any:
        h = draw(st.integers(1, 3))
        e = draw(st.none() | st.integers(1, 3).map(lambda k: k * h))
        # other key / value sizes need embed_dim (torch's separate projections)
        kdim = vdim = None
        if e is not None:
            kdim = draw(st.none() | st.integers(1, 4))
            vdim = draw(st.none() | st.integers(1, 4))
        return MultiheadAttention(
            h, embed_dim=e, batch_first=draw(st.booleans()), bias=draw(st.booleans()),
            causal=draw(st.booleans()), kdim=kdim, vdim=vdim,
        )

    return build()


def _seq(layer: Any, b: int, t: int, d: int) -> tuple[int, int, int]:
    return (b, t, d) if layer.batch_first else (t, b, d)


@st.composite
def _valid(draw: Any, layer: Any) -> Specs:
    h = layer.num_heads
    e = layer.embed_dim if layer.embed_dim is not None else h * draw(st.integers(1, 3))
    b, t = draw(batch_sizes()), draw(st.integers(1, 4))
    q = spec(_seq(layer, b, t, e))
    n = draw(st.sampled_from([1, 3, 4]))
    if n == 1 and layer.kdim in (None, e) and layer.vdim in (None, e):
        return (q,)
    s = draw(st.integers(1, 4))
    kd = layer.kdim if layer.kdim is not None else e  # torch: kdim, vdim default to E
    vd = layer.vdim if layer.vdim is not None else e
    k, v = spec(_seq(layer, b, s, kd)), spec(_seq(layer, b, s, vd))
    if n == 4:
        return (q, k, v, spec((b, s), "bool"))
    return (q, k, v)


def _invalid(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        xs = list(draw(_valid(layer)))
        q = xs[0]
        how = draw(st.sampled_from(["dtype", "unbatched", "heads", "batch", "mask"]))
        if how == "dtype":
            xs[0] = spec(q.shape, draw(st.sampled_from(NON_FLOAT)))
        elif how == "unbatched":
            xs = [spec(x.shape[1:] if x.ndim == 3 else x.shape, x.dtype) for x in xs]
        elif how == "heads" and layer.num_heads > 1 and layer.embed_dim is None:
            bad = draw(st.integers(1, 7).filter(lambda e: e % layer.num_heads != 0))
            xs[0] = spec((*q.shape[:2], bad))
            if len(xs) == 1 or (layer.kdim is None and xs[1].shape[2] == q.shape[2]):
                xs = [xs[0]]
        elif how == "mask" and len(xs) >= 3:
            bi = 0 if layer.batch_first else 1
            m = (q.shape[bi], xs[1].shape[1 - bi] + 1)  # one key too many
            xs = [*xs[:3], spec(m, "bool")]
        elif len(xs) >= 3:
            bi = 0 if layer.batch_first else 1
            k = list(xs[1].shape)
            k[bi] += 1
            xs[1] = spec(k)
        else:
            xs = [spec((*q.shape, 1))]  # one rank too many
        return tuple(xs)

    return build()


def _kv(layer: Any, xs: tuple[Any, ...]) -> tuple[Any, Any, Any, Any]:
    q = xs[0]
    if len(xs) == 1:
        return q, q, q, None
    if len(xs) in (3, 4):
        return q, xs[1], xs[2], xs[3] if len(xs) == 4 else None
    raise ValueError(f"{len(xs)} inputs")


def _t_mha(layer: Any, *xs: Any) -> Any:
    import torch
    from torch import nn

    q, k, v, mask = _kv(layer, xs)
    for x in (q, k, v):
        if x.ndim != 3:
            raise Deviation("lazyshape requires batched (3-d) sequences")
    require_float(spec_of(q))
    e = layer.embed_dim if layer.embed_dim is not None else q.shape[2]
    kd = layer.kdim if layer.kdim is not None else e
    vd = layer.vdim if layer.vdim is not None else e
    mod = nn.MultiheadAttention(e, layer.num_heads, bias=layer.bias, kdim=kd, vdim=vd,
                                batch_first=layer.batch_first, device=q.device).eval()
    attn_mask = None
    if layer.causal:
        t, s = (q.shape[1], k.shape[1]) if layer.batch_first else (q.shape[0], k.shape[0])
        attn_mask = torch.ones(t, s, dtype=torch.bool, device=q.device).triu(1)
    with torch.no_grad():
        y, _ = mod(q, k, v, key_padding_mask=mask, need_weights=False, attn_mask=attn_mask)
    return y


def _j_mha(layer: Any, *xs: Any) -> Any:
    import jax
    import jax.numpy as jnp

    q, k, v, mask = _kv(layer, xs)
    if any(x.ndim != 3 for x in (q, k, v)):  # the projections would broadcast extra dims
        raise ValueError("query, key and value are (B, L, E) sequences")
    if not layer.batch_first:
        q, k, v = (jnp.swapaxes(x, 0, 1) for x in (q, k, v))
    b, t, e = q.shape
    require_features(e, "an embedding dim")  # (torch rejects it)
    h = layer.num_heads
    if layer.embed_dim is not None and e != layer.embed_dim:
        raise ValueError("embed_dim")
    kd = layer.kdim if layer.kdim is not None else e
    vd = layer.vdim if layer.vdim is not None else e
    qp = jnp.reshape(q @ jax_param(e, e).T, (b, t, h, e // h))
    kp = jnp.reshape(k @ jax_param(e, kd).T, (k.shape[0], k.shape[1], h, e // h))
    vp = jnp.reshape(v @ jax_param(e, vd).T, (v.shape[0], v.shape[1], h, e // h))
    if e % h:
        raise ValueError("embed_dim not divisible by num_heads")
    m = None if mask is None else mask[:, None, None, :]
    o = jax.nn.dot_product_attention(qp, kp, vp, mask=m, is_causal=layer.causal)
    y = jnp.reshape(o, (b, t, e)) @ jax_param(e, e).T
    return y if layer.batch_first else jnp.swapaxes(y, 0, 1)


register(
    MultiheadAttention,
    layers=_layers(),
    inputs=_valid,
    invalid=_invalid,
    oracles=(torch_oracle(_t_mha), jax_oracle(_j_mha)),
    batch_axes=lambda layer, specs: tuple(
        (0 if layer.batch_first or s.ndim == 2 else 1) if s.ndim >= 2 else None for s in specs
    ),
    accepts=lambda s: s.ndim == 3 and is_float(s),
    atol=1e-4,
)
UNSUPPORTED["MultiheadAttention"] = (
    "ONNX has no multi-head attention layer: its Attention op (opset 23) takes already "
    "projected Q, K, V; the harness leaves this kind to the torch and JAX oracles"
)
