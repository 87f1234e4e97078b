"""The blocks of Llama-style transformers: `Attention` (grouped-query heads,
optional rotary embedding), `RotaryEmbedding` and `SwiGLU`. Shape tables
(symbolic dims included), error messages, parameters named and shaped as Hugging
Face transformers' Llama, outputs equal to transformers' ``LlamaAttention``,
``LlamaRotaryEmbedding`` + ``apply_rotary_pos_emb``, ``LlamaMLP`` and a whole
``LlamaDecoderLayer`` on every backend, the torch native modules, the ops on
every backend, and the harness."""

from __future__ import annotations

import lazyshape_numpy.attention as np_ops
import numpy as np
import pytest
from _frameworks import optional

import lazyshape as ls
from lazyshape.dims import format_shape
from lazyshape.testing import check_layer

torch_ops = optional("lazyshape_torch.attention")
torch = optional("torch")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")
jax_ops = optional("lazyshape_jax.attention")

BACKENDS = ["numpy", "torch", "jax"]
MARKS = {"numpy": (), "torch": (pytest.mark.torch,), "jax": (pytest.mark.jax,)}
#: how close each backend comes to transformers' torch modules
TOLERANCE = {"torch": 1e-5, "numpy": 1e-4, "jax": 1e-4}


def out_shape(layer, *shapes):
    """The inferred output shape of ``layer`` on ``shapes``, as text."""
    return format_shape(ls.infer(layer, *shapes).output.shape)


def param_shapes(layer, *shapes):
    return {k: format_shape(p.shape) for k, p in ls.infer(layer, *shapes).params.items()}


# -- shape tables -----------------------------------------------------------------

SHAPES = [
    # (layer, input shapes, expected output shape)
    (lambda: ls.Attention(4, 2), [("B", "T", 64)], "(B, T, 64)"),
    (lambda: ls.Attention(4, 2, rope=10000.0, is_causal=True), [(2, 7, 64)], "(2, 7, 64)"),
    (lambda: ls.Attention(4, 1), [("B", "T", "E")], "(B, T, E)"),
    (lambda: ls.Attention(4, head_dim=8), [("B", "T", 20)], "(B, T, 20)"),
    (lambda: ls.Attention(4, embed_dim=16), [("B", "T", "E")], "(B, T, 16)"),
    (lambda: ls.Attention(2), [("B", "T", 8), ("B", "S", 8), ("B", "S", 8)], "(B, T, 8)"),
    (lambda: ls.Attention(2, 1, rope=500.0), [(3, 4, 8), (3, 6, 8), (3, 6, 8)], "(3, 4, 8)"),
    (lambda: ls.Attention(2), [(2, 0, 8)], "(2, 0, 8)"),
    (lambda: ls.Attention(2), [(0, 3, 8)], "(0, 3, 8)"),
    (lambda: ls.RotaryEmbedding(), [("B", "H", "T", 16)], "(B, H, T, 16)"),
    (lambda: ls.RotaryEmbedding(head_dim=16), [("B", 4, "T", "D")], "(B, 4, T, D)"),  # D = 16
    (lambda: ls.RotaryEmbedding(), [(2, 4, 0, 2)], "(2, 4, 0, 2)"),
    (lambda: ls.SwiGLU(32), [("B", "T", 16)], "(B, T, 16)"),
    (lambda: ls.SwiGLU(32, 8), [("B", "T", "E")], "(B, T, 8)"),
    (lambda: ls.SwiGLU(32, in_features=16), [("B", "F")], "(B, 16)"),
    (lambda: ls.SwiGLU(5), [(7,)], "(7,)"),
]


@pytest.mark.parametrize("make, shapes, expected", SHAPES)
def test_output_shapes(make, shapes, expected):
    assert out_shape(make(), *shapes) == expected


