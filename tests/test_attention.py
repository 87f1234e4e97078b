"""MultiheadAttention: shape tables, construction errors, parameters as torch's,
properties against ``torch.nn.MultiheadAttention`` and ``jax.eval_shape``
(shapes and failures), symbolic-then-bind, every backend against the
hand-written torch module, torch native modules, JAX transforms."""

from __future__ import annotations

import lazyshape_numpy.attention as np_ops
import numpy as np
import pytest
from _frameworks import optional
from hypothesis import assume, given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.dims import bind, bind_shape, format_shape
from lazyshape.layers.attention import MultiheadAttention

torch_ops = optional("lazyshape_torch.attention")
torch = optional("torch")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")
jax_ops = optional("lazyshape_jax.attention")

MHA = MultiheadAttention
FRAMEWORK_ERRORS = (RuntimeError, ValueError, AssertionError, IndexError)
BACKENDS = ["numpy", "torch", "jax"]
MARKS = {"numpy": (), "torch": (pytest.mark.torch,), "jax": (pytest.mark.jax,)}


def out_shape(layer, *shapes):
    """The inferred output shape of ``layer`` on ``shapes``, as text."""
    return format_shape(ls.infer(layer, *shapes).output.shape)


def _supports_dotted_names() -> bool:
    """Whether the torch backend can hold parameters with dotted local names
    (``out_proj.weight``); see the xfail marks below."""
    try:
        ls.build(ls.Sequential(MHA(1)), "torch", rng="portable").materialize((1, 1, 2))
    except (KeyError, AttributeError):
        return False
    return True


# Until the torch backend's model.py places dotted local names in submodules
# (placeholders, portable fill, single-layer root), MultiheadAttention can't be
# built on torch; these tests then fail with the KeyError torch raises.
DOTTED = _supports_dotted_names() if torch else None  # without torch: skipped, never run
needs_dotted = pytest.mark.xfail(
    not DOTTED, raises=(KeyError, AttributeError), strict=True,
    reason="core: TorchModel does not support dotted local parameter names yet",
)


# -- example tables ---------------------------------------------------------------

SHAPES = [
    # (layer, input shapes, expected output shape)
    (lambda: MHA(4), [("B", "T", 64)], "(B, T, 64)"),
    (lambda: MHA(4), [(2, 5, 64)], "(2, 5, 64)"),
    (lambda: MHA(4), [("B", "T", 64), ("B", "S", 64), ("B", "S", 64)], "(B, T, 64)"),
    (lambda: MHA(2, embed_dim=8, kdim=5, vdim=6), [(2, 3, 8), (2, 7, 5), (2, 7, 6)], "(2, 3, 8)"),
    (lambda: MHA(2, embed_dim=8, kdim=8), [(2, 3, 8), (2, 7, 8), (2, 7, 8)], "(2, 3, 8)"),
    (lambda: MHA(2, batch_first=False), [("T", "B", 8)], "(T, B, 8)"),
    (lambda: MHA(2, batch_first=False), [(3, 2, 8), (5, 2, 8), (5, 2, 8)], "(3, 2, 8)"),
    (lambda: MHA(4, embed_dim=16), [(None, None, 16)], "(?, ?, 16)"),
    (lambda: MHA(4, embed_dim=16), [("B", "T", "E")], "(B, T, 16)"),
    (lambda: MHA(4), [("B", "T", "E")], "(B, T, E)"),
    (lambda: MHA(2, causal=True), [("B", "T", 8)], "(B, T, 8)"),
    (lambda: MHA(2), [(2, 0, 8)], "(2, 0, 8)"),
    (lambda: MHA(2), [(2, 3, 8), (2, 0, 8), (2, 0, 8)], "(2, 3, 8)"),
    (
        lambda: MHA(2),
        [("B", "T", 8), ("B", "S", 8), ("B", "S", 8), ls.TensorSpec(("B", "S"), "bool")],
        "(B, T, 8)",
    ),
    (
        lambda: MHA(2, batch_first=False),
        [(4, 2, 8), (6, 2, 8), (6, 2, 8), ls.TensorSpec((2, 6), "bool")],
        "(4, 2, 8)",
    ),
]


