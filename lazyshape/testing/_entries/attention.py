"""Harness entries of the attention family.

``MultiheadAttention``: self-attention on one input, or attention from a
query to keys and values (and a bool key padding mask). Oracles:
``torch.nn.MultiheadAttention`` in evaluation mode, and
``jax.nn.dot_product_attention`` between JAX projections under
``jax.eval_shape``.

``Attention`` (grouped-query, optional RoPE), ``RotaryEmbedding`` and
``SwiGLU``: Llama's computation written out with torch
(``F.linear``, ``F.scaled_dot_product_attention`` with ``enable_gqa``, the
rotate-half RoPE in float32) and with ``jax.numpy`` /
``jax.nn.dot_product_attention`` under ``jax.eval_shape``; ONNX:
``RotaryEmbedding`` (opset 23), SwiGLU as ``MatMul`` / ``Sigmoid`` / ``Mul``.

ONNX cannot check ``MultiheadAttention`` and ``Attention``: see `UNSUPPORTED`.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from lazyshape.layers.attention import Attention, MultiheadAttention, RotaryEmbedding, SwiGLU

from .._onnx import BUILDERS, UNSUPPORTED, Graph, onnx_oracle
from .._oracles import (
    jax_oracle,
    jax_param,
    require_batched,
    require_features,
    require_float,
    torch_oracle,
    torch_param,
)
from .._primitives import Specs
from .._registry import Deviation, NotApplicable, register
from ..strategies import batch_sizes, sides
from ._common import NON_FLOAT, is_float, leading, spec, spec_of


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


# -- RotaryEmbedding -------------------------------------------------------------

_THETAS = (10000.0, 500000.0, 100.0)


def _t_rotate(x: Any, theta: float, d: int) -> Any:
    """Hugging Face Llama's RoPE of ``x (..., T, D)`` with torch: tables of head
    dim ``d`` from positions ``0 .. T-1`` in float32, ``x * cos + rotate_half(x) * sin``."""
    import torch

    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64, device=x.device)
                                .float() / d))
    positions = torch.arange(x.shape[-2], device=x.device).float()
    freqs = positions[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _j_rotate(x: Any, theta: float, d: int) -> Any:
    """`_t_rotate` with ``jax.numpy``."""
    import jax.numpy as jnp

    inv_freq = 1.0 / (theta ** (jnp.arange(0, d, 2).astype(jnp.float32) / d))
    freqs = jnp.arange(x.shape[-2]).astype(jnp.float32)[:, None] * inv_freq[None, :]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
    half = x.shape[-1] // 2
    return x * cos + jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1) * sin


def _rope_head_dim(layer_head_dim: int | None, d: int) -> int:
    """The head dim of the tables for heads of size ``d``, where lazyshape's
    rule and Llama's RoPE part ways (raising `Deviation`)."""
    require_features(d, "a head dim")
    if d == 1:  # (an odd head dim of 3 or more fails to broadcast against the tables)
        raise Deviation("lazyshape requires an even head dim for RoPE: heads of size 1 "
                        "broadcast against Llama's tables")
    return layer_head_dim if layer_head_dim is not None else d


@st.composite
def _rope_valid(draw: Any, layer: Any) -> Specs:
    d = layer.head_dim if layer.head_dim is not None else 2 * draw(st.integers(1, 4))
    return (spec((draw(batch_sizes()), draw(st.integers(1, 3)), draw(st.integers(1, 5)), d)),)