PARAMS = [
    # (layer, input shapes, {name: shape})
    (lambda: ls.Attention(4, 2), [("B", "T", 64)],
     {"q_proj.weight": "(64, 64)", "k_proj.weight": "(32, 64)", "v_proj.weight": "(32, 64)",
      "o_proj.weight": "(64, 64)"}),
    (lambda: ls.Attention(4, 2, bias=True), [("B", "T", 64)],
     {"q_proj.weight": "(64, 64)", "q_proj.bias": "(64,)", "k_proj.weight": "(32, 64)",
      "k_proj.bias": "(32,)", "v_proj.weight": "(32, 64)", "v_proj.bias": "(32,)",
      "o_proj.weight": "(64, 64)", "o_proj.bias": "(64,)"}),
    (lambda: ls.Attention(4, 2), [("B", "T", "E")],
     {"q_proj.weight": "(E, E)", "k_proj.weight": "(E//2, E)", "v_proj.weight": "(E//2, E)",
      "o_proj.weight": "(E, E)"}),
    (lambda: ls.Attention(8, 1, head_dim=4), [("B", "T", "E")],
     {"q_proj.weight": "(32, E)", "k_proj.weight": "(4, E)", "v_proj.weight": "(4, E)",
      "o_proj.weight": "(E, 32)"}),
    (lambda: ls.SwiGLU(32), [("B", "T", "E")],
     {"gate_proj.weight": "(32, E)", "up_proj.weight": "(32, E)", "down_proj.weight": "(E, 32)"}),
    (lambda: ls.SwiGLU(32, 8, bias=True), [("B", 16)],
     {"gate_proj.weight": "(32, 16)", "gate_proj.bias": "(32,)", "up_proj.weight": "(32, 16)",
      "up_proj.bias": "(32,)", "down_proj.weight": "(8, 32)", "down_proj.bias": "(8,)"}),
    (lambda: ls.RotaryEmbedding(), [("B", "H", "T", 8)], {}),
]


@pytest.mark.parametrize("make, shapes, expected", PARAMS)
def test_parameter_names_and_shapes(make, shapes, expected):
    got = param_shapes(make(), *shapes)
    assert got == expected
    assert list(got) == list(expected)  # Llama's order: q, k, v, o; gate, up, down


def test_symbolic_embedding_dim_is_assumed_divisible_and_reported():
    inf = ls.infer(ls.Sequential(ls.Attention(4, 2, rope=10000.0)), ("B", "T", "E"))
    assert inf.output.shape == (ls.Sym("B"), ls.Sym("T"), ls.Sym("E"))
    assert set(inf.conditions) == {"E % 4 == 0 (at '0')", "(E//4) % 2 == 0 (at '0')"}
    bound = inf.bind(E=64, B=2, T=3)
    assert bound.output.shape == (2, 3, 64)
    assert bound.params["0.k_proj.weight"].shape == (32, 64)
    with pytest.raises(ls.ShapeError, match=r"divisible by `num_heads` \(or `head_dim` given\)"):
        inf.bind(E=10)
    with pytest.raises(ls.ShapeError, match=r"an even head dim >= 2 \(RoPE rotates"):
        inf.bind(E=12)  # head dim 3


def test_symbolic_head_dim_of_rotary_embedding_is_assumed_even():
    inf = ls.infer(ls.Sequential(ls.RotaryEmbedding()), ("B", "H", "T", "D"))
    assert inf.output.shape == tuple(ls.Sym(n) for n in "BHTD")
    assert inf.conditions == ("D % 2 == 0 (at '0')",)
    assert inf.bind(D=8, B=1, H=2, T=3).output.shape == (1, 2, 3, 8)
    with pytest.raises(ls.ShapeError, match="an even head dim"):
        inf.bind(D=7)
    # a dim known even needs no assumption
    assert not ls.infer(ls.Sequential(ls.RotaryEmbedding()), ("B", "H", "T", "2*D")).conditions


def test_repr_and_resolved_sizes():
    layer = ls.Attention(4, 2, rope=10000.0, is_causal=True)
    assert repr(layer) == ("Attention(embed_dim=?, num_heads=4, num_kv_heads=2, head_dim=?, "
                           "bias=False, is_causal=True, rope=10000.0)")
    assert repr(ls.Attention(2)) == ("Attention(embed_dim=?, num_heads=2, num_kv_heads=2, "
                                     "head_dim=?, bias=False, is_causal=False)")
    inf = ls.infer(ls.Sequential(layer, ls.SwiGLU(96)), ("B", "T", 64))
    assert inf.layers[0].resolved == {"embed_dim": 64, "num_heads": 4, "num_kv_heads": 2,
                                      "head_dim": 16, "bias": False, "is_causal": True,
                                      "rope": 10000.0}
    assert inf.layers[1].resolved == {"in_features": 64, "hidden_features": 96,
                                      "out_features": 64, "bias": False}
    assert inf.num_params == 64 * 64 * 2 + 32 * 64 * 2 + 3 * 64 * 96
    assert repr(ls.RotaryEmbedding()) == "RotaryEmbedding(head_dim=?, rope_theta=10000.0)"
    assert "k_proj.weight, v_proj.weight (32, 64)" in ls.summary(
        ls.Sequential(layer), ("B", "T", 64), format="markdown")