@pytest.mark.parametrize("make, shapes, expected", SHAPES)
def test_output_shapes(make, shapes, expected):
    assert out_shape(make(), *shapes) == expected


ERRORS = [
    # (layer, input shapes, message regex)
    (lambda: MHA(4), [(2, 5, 10)],
     r"MultiheadAttention: an embedding dim E divisible by `num_heads`; got E=10, "
     r"`num_heads` \(=4\) \(query shape \(2, 5, 10\)\)"),
    (lambda: MHA(4, embed_dim=16), [(2, 5, 8)],
     r"expected last query dim 16 \(embed_dim\); got query shape \(2, 5, 8\)"),
    (lambda: MHA(2), [(5, 8)],
     r"expected an input with 3 dims \(B, T, E\); got input shape \(5, 8\) \(2 dims\) "
     r"\(is the batch dim missing\?\)"),
    (lambda: MHA(2, batch_first=False), [(1, 2, 3, 8)],
     r"expected an input with 3 dims \(T, B, E\); got input shape \(1, 2, 3, 8\) \(4 dims\)$"),
    (lambda: MHA(2), [(2, 3, 0)], r"an embedding dim E >= 1; got query shape \(2, 3, 0\)"),
    (lambda: MHA(2), [ls.TensorSpec((2, 3, 8), "int32")],
     r"expected a floating-point input; got dtype int32"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5, 8)],
     r"1 input \(self-attention\), 3 \(query, key, value\) or 4 \(query, key, value, "
     r"key_padding_mask\); got 2 inputs"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5, 8), (2, 6, 8)],
     r"key and value sequence dims to match; got 5 and 6"),
    (lambda: MHA(2), [(2, 3, 8), (3, 5, 8), (3, 5, 8)],
     r"query and key batch dims to match; got 2 and 3"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5, 8), (3, 5, 8)],
     r"query and value batch dims to match; got 2 and 3"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5), (2, 5, 8)],
     r"`key` with 3 dims \(B, S, kdim\); got `key` shape \(2, 5\) \(2 dims\) "
     r"\(is the batch dim missing\?\)"),
    (lambda: MHA(2, batch_first=False), [(3, 2, 8), (5, 2, 8), (5, 2, 8, 1)],
     r"`value` with 3 dims \(S, B, vdim\); got `value` shape \(5, 2, 8, 1\) \(4 dims\)$"),
    (lambda: MHA(2), [(2, 3, 8), ls.TensorSpec((2, 5, 8), "float64"), (2, 5, 8)],
     r"`key` of the query's dtype float32; got `key` dtype float64"),
    (lambda: MHA(2, embed_dim=8, kdim=4), [(2, 3, 8), (2, 5, 8), (2, 5, 8)],
     r"expected last key dim 4 \(kdim\); got key shape \(2, 5, 8\)"),
    (lambda: MHA(2, embed_dim=8, vdim=4), [(2, 3, 8), (2, 5, 8), (2, 5, 8)],
     r"expected last value dim 4 \(vdim\); got value shape \(2, 5, 8\)"),
    (lambda: MHA(2, embed_dim=8, vdim=4), [(2, 3, 8)],
     r"expected last value dim 4 \(vdim\); got value shape \(2, 3, 8\)"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5, 6), (2, 5, 8)],
     r"expected last key dim 8 \(the embedding dim; give `embed_dim` and `kdim` for other key "
     r"sizes\); got key shape \(2, 5, 6\)"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5, 8), (2, 5, 8), (2, 5)],
     r"a bool `key_padding_mask` \(True = ignore that key\); got dtype float32"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5, 8), (2, 5, 8), ls.TensorSpec((2, 5, 1), "bool")],
     r"`key_padding_mask` with 2 dims \(B, S\); got `key_padding_mask` shape \(2, 5, 1\) "
     r"\(3 dims\)"),
    (lambda: MHA(2), [(2, 3, 8), (2, 5, 8), (2, 5, 8), ls.TensorSpec((2, 4), "bool")],
     r"`key_padding_mask` of shape \(B, S\) = \(2, 5\); got `key_padding_mask` shape \(2, 4\)"),
    (lambda: MHA(2), [(0, 3, 8), (0, 5, 8), (0, 5, 8), ls.TensorSpec((0, 5), "bool")],
     r"B >= 1 and S >= 1 with a `key_padding_mask`; got `key_padding_mask` shape \(0, 5\)"),
    (lambda: MHA(2, batch_first=False),
     [(3, 2, 8), (5, 2, 8), (5, 2, 8), ls.TensorSpec((5, 2), "bool")],
     r"`key_padding_mask` of shape \(B, S\) = \(2, 5\); got `key_padding_mask` shape \(5, 2\)"),
]