def _rope_invalid(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        (x,) = draw(_rope_valid(layer))
        how = draw(st.sampled_from(["dtype", "unbatched", "head_dim"]))
        if how == "dtype":
            return (spec(x.shape, draw(st.sampled_from(NON_FLOAT))),)
        if how == "unbatched":
            return (spec(x.shape[1:]),)
        d = x.shape[3]  # an odd head dim, or another than `head_dim`
        bad = d + 1 if layer.head_dim is None else d + 2 * draw(st.integers(1, 2))
        return (spec((*x.shape[:3], bad)),)

    return build()


def _t_rope(layer: Any, x: Any) -> Any:
    s = spec_of(x)
    require_float(s)
    require_batched(s, 4)
    d = _rope_head_dim(layer.head_dim, int(x.shape[-1]))
    return _t_rotate(x, layer.rope_theta, d)


def _j_rope(layer: Any, x: Any) -> Any:
    if x.ndim != 4:
        raise Deviation("lazyshape requires heads (B, heads, T, head_dim)")
    d = _rope_head_dim(layer.head_dim, int(x.shape[-1]))
    return _j_rotate(x, layer.rope_theta, d)


def _onnx_rope(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    """ONNX's ``RotaryEmbedding`` (opset 23, rotate-half: ``interleaved=0``) on
    heads, with cos / sin caches of shape ``(B, T, head_dim / 2)`` as inputs."""
    (x,), (s,) = xs, specs
    if s.ndim != 4:
        raise NotApplicable("ONNX's RotaryEmbedding takes (B, heads, T, head_dim) here")
    b, _, t, d = s.shape
    cos, sin = g.input((b, t, d // 2)), g.input((b, t, d // 2))
    g.opset = max(g.opset, 23)
    return g.node("RotaryEmbedding", [x, cos, sin], interleaved=0)


BUILDERS["RotaryEmbedding"] = _onnx_rope

register(
    RotaryEmbedding,
    layers=st.builds(
        RotaryEmbedding,
        head_dim=st.none() | st.sampled_from([2, 4, 6]),
        rope_theta=st.sampled_from(_THETAS),
    ),
    inputs=_rope_valid,
    invalid=_rope_invalid,
    oracles=(torch_oracle(_t_rope), jax_oracle(_j_rope), onnx_oracle()),
    accepts=lambda s: s.ndim == 4 and is_float(s) and int(s.shape[3]) % 2 == 0,
)


# -- Attention (grouped-query) -----------------------------------------------------


def _gqa_layers() -> Any:
    @st.composite
    def build(draw: Any) -> Any:
        h = draw(st.integers(1, 4))
        kv = draw(st.sampled_from([k for k in range(1, h + 1) if h % k == 0]))
        rope = draw(st.none() | st.sampled_from(_THETAS[:2]))
        head_dim = draw(st.none() | st.sampled_from([2, 4] if rope else [1, 2, 3]))
        e = None
        if draw(st.booleans()):
            e = (h * (2 if rope else 1) * draw(st.integers(1, 2)) if head_dim is None
                 else draw(st.integers(1, 6)))
        return Attention(h, kv, head_dim, bias=draw(st.booleans()),
                         is_causal=draw(st.booleans()), rope=rope, embed_dim=e)

    return build()


@st.composite
def _gqa_valid(draw: Any, layer: Any) -> Specs:
    if layer.embed_dim is not None:
        e = layer.embed_dim
    elif layer.head_dim is not None:
        e = draw(st.integers(1, 6))
    else:
        e = layer.num_heads * (2 if layer.rope else 1) * draw(st.integers(1, 2))
    b, t = draw(batch_sizes()), draw(st.integers(1, 4))
    q = spec((b, t, e))
    if draw(st.booleans()):
        return (q,)
    s = draw(st.integers(1, 4))
    return (q, spec((b, s, e)), spec((b, s, e)))


def _gqa_invalid(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        xs = list(draw(_gqa_valid(layer)))
        q = xs[0]
        h = layer.num_heads
        how = draw(st.sampled_from(["dtype", "unbatched", "heads", "key", "batch"]))
        free = layer.embed_dim is None and layer.head_dim is None
        if how == "dtype":
            xs[0] = spec(q.shape, draw(st.sampled_from(NON_FLOAT)))
        elif how == "unbatched":
            xs = [spec(x.shape[1:], x.dtype) for x in xs]
        elif how == "heads" and free and (h > 1 or layer.rope):
            bad = draw(st.integers(1, 9).filter(
                lambda e: e % h != 0 or (layer.rope is not None and (e // h) % 2 == 1)))
            xs = [spec((*q.shape[:2], bad))]
        elif how == "key" and len(xs) == 3:
            k = xs[1]
            xs[1] = spec((*k.shape[:2], k.shape[2] + 1))
        elif how == "batch" and len(xs) == 3:
            k = xs[1]
            xs[1] = spec((k.shape[0] + 1, *k.shape[1:]))
        else:
            xs = [spec((*q.shape, 1))]  # one rank too many
        return tuple(xs)

    return build()


def _qkv(xs: tuple[Any, ...]) -> tuple[Any, Any, Any]:
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    if len(xs) == 3:
        return xs[0], xs[1], xs[2]
    raise ValueError(f"{len(xs)} inputs")


def _gqa_sizes(layer: Any, q: Any, k: Any, v: Any) -> tuple[int, int]:
    """``(E, head_dim)``, where lazyshape's rule and Llama's attention part ways
    (raising `Deviation`)."""
    if any(x.ndim != 3 for x in (q, k, v)):
        raise Deviation("lazyshape requires batched (3-d) sequences")
    if len({int(x.shape[0]) for x in (q, k, v)}) > 1:
        raise Deviation("lazyshape requires query, key and value of one batch size "
                        "(torch broadcasts a batch of 1)")
    if k.shape[1] != v.shape[1]:
        raise Deviation("lazyshape requires key and value of one length (torch's fused CPU "
                        "kernel does not compare them)")
    require_features(q.shape[2], "an embedding dim")
    e = int(layer.embed_dim if layer.embed_dim is not None else q.shape[2])
    if layer.head_dim is not None:
        d = layer.head_dim
    elif e % layer.num_heads:
        raise Deviation("lazyshape requires E divisible by num_heads without head_dim "
                        "(Llama's hidden_size // num_attention_heads rounds down)")
    else:
        d = e // layer.num_heads
    if layer.rope is not None:
        _rope_head_dim(d, d)
    return e, d


def _t_gqa(layer: Any, *xs: Any) -> Any:
    import torch.nn.functional as F

    q, k, v = _qkv(xs)
    require_float(spec_of(q))
    e, d = _gqa_sizes(layer, q, k, v)
    h, kv = layer.num_heads, layer.num_kv_heads

    def proj(x: Any, rows: int, heads: int) -> Any:
        w = torch_param(rows, e, like=x)
        b = torch_param(rows, like=x) if layer.bias else None
        return F.linear(x, w, b).view(x.shape[0], x.shape[1], heads, d).transpose(1, 2)

    qh, kh, vh = proj(q, h * d, h), proj(k, kv * d, kv), proj(v, kv * d, kv)
    if layer.rope is not None:
        qh, kh = _t_rotate(qh, layer.rope, d), _t_rotate(kh, layer.rope, d)
    o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=layer.is_causal, enable_gqa=True)
    o = o.transpose(1, 2).reshape(q.shape[0], q.shape[1], h * d)
    wo = torch_param(e, h * d, like=q)
    return F.linear(o, wo, torch_param(e, like=q) if layer.bias else None)


def _j_gqa(layer: Any, *xs: Any) -> Any:
    import jax
    import jax.numpy as jnp

    q, k, v = _qkv(xs)
    e, d = _gqa_sizes(layer, q, k, v)
    h, kv = layer.num_heads, layer.num_kv_heads

    def proj(x: Any, heads: int) -> Any:  # (B, L, heads, d): JAX's layout
        y = x @ jax_param(heads * d, e).T
        if layer.bias:
            y = y + jax_param(heads * d)
        return jnp.reshape(y, (x.shape[0], x.shape[1], heads, d))

    qh, kh, vh = proj(q, h), proj(k, kv), proj(v, kv)
    if layer.rope is not None:
        qh, kh = (jnp.swapaxes(_j_rotate(jnp.swapaxes(a, 1, 2), layer.rope, d), 1, 2)
                  for a in (qh, kh))
    o = jax.nn.dot_product_attention(qh, kh, vh, is_causal=layer.is_causal)
    y = jnp.reshape(o, (q.shape[0], q.shape[1], h * d)) @ jax_param(e, h * d).T
    return y + jax_param(e) if layer.bias else y


register(
    Attention,
    layers=_gqa_layers(),
    inputs=_gqa_valid,
    invalid=_gqa_invalid,
    oracles=(torch_oracle(_t_gqa), jax_oracle(_j_gqa)),
    accepts=lambda s: s.ndim == 3 and is_float(s),
    atol=1e-4,
)


# -- SwiGLU ------------------------------------------------------------------------


def _swiglu_inputs(layer: Any) -> Any:
    last = st.just(layer.in_features) if layer.in_features is not None else sides(1, 6)
    return st.tuples(leading(0, 3), last).map(lambda t: (spec((*t[0], t[1])),))


def _swiglu_invalid(layer: Any) -> Any:
    cases = [
        st.just((spec(()),)),  # no feature dim
        _swiglu_inputs(layer).flatmap(
            lambda xs: st.sampled_from(NON_FLOAT).map(lambda d: (spec(xs[0].shape, d),))
        ),
    ]
    if layer.in_features is not None:
        wrong = sides(1, 8).filter(lambda d: d != layer.in_features)
        cases.append(st.tuples(leading(0, 3), wrong).map(lambda t: (spec((*t[0], t[1])),)))
    return st.one_of(cases)


def _swiglu_sizes(layer: Any, x: Any) -> tuple[int, int, int]:
    d = int(layer.in_features if layer.in_features is not None
            else x.shape[-1] if x.ndim else 1)
    out = layer.out_features if layer.out_features is not None else d
    return d, layer.hidden_features, out


def _t_swiglu(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    require_float(spec_of(x))
    d, hidden, out = _swiglu_sizes(layer, x)  # (a 0-d x: F.linear refuses it)

    def lin(a: Any, rows: int, cols: int) -> Any:
        b = torch_param(rows, like=a) if layer.bias else None
        return F.linear(a, torch_param(rows, cols, like=a), b)

    return lin(F.silu(lin(x, hidden, d)) * lin(x, hidden, d), out, hidden)


def _j_swiglu(layer: Any, x: Any) -> Any:
    import jax

    if x.ndim == 0:
        raise ValueError("a 0-d input has no feature dim")
    d, hidden, out = _swiglu_sizes(layer, x)

    def lin(a: Any, rows: int, cols: int) -> Any:
        y = a @ jax_param(rows, cols).T
        return y + jax_param(rows) if layer.bias else y

    return lin(jax.nn.silu(lin(x, hidden, d)) * lin(x, hidden, d), out, hidden)


def _onnx_swiglu(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    """``MatMul`` by the transposed weights (any rank), ``Sigmoid``, ``Mul``."""
    (x,), (s,) = xs, specs
    if s.ndim == 0:
        raise NotApplicable("a 0-d input has no feature dim")
    d = layer.in_features if layer.in_features is not None else s.shape[-1]
    out = layer.out_features if layer.out_features is not None else d
    hidden = layer.hidden_features

    def lin(a: str, cols: Any, rows: Any) -> str:
        (y,) = g.node("MatMul", [a, g.input((cols, rows))])
        if layer.bias:
            (y,) = g.node("Add", [y, g.input((rows,))])
        return y

    gate = lin(x, d, hidden)
    (sig,) = g.node("Sigmoid", [gate])
    (act,) = g.node("Mul", [gate, sig])
    (h,) = g.node("Mul", [act, lin(x, d, hidden)])
    return [lin(h, hidden, out)]


BUILDERS["SwiGLU"] = _onnx_swiglu

register(
    SwiGLU,
    layers=st.builds(
        SwiGLU,
        sides(1, 6),
        st.none() | sides(1, 5),
        bias=st.booleans(),
        in_features=st.none() | sides(1, 5),
    ),
    inputs=_swiglu_inputs,
    invalid=_swiglu_invalid,
    oracles=(torch_oracle(_t_swiglu), jax_oracle(_j_swiglu), onnx_oracle()),
    accepts=lambda s: s.ndim >= 1 and is_float(s),
)
UNSUPPORTED["Attention"] = (
    "ONNX has no attention layer with its projections: its Attention op (opset 23) takes "
    "already projected Q, K, V; the harness leaves this kind to the torch and JAX oracles"
)