def test_a_rotary_embedding_as_the_rope_of_attention():
    rope = ls.RotaryEmbedding(head_dim=8, rope_theta=500000.0)
    layer = ls.Attention(4, 2, rope=rope)
    assert (layer.rope, layer.head_dim) == (500000.0, 8)  # its base and head dim
    assert param_shapes(layer, ("B", "T", 20))["q_proj.weight"] == "(32, 20)"
    assert ls.Attention(4, rope=ls.RotaryEmbedding()).head_dim is None


# -- errors -------------------------------------------------------------------------

ERRORS = [
    # (layer, input shapes, message regex)
    (lambda: ls.Attention(4), [(2, 5, 10)],
     r"^Attention: an embedding dim E divisible by `num_heads` \(or `head_dim` given\); got "
     r"E=10, `num_heads` \(=4\) \(query shape \(2, 5, 10\)\)$"),
    (lambda: ls.Attention(4, rope=10000.0), [(2, 5, 12)],
     r"an even head dim >= 2 \(RoPE rotates the two halves of each head\); got head dim 3 = "
     r"E // `num_heads` \(query shape \(2, 5, 12\), `num_heads` \(=4\)\)"),
    (lambda: ls.Attention(4, embed_dim=16), [(2, 5, 8)],
     r"expected last query dim 16 \(embed_dim\); got query shape \(2, 5, 8\)"),
    (lambda: ls.Attention(2), [(5, 8)],
     r"expected an input with 3 dims \(B, T, E\); got input shape \(5, 8\) \(2 dims\) "
     r"\(is the batch dim missing\?\)"),
    (lambda: ls.Attention(2), [(2, 3, 0)], r"an embedding dim E >= 1; got query shape \(2, 3, 0\)"),
    (lambda: ls.Attention(2), [ls.TensorSpec((2, 3, 8), "int64")],
     r"expected a floating-point input; got dtype int64"),
    (lambda: ls.Attention(2), [(2, 3, 8), (2, 5, 8)],
     r"1 input \(self-attention\) or 3 \(query, key, value\); got 2 inputs"),
    (lambda: ls.Attention(2), [(2, 3, 8), (2, 5, 6), (2, 5, 8)],
     r"expected last key dim 8 \(the query's E\); got key shape \(2, 5, 6\)"),
    (lambda: ls.Attention(2), [(2, 3, 8), (2, 5, 8), (2, 5, 6)],
     r"expected last value dim 8 \(the query's E\); got value shape \(2, 5, 6\)"),
    (lambda: ls.Attention(2), [(2, 3, 8), (3, 5, 8), (3, 5, 8)],
     r"query and key batch dims to match; got 2 and 3"),
    (lambda: ls.Attention(2), [(2, 3, 8), (2, 5, 8), (2, 6, 8)],
     r"key and value sequence dims to match; got 5 and 6"),
    (lambda: ls.Attention(2), [(2, 3, 8), (2, 5), (2, 5, 8)],
     r"`key` with 3 dims \(B, S, E\); got `key` shape \(2, 5\) \(2 dims\)"),
    (lambda: ls.Attention(2), [(2, 3, 8), ls.TensorSpec((2, 5, 8), "float64"), (2, 5, 8)],
     r"`key` of the query's dtype float32; got `key` dtype float64"),
    (lambda: ls.RotaryEmbedding(), [(2, 4, 3, 7)],
     r"^RotaryEmbedding: an even head dim >= 2 \(RoPE rotates the two halves of each head\); "
     r"got head dim 7 \(input shape \(2, 4, 3, 7\)\)$"),
    (lambda: ls.RotaryEmbedding(), [(4, 3, 8)],
     r"expected an input with 4 dims \(B, heads, T, head_dim\); got input shape \(4, 3, 8\) "
     r"\(3 dims\) \(is the batch dim missing\?\)"),
    (lambda: ls.RotaryEmbedding(head_dim=8), [(2, 4, 3, 16)],
     r"expected last input dim 8 \(head_dim\); got input shape \(2, 4, 3, 16\)"),
    (lambda: ls.RotaryEmbedding(), [ls.TensorSpec((2, 4, 3, 8), "int32")],
     r"expected a floating-point input; got dtype int32"),
    (lambda: ls.RotaryEmbedding(), [("B", "H", "T", "2*D + 1")], r"an even head dim"),
    (lambda: ls.SwiGLU(8, in_features=4), [(2, 5)],
     r"^SwiGLU: expected last input dim 4 \(in_features\); got input shape \(2, 5\)$"),
    (lambda: ls.SwiGLU(8), [()], r"expected an input with at least 1 dims \(\*, in_features\)"),
    (lambda: ls.SwiGLU(8), [ls.TensorSpec((2, 5), "bool")],
     r"expected a floating-point input; got dtype bool"),
]