@pytest.mark.parametrize("make, shapes, match", ERRORS)
def test_shape_errors(make, shapes, match):
    with pytest.raises(ls.ShapeError, match=match):
        ls.infer(make(), *shapes)


def test_undecidable_dims_are_assumed_equal_and_reported():
    inf = ls.infer(MHA(2), ("B", "T", 8), ("B", "S", 8), (4, "R", 8))
    assert inf.output.shape[1:] == (ls.Sym("T"), 8)
    assumed = {(str(a), str(b)) for _, a, b in inf.assumptions}
    assert ("B", "4") in assumed and ("S", "R") in assumed


def test_error_names_the_layer_path():
    net = ls.Sequential(ls.Linear(10), MHA(4))
    with pytest.raises(
        ls.ShapeError,
        match=r"^MultiheadAttention at '1': an embedding dim E divisible by `num_heads`; got E=10",
    ):
        ls.infer(net, ("B", "T", 3))


CONSTRUCTION = [
    (lambda: MHA(0), r"MultiheadAttention: `num_heads` to be a positive int; got `num_heads` \(=0\)"),
    (lambda: MHA(2.0), r"`num_heads` to be a positive int; got `num_heads` \(=2.0\)"),
    (lambda: MHA(4, embed_dim=10),
     r"MultiheadAttention: `embed_dim` divisible by `num_heads`; got `embed_dim` \(=10\), "
     r"`num_heads` \(=4\)"),
    (lambda: MHA(4, embed_dim=-4), r"`embed_dim` to be a positive int; got `embed_dim` \(=-4\)"),
    (lambda: MHA(2, kdim=0), r"`kdim` to be a positive int; got `kdim` \(=0\)"),
    (lambda: MHA(2, kdim=3, vdim=5),
     r"MultiheadAttention: `embed_dim` given with `kdim` or `vdim` \(torch's separate "
     r"projections\); got `kdim` \(=3\), `vdim` \(=5\) without `embed_dim`"),
    (lambda: MHA(2, dropout=1.5), r"`dropout` in \[0, 1\]; got `dropout` \(=1.5\)"),
    (lambda: MHA(2, batch_first=None), r"`batch_first` a bool; got `batch_first` \(=None\)"),
]


@pytest.mark.parametrize("make, match", CONSTRUCTION)
def test_construction_errors(make, match):
    with pytest.raises(ls.ShapeError, match=match):
        make()


def test_symbolic_embed_dim_is_assumed_divisible_and_reported():
    inf = ls.infer(ls.Sequential(MHA(4)), ("B", "T", "E"))
    assert format_shape(inf.params["0.in_proj_weight"].shape) == "(3*E, E)"
    assert set(inf.unresolved) == {"0.in_proj_weight", "0.in_proj_bias", "0.out_proj.weight",
                                   "0.out_proj.bias"}
    assert any(str(a) == "E%4" or "E" in str(a) for _, a, _ in inf.assumptions)
    bound = inf.bind(E=8, B=2, T=3)
    assert bound.output.shape == (2, 3, 8)
    with pytest.raises(ls.ShapeError, match=r"divisible by `num_heads`; got E=6"):
        inf.bind(E=6)


def test_repr_and_summary_show_inferred_sizes():
    layer = MHA(4)
    assert repr(layer) == (
        "MultiheadAttention(embed_dim=?, num_heads=4, dropout=0.0, bias=True, "
        "batch_first=True, causal=False)"
    )
    inf = ls.infer(ls.Sequential(layer), ("B", "T", 16))
    assert inf.layers[0].resolved["embed_dim"] == 16
    assert inf.num_params == 1088
    table = ls.summary(ls.Sequential(layer), ("B", "T", 16))
    assert "out_proj.weight (16, 16)" in table and "1,088" in table