@pytest.mark.parametrize("make, shapes, match", ERRORS)
def test_shape_errors(make, shapes, match):
    with pytest.raises(ls.ShapeError, match=match):
        ls.infer(make(), *shapes)


def test_errors_name_the_layer_path():
    net = ls.Sequential(ls.Linear(10), ls.Attention(4, name="self_attn"))
    with pytest.raises(ls.ShapeError, match=r"^Attention at 'self_attn': an embedding dim E"):
        ls.infer(net, ("B", "T", 3))


CONSTRUCTION = [
    (lambda: ls.Attention(0), r"^Attention: `num_heads` to be a positive int; got `num_heads` \(=0\)"),
    (lambda: ls.Attention(4, 3),
     r"`num_kv_heads` dividing `num_heads` \(each key/value head serves a group of query "
     r"heads\); got `num_heads` \(=4\), `num_kv_heads` \(=3\)"),
    (lambda: ls.Attention(4, 0), r"`num_kv_heads` to be a positive int; got `num_kv_heads` \(=0\)"),
    (lambda: ls.Attention(4, head_dim=2.0), r"`head_dim` to be a positive int"),
    (lambda: ls.Attention(4, head_dim=3, rope=10000.0),
     r"an even `head_dim` with RoPE \(it rotates the two halves of each head\); got "
     r"`head_dim` \(=3\)"),
    (lambda: ls.Attention(4, embed_dim=10),
     r"`embed_dim` divisible by `num_heads`; got `embed_dim` \(=10\), `num_heads` \(=4\)"),
    (lambda: ls.Attention(4, embed_dim=12, rope=10000.0),
     r"an even head dim `embed_dim` // `num_heads` with RoPE .*; got `embed_dim` \(=12\)"),
    (lambda: ls.Attention(4, rope="llama"),
     r"`rope` a RotaryEmbedding, a RoPE base \(`rope_theta`, a positive number\) or None; got "
     r"`rope` \(='llama'\)"),
    (lambda: ls.Attention(4, rope=True), r"`rope` a RotaryEmbedding, .*; got `rope` \(=True\)"),
    (lambda: ls.Attention(4, rope=-1.0),
     r"`rope` to be a positive finite number; got `rope` \(=-1.0\)"),
    (lambda: ls.Attention(4, head_dim=4, rope=ls.RotaryEmbedding(head_dim=8)),
     r"the RotaryEmbedding's `head_dim` equal to `head_dim`; got `head_dim` \(=4\), "
     r"RotaryEmbedding `head_dim` \(=8\)"),
    (lambda: ls.RotaryEmbedding(head_dim=3), r"^RotaryEmbedding: an even `head_dim` with RoPE"),
    (lambda: ls.RotaryEmbedding(rope_theta=float("nan")),
     r"`rope_theta` to be a positive finite number; got `rope_theta` \(=nan\)"),
    (lambda: ls.RotaryEmbedding(rope_theta=10**400), r"`rope_theta` to be a positive finite"),
    (lambda: ls.SwiGLU(0), r"^SwiGLU: `hidden_features` to be a positive int"),
    (lambda: ls.SwiGLU(8, -1), r"`out_features` to be a positive int; got `out_features` \(=-1\)"),
    (lambda: ls.SwiGLU(8, in_features="x"), r"`in_features` to be a positive int"),
]


@pytest.mark.parametrize("make, match", CONSTRUCTION)
def test_construction_errors(make, match):
    with pytest.raises(ls.ShapeError, match=match):
        make()


def test_rotary_embedding_takes_keywords_only():
    with pytest.raises(TypeError, match="positional"):  # 64: a head dim or a base?
        ls.RotaryEmbedding(64)
    assert ls.RotaryEmbedding(rope_theta=64.0, head_dim=4).hparams() == {"head_dim": 4,
                                                                         "rope_theta": 64.0}


# -- the ops, on every backend ------------------------------------------------------