# -- parameters: torch's names, shapes and initializers ---------------------------


@pytest.mark.torch
@pytest.mark.parametrize(
    "kw, shapes, torch_kw",
    [
        ({}, [(2, 3, 16)], {}),
        ({"bias": False}, [(2, 3, 16)], {"bias": False}),
        ({"embed_dim": 16, "kdim": 6, "vdim": 7}, [(2, 3, 16), (2, 5, 6), (2, 5, 7)],
         {"kdim": 6, "vdim": 7}),
        ({"embed_dim": 16, "vdim": 7}, [(2, 3, 16), (2, 5, 16), (2, 5, 7)], {"vdim": 7}),
        ({"embed_dim": 16, "kdim": 16}, [(2, 3, 16)], {"kdim": 16}),
    ],
)
def test_params_are_torchs(kw, shapes, torch_kw):
    inf = ls.infer(MHA(4, **kw), *shapes)
    ref = nn.MultiheadAttention(16, 4, batch_first=True, **torch_kw)
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: tuple(p.shape) for k, p in inf.params.items()} == expected
    assert list(inf.params) == list(expected)
    assert inf.num_params == sum(p.numel() for p in ref.parameters())
    inits = {k: repr(p.init) for k, p in inf.params.items()}
    packed = "in_proj_weight" in inits
    assert inits["in_proj_weight" if packed else "q_proj_weight"].startswith("xavier_uniform")
    assert inits["out_proj.weight"].startswith("kaiming_uniform(a=2.23")
    if kw.get("bias", True):
        assert inits["in_proj_bias"] == inits["out_proj.bias"] == "zeros()"


def test_params_do_not_depend_on_sequence_lengths():
    inf = ls.infer(MHA(4), ("B", "T", 16), ("B", "S", 16), ("B", "S", 16))
    assert not inf.unresolved
    assert inf.num_params == 4 * 16 * 16 + 4 * 16


# -- properties: the rule against torch and JAX ----------------------------------


@st.composite
def attention_cases(draw, valid=True):
    """``(hyperparameters, input shapes)``; invalid cases may break any size rule."""
    heads = draw(st.integers(1, 3))
    e = heads * draw(st.integers(1, 3)) if valid else draw(st.integers(0, 7))
    b, t = draw(st.integers(0, 2)), draw(st.integers(0, 3))
    hp = {"num_heads": heads, "batch_first": draw(st.booleans()), "causal": draw(st.booleans())}
    kind = draw(st.sampled_from(["self", "cross", "mask"]))
    if kind == "self":
        shapes = [(b, t, e)]
    else:
        s = draw(st.integers(0, 3))
        if valid and kind == "mask":  # torch can't take an empty padding mask
            b, s = max(b, 1), max(s, 1)
        kd, vd = draw(st.sampled_from([e, 3])), draw(st.sampled_from([e, 2]))
        if valid and (kd != e or vd != e):
            hp.update(embed_dim=e, kdim=kd, vdim=vd)
        elif not valid and draw(st.booleans()):
            hp.update(embed_dim=heads * draw(st.integers(1, 2)), kdim=3, vdim=2)
        if valid:
            b2, b3, s2 = b, b, s
        else:
            b2, b3, s2 = draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 3))
        shapes = [(b, t, e), (b2, s, kd), (b3, s2, vd)]
        if kind == "mask":
            shapes.append((draw(st.sampled_from([b, 1])) if not valid else b, s))
    if not hp["batch_first"]:
        shapes = [(s[1], s[0], s[2]) if len(s) == 3 else s for s in shapes]
    return hp, shapes


def _specs(shapes):
    return [ls.TensorSpec(s, "bool" if len(s) == 2 else "float32") for s in shapes]


def _torch_forward(hp, shapes):
    """What ``nn.MultiheadAttention`` does (module or call failure raises)."""
    q = torch.zeros(shapes[0])
    k, v = (q, q) if len(shapes) == 1 else (torch.zeros(shapes[1]), torch.zeros(shapes[2]))
    mask = torch.zeros(shapes[3], dtype=torch.bool) if len(shapes) == 4 else None
    mod = nn.MultiheadAttention(
        hp.get("embed_dim", q.shape[-1]), hp["num_heads"], batch_first=hp["batch_first"],
        kdim=hp.get("kdim"), vdim=hp.get("vdim"),
    )
    attn_mask = None
    if hp["causal"]:
        t = 1 if hp["batch_first"] else 0
        attn_mask = torch.ones(q.shape[t], k.shape[t], dtype=torch.bool).triu(1)
    with torch.no_grad():
        return mod(q, k, v, key_padding_mask=mask, need_weights=False, attn_mask=attn_mask)[0]


@pytest.mark.torch
@pytest.mark.jax
@given(attention_cases())
def test_rule_matches_torch_and_jax(case):
    hp, shapes = case
    layer = MHA(**hp)
    spec = ls.infer(layer, *_specs(shapes)).output
    assert tuple(_torch_forward(hp, shapes).shape) == spec.shape
    m = ls.build(layer, "jax", rng="portable")  # NumPy draws: nothing to compile
    params = m.init(0, *_specs(shapes))
    xs = [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in _specs(shapes)]
    assert jax.eval_shape(m.apply, params, *xs).shape == spec.shape


@pytest.mark.torch
@given(attention_cases(valid=False))
def test_rule_and_torch_fail_together(case):
    hp, shapes = case
    try:
        ls.infer(MHA(**hp), *_specs(shapes))
        rule_ok = True
    except ls.ShapeError:
        rule_ok = False
    try:
        _torch_forward(hp, shapes)
        torch_ok = True
    except FRAMEWORK_ERRORS:
        torch_ok = False
    if torch_ok and not rule_ok and _empty_batch_mismatch(hp, shapes):
        return  # a deliberate deviation: torch never compares the batch sizes
    assert rule_ok == torch_ok, shapes


def _empty_batch_mismatch(hp, shapes):
    """Query, key and value of different batch sizes, with the key or value
    empty: torch reshapes them by the query's batch without comparing, which an
    empty tensor survives; lazyshape rejects the mismatch."""
    if len(shapes) < 3:
        return False
    b = 0 if hp["batch_first"] else 1
    empty = any(0 in s for s in shapes[1:3])
    return empty and len({s[b] for s in shapes[:3]}) > 1


@pytest.mark.torch
def test_torch_accepts_an_empty_key_of_another_batch_size_and_lazyshape_does_not():
    hp = {"num_heads": 1, "batch_first": False, "causal": False}
    shapes = [(0, 1, 1), (0, 0, 1), (0, 0, 1)]  # query batch 1, key/value batch 0
    assert tuple(_torch_forward(hp, shapes).shape) == (0, 1, 1)
    with pytest.raises(ls.ShapeError, match="query and key batch dims to match; got 1 and 0"):
        ls.infer(MHA(**hp), *_specs(shapes))
    assert _empty_batch_mismatch(hp, shapes)


@given(attention_cases(), st.booleans())
def test_symbolic_then_bind_equals_bind_then_infer(case, named_e):
    hp, shapes = case
    layer = ls.Sequential(MHA(**hp))
    # one symbol per distinct value (the embedding dims optionally concrete)
    values = {f"n{d}": d for s in shapes for d in s}
    sym_shapes = [
        [d if (i == 2 and not named_e) else f"n{d}" for i, d in enumerate(s)] for s in shapes
    ]
    sym_specs = [ls.TensorSpec(s, "bool" if len(s) == 2 else "float32") for s in sym_shapes]
    try:
        symbolic = ls.infer(layer, *sym_specs)
    except ls.ShapeError:
        assume(False)
    # symbols that could not be proved equal were assumed equal: bind consistently
    assume(all(bind(a, values) == bind(b, values) for _, a, b in symbolic.assumptions))
    bound = symbolic.bind(**values)
    concrete = ls.infer(layer, *_specs(shapes))
    assert bound.output.shape == concrete.output.shape
    assert bind_shape(symbolic.output.shape, values) == concrete.output.shape
    assert {k: p.shape for k, p in bound.params.items()} == {
        k: p.shape for k, p in concrete.params.items()
    }
    for k, p in symbolic.params.items():
        assert bind_shape(p.shape, values) == concrete.params[k].shape