def _reference_attention(q, k, v, causal, scale=None):
    """Per head, in float64: the textbook definition, key/value head ``i // group``."""
    h, hkv = q.shape[1], k.shape[1]
    k, v = np.repeat(k, h // hkv, axis=1), np.repeat(v, h // hkv, axis=1)
    scores = np.einsum("bhtd,bhsd->bhts", q, k).astype(np.float64)
    scores *= 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    if causal:
        t, s = q.shape[2], k.shape[2]
        scores = np.where(np.triu(np.ones((t, s), bool), 1), -np.inf, scores)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return np.einsum("bhts,bhsd->bhtd", w / w.sum(-1, keepdims=True), v)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads, kv_heads, t, s", [(4, 2, 5, 5), (4, 1, 3, 6), (2, 2, 6, 3)])
@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def test_dot_product_attention_op(backend, heads, kv_heads, t, s, causal):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, heads, t, 8)).astype(np.float32)
    k, v = (rng.standard_normal((2, kv_heads, s, 8)).astype(np.float32) for _ in range(2))
    want = _reference_attention(q, k, v, causal)
    args = [ls.asarray(a, backend) for a in (q, k, v)]
    got = ls.to_numpy(ls.ops.dot_product_attention(*args, is_causal=causal))
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    scaled = ls.to_numpy(ls.ops.dot_product_attention(*args, is_causal=causal, scale=0.5))
    np.testing.assert_allclose(scaled, _reference_attention(q, k, v, causal, 0.5),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def test_dot_product_attention_with_no_keys_gives_zeros(backend):
    q = ls.asarray(np.ones((1, 2, 3, 4), np.float32), backend)
    k = ls.asarray(np.ones((1, 1, 0, 4), np.float32), backend)
    out = ls.to_numpy(ls.ops.dot_product_attention(q, k, k))
    np.testing.assert_array_equal(out, np.zeros((1, 2, 3, 4), np.float32))


def _reference_rope(x, theta):
    """Llama's RoPE from its definition, in float64: pairs (j, j + D/2) rotated by
    ``t * theta ** (-2j / D)``."""
    t, d = x.shape[-2:]
    angles = np.arange(t)[:, None] * theta ** (-np.arange(0, d, 2) / d)[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    x1, x2 = x[..., : d // 2].astype(np.float64), x[..., d // 2 :].astype(np.float64)
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def test_rotary_embedding_op(backend):
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 8)).astype(np.float32)
    got = ls.to_numpy(ls.ops.rotary_embedding(ls.asarray(x, backend), 500.0))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference_rope(x, 500.0), rtol=1e-5, atol=2e-6)
    np.testing.assert_array_equal(got[:, :, 0], x[:, :, 0])  # position 0: no rotation
    # a rotation: each pair keeps its norm
    d = x.shape[-1] // 2
    np.testing.assert_allclose(got[..., :d] ** 2 + got[..., d:] ** 2,
                               x[..., :d] ** 2 + x[..., d:] ** 2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def test_rotary_embedding_keeps_a_half_precision_dtype(backend):
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 4)).astype(np.float16)
    got = ls.to_numpy(ls.ops.rotary_embedding(ls.asarray(x, backend, "float16"), 10000.0))
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), _reference_rope(x, 10000.0), atol=5e-3)


def test_ls_ops_dispatch_to_the_numpy_ops():
    q = np.ones((1, 2, 3, 4), np.float32)
    np.testing.assert_allclose(ls.ops.dot_product_attention(q, q[:, :1], q[:, :1]), q)
    assert ls.ops.rotary_embedding.__name__ == "rotary_embedding"
    np.testing.assert_array_equal(ls.ops.rotary_embedding(q, 10.0),
                                  np_ops.rotary_embedding(q, 10.0))


@pytest.mark.torch
@pytest.mark.jax
def test_the_ops_agree_across_backends_at_a_long_sequence():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 4, 300, 16)).astype(np.float32)
    k, v = (rng.standard_normal((1, 2, 300, 16)).astype(np.float32) for _ in range(2))
    ref = np_ops.dot_product_attention(np_ops.rotary_embedding(q, 1e4),
                                       np_ops.rotary_embedding(k, 1e4), v, is_causal=True)
    for mod, conv in ((torch_ops, torch.from_numpy), (jax_ops, jnp.asarray)):
        out = mod.dot_product_attention(mod.rotary_embedding(conv(q), 1e4),
                                        mod.rotary_embedding(conv(k), 1e4), conv(v),
                                        is_causal=True)
        np.testing.assert_allclose(ls.to_numpy(out), ref, rtol=1e-4, atol=1e-4)


# -- Hugging Face transformers' Llama as the reference -------------------------------