# -- every backend, against NumPy and the hand-written torch module ---------------


def _model(layer, shapes):
    ins = [
        ls.Input(tuple(f"d{i}_{j}" for j in range(len(s) - 1)) + (s[-1],) if len(s) == 3
                 else ("b", "s"), "bool" if len(s) == 2 else "float32")
        for i, s in enumerate(shapes)
    ]
    return ls.Model(ins, layer(*ins))


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        if len(s) == 2:  # key_padding_mask: some keys masked, one whole row masked
            mask = rng.random(s) < 0.3
            mask[-1] = True
            out.append(mask)
        else:
            out.append(rng.standard_normal(s).astype(np.float32))
    return out


CASES = {
    "self": (lambda: MHA(2, name="attn"), [(2, 5, 8)], {}),
    "self_causal": (lambda: MHA(2, causal=True, name="attn"), [(2, 5, 8)], {}),
    "self_one_head": (lambda: MHA(1, name="attn"), [(3, 4, 6)], {}),
    "cross": (lambda: MHA(4, name="attn"), [(2, 3, 8), (2, 6, 8), (2, 6, 8)], {}),
    "cross_kdim_vdim": (lambda: MHA(2, embed_dim=8, kdim=5, vdim=3, name="attn"),
                        [(2, 3, 8), (2, 6, 5), (2, 6, 3)],
                        {"kdim": 5, "vdim": 3}),
    "mask": (lambda: MHA(2, name="attn"), [(2, 3, 8), (2, 6, 8), (2, 6, 8), (2, 6)], {}),
    "causal_cross_mask": (lambda: MHA(2, causal=True, name="attn"),
                          [(2, 4, 8), (2, 6, 8), (2, 6, 8), (2, 6)], {}),
    "seq_first": (lambda: MHA(2, batch_first=False, name="attn"), [(5, 2, 8)], {}),
    "seq_first_mask": (lambda: MHA(2, batch_first=False, name="attn"),
                       [(3, 2, 8), (4, 2, 8), (4, 2, 8), (2, 4)], {}),
    "no_bias": (lambda: MHA(2, bias=False, name="attn"), [(2, 5, 8)], {"bias": False}),
}


def _hand_written(layer, kw, state):
    e = state["attn.out_proj.weight"].shape[0]
    mod = nn.MultiheadAttention(e, layer.num_heads, batch_first=layer.batch_first, **kw)
    mod.load_state_dict({k.removeprefix("attn."): torch.from_numpy(v) for k, v in state.items()})
    return mod.eval()


def _torch_reference(layer, kw, state, xs):
    mod = _hand_written(layer, kw, state)
    ts = [torch.from_numpy(x) for x in xs]
    q, k, v = (ts[0], ts[0], ts[0]) if len(ts) == 1 else ts[:3]
    mask = ts[3] if len(ts) == 4 else None
    attn_mask = None
    if layer.causal:
        t = 1 if layer.batch_first else 0
        attn_mask = torch.ones(q.shape[t], k.shape[t], dtype=torch.bool).triu(1)
    with torch.no_grad():
        return mod(q, k, v, key_padding_mask=mask, need_weights=False, attn_mask=attn_mask)[0]


@pytest.mark.torch  # the hand-written torch module is the reference on every backend
@pytest.mark.parametrize("backend", [
    pytest.param(b, marks=[*MARKS[b], needs_dotted] if b == "torch" else MARKS[b])
    for b in BACKENDS
])
@pytest.mark.parametrize("case", sorted(CASES))
def test_backends_agree_with_numpy_and_torch(backend, case):
    make, shapes, kw = CASES[case]
    xs = _inputs(shapes)
    inferred = ls.infer(_model(make(), shapes), *[x for x in _specs(shapes)])
    m = ls.build(_model(make(), shapes), backend, rng="portable", seed=5)
    if backend == "torch":
        m.eval()
    y = ls.to_numpy(m(*(ls.asarray(x, backend) for x in xs)))
    assert y.shape == inferred.output.shape
    assert str(y.dtype) == "float32"
    ref = ls.build(_model(make(), shapes), "numpy", rng="portable", seed=5)
    expected = ref(*xs)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    state = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
    assert list(state) == list(inferred.params)
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(state[name], value)
    hand = _torch_reference(make(), kw, ref.state_dict(), xs).numpy()
    np.testing.assert_allclose(y, hand, rtol=1e-5, atol=1e-5)