def _llama():
    """transformers' Llama modules (importable with the CPU build of torch once
    torchvision's ops are declared: `_reference`; imported once, then a lookup)."""
    from _reference import torchvision_models

    torchvision_models()
    from transformers.models.llama import modeling_llama

    return modeling_llama


def _config(attn="sdpa", **kw):
    cfg = _llama().LlamaConfig(
        **{"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 1, "vocab_size": 32, **kw}
    )
    cfg._attn_implementation = attn
    return cfg


def _rope_tables(cfg, x, positions):
    """transformers' cos / sin for ``positions`` (B, T)."""
    return _llama().LlamaRotaryEmbedding(cfg)(x, positions)


def _random(module, seed):
    """``module`` (eval mode) with random weights and biases (no zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module.eval()


def _build_loaded(model, backend, state):
    m = ls.build(model, backend)
    m.load_state_dict({k: v if backend == "torch" else v.numpy() for k, v in state.items()})
    if backend == "torch":
        m.eval()
    return m


def _run(m, backend, x):
    if backend == "torch":
        with torch.no_grad():
            return m(x).numpy()
    return np.asarray(ls.to_numpy(m(ls.asarray(x.numpy(), backend))))


ATTENTION_CASES = {
    # name: (config overrides, attention implementation, causal, rope)
    "gqa_causal_rope": ({}, "sdpa", True, True),
    "gqa_causal_rope_eager": ({}, "eager", True, True),
    "gqa_bias_theta": ({"attention_bias": True,
                        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}},
                       "sdpa", True, True),
    "mqa_causal_rope": ({"num_key_value_heads": 1}, "sdpa", True, True),
    "mha_causal_rope": ({"num_key_value_heads": 4}, "eager", True, True),
    "head_dim_given": ({"head_dim": 8}, "sdpa", True, True),
    "gqa_not_causal": ({}, "sdpa", False, True),
    "gqa_no_rope": ({}, "sdpa", True, False),
}


@pytest.mark.torch
@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
@pytest.mark.parametrize("case", sorted(ATTENTION_CASES))
def test_attention_equals_transformers_llama_attention(case, backend):
    overrides, attn, causal, rope = ATTENTION_CASES[case]
    cfg = _config(attn, **overrides)
    ref = _random(_llama().LlamaAttention(cfg, layer_idx=0), seed=1)
    b, t = 2, 7
    x = torch.randn(b, t, 64, generator=torch.Generator().manual_seed(2))
    positions = torch.arange(t)[None].expand(b, -1)
    cos, sin = _rope_tables(cfg, x, positions)
    if not rope:  # a rotation by 0: transformers' attention without its RoPE
        cos, sin = torch.ones_like(cos), torch.zeros_like(sin)
    mask = None
    if attn == "eager" and causal:  # (sdpa: is_causal; eager takes an additive mask)
        mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
    with torch.no_grad():
        want, _ = ref(x, position_embeddings=(cos, sin), attention_mask=mask, is_causal=causal)
    theta = cfg.rope_parameters["rope_theta"]
    layer = ls.Attention(cfg.num_attention_heads, cfg.num_key_value_heads,
                         cfg.head_dim if "head_dim" in overrides else None,
                         bias=cfg.attention_bias, is_causal=causal,
                         rope=theta if rope else None, name="self_attn")
    model = ls.Sequential({"self_attn": layer})
    state = {f"self_attn.{k}": v for k, v in ref.state_dict().items()}
    assert list(ls.infer(model, ("B", "T", 64)).params) == list(state)  # transformers' keys
    m = _build_loaded(model, backend, state)
    got = _run(m, backend, x)
    assert got.shape == (b, t, 64)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=TOLERANCE[backend])
    # the check can fail: the causal mask and the rotation change the output
    assert not np.allclose(got[:, 0], want.numpy()[:, 1], atol=1e-3)


@pytest.mark.torch
@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def test_rotary_embedding_equals_transformers(backend):
    llama = _llama()
    cfg = _config(rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 9, 16, generator=g), torch.randn(2, 2, 9, 16, generator=g)
    cos, sin = _rope_tables(cfg, q, torch.arange(9)[None].expand(2, -1))
    want_q, want_k = llama.apply_rotary_pos_emb(q, k, cos, sin)
    m = ls.build(ls.RotaryEmbedding(rope_theta=500000.0), backend)
    for x, want in ((q, want_q), (k, want_k)):
        got = _run(m, backend, x)
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=TOLERANCE[backend])
        assert not np.allclose(got, x.numpy(), atol=1e-3)  # it did rotate


@pytest.mark.torch
def test_rotary_embedding_is_bit_identical_to_transformers_on_torch():
    llama = _llama()
    cfg = _config()
    x = torch.randn(3, 4, 33, 16, generator=torch.Generator().manual_seed(5))
    cos, sin = _rope_tables(cfg, x, torch.arange(33)[None].expand(3, -1))
    want, _ = llama.apply_rotary_pos_emb(x, x, cos, sin)
    assert torch.equal(torch_ops.rotary_embedding(x, 10000.0), want)


@pytest.mark.torch
@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_equals_transformers_llama_mlp(backend, bias):
    cfg = _config(mlp_bias=bias)
    ref = _random(_llama().LlamaMLP(cfg), seed=3)
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = ref(x).numpy()
    model = ls.Sequential({"mlp": ls.SwiGLU(96, bias=bias)})
    state = {f"mlp.{k}": v for k, v in ref.state_dict().items()}
    assert list(ls.infer(model, ("B", "T", 64)).params) == list(state)
    got = _run(_build_loaded(model, backend, state), backend, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[backend])


def llama_decoder_layer(hidden, heads, kv_heads, intermediate, theta, eps):
    """Llama's decoder layer from public layers, with transformers' names."""
    x = ls.Input(("B", "T", hidden), name="x")
    h = ls.RMSNorm(eps=eps, name="input_layernorm")(x)
    a = ls.Attention(heads, kv_heads, is_causal=True, rope=theta, name="self_attn")(h)
    h = ls.Add(name="add_1")(x, a)
    m = ls.SwiGLU(intermediate, name="mlp")(ls.RMSNorm(eps=eps, name="post_attention_layernorm")(h))
    return ls.Model(x, ls.Add(name="add_2")(h, m))


@pytest.mark.torch
@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def test_a_decoder_layer_from_public_layers_equals_transformers(backend):
    cfg = _config()
    ref = _random(_llama().LlamaDecoderLayer(cfg, layer_idx=0), seed=6)
    x = torch.randn(2, 6, 64, generator=torch.Generator().manual_seed(7))
    cos, sin = _rope_tables(cfg, x, torch.arange(6)[None].expand(2, -1))
    with torch.no_grad():
        want = ref(x, position_embeddings=(cos, sin)).numpy()
    model = llama_decoder_layer(64, 4, 2, 96, cfg.rope_parameters["rope_theta"], cfg.rms_norm_eps)
    state = ref.state_dict()
    assert sorted(ls.infer(model).params) == sorted(state)  # transformers' names
    got = _run(_build_loaded(model, backend, dict(state)), backend, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[backend])


# -- torch native modules ------------------------------------------------------------


@pytest.mark.torch
def test_torch_builds_native_modules_with_llamas_linear_children():
    model = ls.Sequential({"self_attn": ls.Attention(4, 2, rope=10000.0, is_causal=True),
                           "mlp": ls.SwiGLU(96)})
    m = ls.build(model, "torch", seed=0).materialize((2, 5, 64))
    attn, mlp = m["self_attn"], m["mlp"]
    assert type(attn) is torch_ops.Attention and type(mlp) is torch_ops.SwiGLU
    assert isinstance(attn, nn.Module) and not isinstance(attn, ls.backend.BuiltModel)
    for name, (rows, cols) in {"q_proj": (64, 64), "k_proj": (32, 64), "v_proj": (32, 64),
                               "o_proj": (64, 64)}.items():
        lin = getattr(attn, name)
        assert type(lin) is nn.Linear and (lin.out_features, lin.in_features) == (rows, cols)
        assert lin.bias is None
    assert [type(c) for c in mlp.children()] == [nn.Linear] * 3
    assert list(m.state_dict()) == [
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    ]
    assert "num_kv_heads=2, head_dim=16, is_causal=True, rope=10000.0" in repr(attn)


@pytest.mark.torch
def test_torch_native_modules_draw_torchs_initial_values():
    torch.manual_seed(3)
    m = ls.build(ls.Sequential(ls.Attention(4, 2, bias=True), ls.SwiGLU(8)), "torch")
    m.materialize((2, 5, 16))
    torch.manual_seed(3)
    hand = [torch_ops.Attention(16, 4, 2, 4, bias=True), torch_ops.SwiGLU(16, 8, 16)]
    want = {f"{i}.{k}": v for i, mod in enumerate(hand) for k, v in mod.state_dict().items()}
    got = m.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


@pytest.mark.torch
def test_torch_native_attention_takes_query_key_value():
    q_in = ls.Input(("B", "T", 16), name="q")
    kv_in = ls.Input(("B", "S", 16), name="kv")
    model = ls.Model([q_in, kv_in], ls.Attention(2, 1, rope=100.0, name="cross")(q_in, kv_in, kv_in))
    rng = np.random.default_rng(0)
    q, kv = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 16), (2, 6, 16)))
    ref = ls.build(model, "numpy", rng="portable", seed=1)
    m = ls.build(model, "torch", rng="portable", seed=1).eval()
    with torch.no_grad():
        got = m(torch.from_numpy(q), torch.from_numpy(kv)).numpy()
    assert type(m["cross"]) is torch_ops.Attention
    np.testing.assert_allclose(got, ref(q, kv), rtol=1e-5, atol=1e-5)


@pytest.mark.torch
def test_torch_placeholders_become_the_native_module():
    m = ls.build(ls.Sequential(ls.Attention(2)), "torch")
    sd = m.state_dict()  # placeholders, before any input
    assert list(sd) == ["0.q_proj.weight", "0.k_proj.weight", "0.v_proj.weight",
                        "0.o_proj.weight"]
    assert repr(sd["0.k_proj.weight"].partial_shape) == "(?, ?)"
    m.materialize((1, 2, 8))
    assert type(m[0]) is torch_ops.Attention
    assert m.state_dict()["0.k_proj.weight"].shape == (8, 8)


# -- every backend agrees; JAX transforms --------------------------------------------


def _forward(m, backend, x):
    """An evaluation-mode forward of ``m`` (materialized first) on NumPy ``x``."""
    m.materialize(ls.TensorSpec(x.shape, str(x.dtype)))
    y = ls.backend.get_backend(backend).forward(m, ls.asarray(x, backend))
    return ls.to_numpy(y)


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("layer", [
    lambda: ls.Attention(4, 2, rope=10000.0, is_causal=True, bias=True),
    lambda: ls.Attention(3, 1, head_dim=4),
    lambda: ls.SwiGLU(24, 8, bias=True),
])
def test_every_backend_agrees_with_numpy(layer):
    x = np.random.default_rng(0).standard_normal((2, 5, 16)).astype(np.float32)
    ref = ls.build(ls.Sequential(layer()), "numpy", rng="portable", seed=4)
    want = ref(x)
    for backend in ("torch", "jax"):
        m = ls.build(ls.Sequential(layer()), backend, rng="portable", seed=4)
        got = _forward(m, backend, x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.jax
def test_jax_jit_grad_vmap():
    m = ls.build(ls.Sequential(ls.Attention(4, 2, rope=10000.0, is_causal=True), ls.SwiGLU(16)),
                 "jax", seed=0)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 16)).astype(np.float32))
    params = m.init(jax.random.key(0), x)
    y = jax.jit(m.apply)(params, x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(m.apply(params, x)), atol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(m.apply(p, x) ** 2))(params)
    assert grads["params"]["0"]["k_proj"]["weight"].shape == (8, 16)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    per_example = jax.vmap(lambda xi: m.apply(params, xi[None])[0])(x)
    np.testing.assert_allclose(np.asarray(per_example), np.asarray(y), atol=1e-5)


@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def test_causal_attention_ignores_the_future(backend):
    x = np.random.default_rng(0).standard_normal((1, 6, 8)).astype(np.float32)
    m = ls.build(ls.Attention(2, 1, rope=10000.0, is_causal=True), backend, seed=0)
    changed = x.copy()
    changed[:, 4:] += 1.0  # the future of positions 0..3
    y, y2 = (_forward(m, backend, a) for a in (x, changed))
    np.testing.assert_allclose(y[:, :4], y2[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(y[:, 4:], y2[:, 4:], atol=1e-3)


# -- the harness ----------------------------------------------------------------------


@pytest.mark.torch  # property (f) compares NumPy with a second backend
@pytest.mark.jax  # (the JAX oracle is asserted to run)
@pytest.mark.parametrize("kind", ["Attention", "RotaryEmbedding", "SwiGLU"])
def test_check_layer_passes(kind):
    result = check_layer(getattr(ls, kind), max_examples=40, backend_examples={"jax": 3})
    missing = [p for p in "abcdef" if not result.counts[p]]
    assert not missing, result
    assert result.counts["b:torch.nn.functional"] and result.counts["b:jax.eval_shape"]
    assert result.counts["case:invalid"] and result.counts["rejected:invalid"]