def test_fully_masked_query_gives_zeros_before_the_output_projection():
    xs = _inputs([(2, 3, 8), (2, 6, 8), (2, 6, 8), (2, 6)])
    m = ls.build(_model(MHA(2, name="attn"), [(2, 3, 8)] * 3 + [(2, 6)]), "numpy", seed=0)
    y = m(*xs)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[-1], np.broadcast_to(m.params["attn.out_proj.bias"], (3, 8)))


# -- torch native modules ----------------------------------------------------------


@pytest.mark.torch
@needs_dotted
@pytest.mark.parametrize(
    "kw, shapes, torch_kw",
    [
        ({}, [(2, 5, 8)], {}),
        ({"bias": False}, [(2, 5, 8)], {"bias": False}),
        ({"batch_first": False}, [(5, 2, 8)], {"batch_first": False}),
        ({"dropout": 0.1}, [(2, 5, 8)], {"dropout": 0.1}),
        ({"embed_dim": 8, "kdim": 3, "vdim": 5}, [(2, 5, 8), (2, 4, 3), (2, 4, 5)],
         {"kdim": 3, "vdim": 5}),
    ],
)
def test_torch_native_module_is_bit_identical(kw, shapes, torch_kw):
    layer = MHA(2, **kw)
    ins = [ls.Input(("B", f"T{i}", s[-1]) if kw.get("batch_first", True) else (f"T{i}", "B", s[-1]))
           for i, s in enumerate(shapes)]
    model = ls.Model(ins, layer(*ins)) if len(shapes) > 1 else ls.Sequential(layer)
    torch.manual_seed(3)
    m = ls.build(model, "torch")
    m.materialize(*shapes)
    torch.manual_seed(3)
    hand = nn.MultiheadAttention(8, 2, **{"batch_first": True, **torch_kw})
    native = m[0] if len(shapes) == 1 else m["multihead_attention"]
    assert isinstance(native, nn.MultiheadAttention)
    assert type(native).__name__ == "MultiheadAttention"
    got, want = native.state_dict(), hand.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    prefix = "0." if len(shapes) == 1 else "multihead_attention."
    assert list(m.state_dict()) == [prefix + k for k in want]
    m.eval()
    hand.eval()
    xs = [torch.randn(s) for s in shapes]
    q, k, v = (xs[0],) * 3 if len(xs) == 1 else xs
    with torch.no_grad():
        torch.testing.assert_close(m(*xs), hand(q, k, v, need_weights=False)[0])


@pytest.mark.torch
@needs_dotted
def test_torch_causal_native_matches_is_causal_mask():
    torch.manual_seed(0)
    m = ls.build(ls.Sequential(MHA(2, causal=True)), "torch").eval().materialize((2, 5, 8))
    x = torch.randn(2, 5, 8)
    torch.manual_seed(0)
    hand = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    with torch.no_grad():
        torch.testing.assert_close(m(x), hand(x, x, x, attn_mask=mask, need_weights=False)[0])


@pytest.mark.torch
@needs_dotted
def test_torch_single_layer_built_alone_and_checkpoints():
    m = ls.build(MHA(2), "torch", seed=0)
    m.materialize((2, 3, 8))
    assert list(m.state_dict()) == [
        "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"
    ]
    state = {k: v.clone() for k, v in m.state_dict().items()}
    m2 = ls.build(MHA(2), "numpy")
    m2.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    np.testing.assert_allclose(
        m2(x), m.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5
    )


@pytest.mark.torch
@needs_dotted
def test_torch_placeholders_before_materialization():
    m = ls.build(ls.Sequential(MHA(2)), "torch")
    sd = m.state_dict()
    assert list(sd) == ["0.in_proj_weight", "0.in_proj_bias", "0.out_proj.weight",
                        "0.out_proj.bias"]
    assert repr(sd["0.out_proj.weight"].partial_shape) == "(?, ?)"


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_op_agrees_on_every_backend(causal, masked):
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    k, v = (rng.standard_normal((2, 3, 6, 5)).astype(np.float32) for _ in range(2))
    mask = None
    if masked:
        mask = rng.random((2, 6)) < 0.4
        mask[1] = True  # every key of the second batch ignored: zeros
    ref = np_ops.scaled_dot_product_attention(q, k, v, mask, causal, 0.0, None)
    if masked:
        np.testing.assert_array_equal(ref[1], 0)
    for mod, conv in ((torch_ops, torch.from_numpy), (jax_ops, jnp.asarray)):
        args = [conv(a) for a in (q, k, v)]
        m = None if mask is None else conv(mask)
        out = mod.scaled_dot_product_attention(*args, m, causal, 0.0, None)
        np.testing.assert_allclose(ls.to_numpy(out), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.torch
@needs_dotted
def test_torch_reinit_on_a_new_embedding_size():
    m = ls.build(ls.Sequential(MHA(2)), "torch", seed=0, on_shape_change="reinit")
    m.materialize((2, 3, 8))
    m.materialize((2, 3, 4))
    assert m.state_dict()["0.out_proj.weight"].shape == (4, 4)
    assert m[0].embed_dim == 4


@pytest.mark.torch
def test_torch_op_matches_functional_in_training_with_generator():
    q, k, v = (torch.randn(2, 2, 3, 4) for _ in range(3))
    a = torch_ops.scaled_dot_product_attention(q, k, v, None, True, 0.5, torch.Generator().manual_seed(1))
    b = torch_ops.scaled_dot_product_attention(q, k, v, None, True, 0.5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert a.shape == (2, 2, 3, 4)


# -- training (dropout) and JAX transforms ----------------------------------------


@pytest.mark.parametrize("backend", [pytest.param(b, marks=MARKS[b]) for b in ("numpy", "jax")])
def test_attention_dropout_in_training_only(backend):
    layer = MHA(2, dropout=0.5)
    m = ls.build(layer, backend, seed=0)
    x = _inputs([(2, 4, 8)])[0]
    y_eval = m(ls.asarray(x, backend))
    if backend == "jax":
        params = m.params
        apply = jax.jit(m.apply, static_argnames="training")
        y1 = apply(params, x, training=True, key=jax.random.key(1))
        y2 = apply(params, x, training=True, key=jax.random.key(1))
        np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
        assert not np.allclose(np.asarray(y1), np.asarray(y_eval))
        np.testing.assert_allclose(np.asarray(apply(params, x)), np.asarray(y_eval), atol=1e-6)
    else:
        assert ls.to_numpy(y_eval).shape == (2, 4, 8)


@pytest.mark.jax
def test_jax_jit_grad_vmap():
    m = ls.build(MHA(2, causal=True), "jax", seed=0)
    x = jnp.asarray(_inputs([(2, 4, 8)])[0])
    params = m.init(jax.random.key(0), x)
    y = jax.jit(m.apply)(params, x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(m.apply(params, x)), atol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(m.apply(p, x) ** 2))(params)
    assert grads["params"]["out_proj"]["weight"].shape == (8, 8)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    per_example = jax.vmap(lambda xi: m.apply(params, xi[None])[0])(x)
    np.testing.assert_allclose(np.asarray(per_example), np.asarray(y), atol=1e-5)


@pytest.mark.jax
def test_jax_grad_through_masked_rows_is_finite():
    shapes = [(2, 3, 8), (2, 6, 8), (2, 6, 8), (2, 6)]
    xs = _inputs(shapes)
    m = ls.build(MHA(2), "jax", seed=0)
    params = m.init(0, *[ls.TensorSpec(s, "bool" if len(s) == 2 else "float32") for s in shapes])
    grads = jax.jit(jax.grad(lambda p: jnp.sum(m.apply(p, *xs))))(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))


# -- the backend op protocol --------------------------------------------------------


def test_ls_ops_dispatch_to_the_seq_ops():
    q = np.ones((1, 1, 2, 4), np.float32)
    out = ls.ops.scaled_dot_product_attention(q, q, q, None, False, 0.0, None)
    np.testing.assert_allclose(out, q)
