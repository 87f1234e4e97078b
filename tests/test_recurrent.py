"""LSTM and GRU: shape tables, construction errors, parameters as torch's,
properties against ``torch.nn.LSTM`` / ``nn.GRU`` and ``jax.eval_shape``
(shapes and failures), symbolic-then-bind, every backend against the
hand-written torch module (several layers, both directions, initial states),
torch native modules, JAX transforms."""

from __future__ import annotations

import lazyshape_numpy.recurrent as np_ops
import numpy as np
import pytest
from _frameworks import optional
from hypothesis import assume, given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.dims import bind, bind_shape, format_shape
from lazyshape.layers.recurrent import GRU, LSTM

torch_ops = optional("lazyshape_torch.recurrent")
torch = optional("torch")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")
jax_ops = optional("lazyshape_jax.recurrent")

LAYERS = {"LSTM": LSTM, "GRU": GRU}
TORCH = {"LSTM": nn.LSTM, "GRU": nn.GRU} if torch else {}
FRAMEWORK_ERRORS = (RuntimeError, ValueError, IndexError)
BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]


def out_shapes(layer, *shapes):
    """The inferred output shapes of ``layer`` on ``shapes``, as text."""
    return [format_shape(o.shape) for o in ls.infer(layer, *shapes).outputs]


# -- example tables ---------------------------------------------------------------

SHAPES = [
    # (layer, input shapes, expected output shapes)
    (lambda: LSTM(32), [("B", "T", 16)], ["(B, T, 32)"]),
    (lambda: GRU(32), [("B", "T", 16)], ["(B, T, 32)"]),
    (lambda: LSTM(8, 2, bidirectional=True), [("B", "T", 4)], ["(B, T, 16)"]),
    (lambda: GRU(8, batch_first=False), [("T", "B", 4)], ["(T, B, 8)"]),
    (lambda: LSTM(8, input_size=16), [(None, None, "F")], ["(?, ?, 8)"]),
    (lambda: LSTM(8, return_state=True), [("B", "T", 4)], ["(B, T, 8)", "(1, B, 8)", "(1, B, 8)"]),
    (lambda: LSTM(8, 2, False, return_state=True, bidirectional=True), [("T", "B", 4)],
     ["(T, B, 16)", "(4, B, 8)", "(4, B, 8)"]),
    (lambda: GRU(8, 3, bidirectional=True, return_state=True), [(2, 5, 4)],
     ["(2, 5, 16)", "(6, 2, 8)"]),
    (lambda: LSTM(8, 2), [("B", "T", 4), (2, "B", 8), (2, "B", 8)], ["(B, T, 8)"]),
    (lambda: GRU(8, 2, return_state=True), [("B", "T", 4), (2, "B", 8)],
     ["(B, T, 8)", "(2, B, 8)"]),
    (lambda: LSTM(3), [(0, 5, 2)], ["(0, 5, 3)"]),
]


@pytest.mark.parametrize("make, shapes, expected", SHAPES)
def test_output_shapes(make, shapes, expected):
    assert out_shapes(make(), *shapes) == expected


def test_stacks_in_a_sequential_with_params_independent_of_time():
    net = ls.Sequential(LSTM(32), GRU(16, 2), ls.Linear(3))
    inf = ls.infer(net, ("B", "T", 16))
    assert format_shape(inf.output.shape) == "(B, T, 3)"
    assert not inf.unresolved
    assert inf.params["0.weight_ih_l0"].shape == (128, 16)
    assert inf.params["1.weight_ih_l0"].shape == (48, 32)
    assert inf.params["1.weight_ih_l1"].shape == (48, 16)
    assert inf.bind(B=2, T=7).output.shape == (2, 7, 3)


ERRORS = [
    # (layer, input shapes, message regex)
    (lambda: LSTM(8), [(4, 16)],
     r"^LSTM: expected an input with 3 dims \(B, T, F\); got input shape \(4, 16\) \(2 dims\) "
     r"\(is the batch dim missing\?\)$"),
    (lambda: GRU(8, batch_first=False), [(1, 2, 3, 4)],
     r"^GRU: expected an input with 3 dims \(T, B, F\); got input shape \(1, 2, 3, 4\) \(4 dims\)$"),
    (lambda: LSTM(8), [(2, 0, 3)], r"a sequence length T >= 1; got input shape \(2, 0, 3\)"),
    (lambda: GRU(8, batch_first=False), [(0, 2, 3)],
     r"a sequence length T >= 1; got input shape \(0, 2, 3\)"),
    (lambda: LSTM(8), [(2, 3, 0)], r"an input size F >= 1; got input shape \(2, 3, 0\)"),
    (lambda: LSTM(8, input_size=16), [(2, 3, 8)],
     r"expected last input dim 16 \(input_size\); got input shape \(2, 3, 8\)"),
    (lambda: GRU(8), [ls.TensorSpec((2, 3, 4), "int64")],
     r"expected a floating-point input; got dtype int64"),
    (lambda: LSTM(8), [(2, 3, 4), (1, 2, 8)],
     r"^LSTM: 1 input \(the sequence\) or 3 \(the sequence, h_0, c_0\); got 2 inputs$"),
    (lambda: GRU(8), [(2, 3, 4), (1, 2, 8), (1, 2, 8)],
     r"^GRU: 1 input \(the sequence\) or 2 \(the sequence, h_0\); got 3 inputs$"),
    (lambda: LSTM(8, 2), [(4, 3, 5), (1, 4, 8), (2, 4, 8)],
     r"`h_0` of shape \(num_layers\*num_directions, B, H\) = \(2, 4, 8\); got `h_0` shape "
     r"\(1, 4, 8\)"),
    (lambda: LSTM(8, bidirectional=True, batch_first=False), [(3, 4, 5), (2, 4, 8), (2, 3, 8)],
     r"`c_0` of shape \(num_layers\*num_directions, B, H\) = \(2, 4, 8\); got `c_0` shape "
     r"\(2, 3, 8\)"),
    (lambda: GRU(8), [(4, 3, 5), (4, 8)],
     r"`h_0` with 3 dims \(num_layers\*num_directions, B, H\) = \(1, 4, 8\); got `h_0` shape "
     r"\(4, 8\) \(2 dims\)"),
    (lambda: GRU(8), [(4, 3, 5), ls.TensorSpec((1, 4, 8), "float64")],
     r"`h_0` of the input's dtype float32; got `h_0` dtype float64"),
]


@pytest.mark.parametrize("make, shapes, match", ERRORS)
def test_shape_errors(make, shapes, match):
    with pytest.raises(ls.ShapeError, match=match):
        ls.infer(make(), *shapes)


def test_error_names_the_layer_path():
    with pytest.raises(ls.ShapeError, match=r"^LSTM at '1': expected last input dim 4 \(input_size\)"):
        ls.infer(ls.Sequential(ls.Linear(6), LSTM(3, input_size=4)), ("B", "T", 2))


CONSTRUCTION = [
    (lambda: LSTM(0), r"^LSTM: `hidden_size` to be a positive int; got `hidden_size` \(=0\)$"),
    (lambda: GRU(4, 0), r"^GRU: `num_layers` to be a positive int; got `num_layers` \(=0\)$"),
    (lambda: LSTM(4, input_size=0), r"`input_size` to be a positive int; got `input_size` \(=0\)"),
    (lambda: GRU(4, 2, dropout=-0.1), r"`dropout` in \[0, 1\]; got `dropout` \(=-0.1\)"),
    (lambda: LSTM(4, batch_first=1), r"`batch_first` a bool; got `batch_first` \(=1\)"),
    (lambda: LSTM(4, bidirectional="yes"),
     r"`bidirectional` a bool; got `bidirectional` \(='yes'\)"),
    (lambda: GRU(4, return_state=None), r"`return_state` a bool; got `return_state` \(=None\)"),
]


@pytest.mark.parametrize("make, match", CONSTRUCTION)
def test_construction_errors(make, match):
    with pytest.raises(ls.ShapeError, match=match):
        make()


def test_repr_shows_unknown_input_size():
    assert repr(LSTM(32)) == (
        "LSTM(input_size=?, hidden_size=32, num_layers=1, bias=True, batch_first=True, "
        "dropout=0.0, bidirectional=False, return_state=False)"
    )
    inf = ls.infer(ls.Sequential(GRU(4)), ("B", "T", 6))
    assert inf.layers[0].resolved["input_size"] == 6


def test_num_outputs_follows_return_state():
    assert LSTM(4).num_outputs == 1
    assert LSTM(4, return_state=True).num_outputs == 3
    assert GRU(4, return_state=True).num_outputs == 2


def test_functional_call_packs_outputs_as_torch():
    x = ls.Input(("B", "T", 4))
    out, (h, c) = LSTM(8, 2, return_state=True)(x)
    assert format_shape(out.shape) == "(B, T, 8)"
    assert format_shape(h.shape) == format_shape(c.shape) == "(2, B, 8)"
    out2, h2 = GRU(8, return_state=True)(out)
    assert format_shape(h2.shape) == "(1, B, 8)"
    y = LSTM(8, 2)(x, h, c)  # initial states from another layer
    model = ls.Model(x, [out2, y])
    assert [format_shape(o.shape) for o in ls.infer(model).outputs] == ["(B, T, 8)"] * 2


# -- parameters: torch's names, shapes and initializers ---------------------------


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize(
    "kw", [{}, {"num_layers": 3}, {"bias": False}, {"num_layers": 2, "bidirectional": True}]
)
def test_params_are_torchs(mode, kw):
    inf = ls.infer(LAYERS[mode](6, **kw), (2, 3, 5))
    ref = TORCH[mode](5, 6, **kw)
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert list(inf.params) == list(expected)
    assert {k: tuple(p.shape) for k, p in inf.params.items()} == expected
    assert inf.num_params == sum(p.numel() for p in ref.parameters())
    assert {repr(p.init) for p in inf.params.values()} == {"fan_in_uniform(fan_in=6)"}


# -- properties: the rule against torch and JAX ----------------------------------


@st.composite
def recurrent_cases(draw, valid=True):
    mode = draw(st.sampled_from(["LSTM", "GRU"]))
    hidden, layers = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    bidirectional, batch_first = draw(st.booleans()), draw(st.booleans())
    return_state = draw(st.booleans())
    b = draw(st.integers(0, 2))
    t = draw(st.integers(1, 3) if valid else st.integers(0, 3))
    f = draw(st.integers(1, 3) if valid else st.integers(0, 3))
    x = (b, t, f) if batch_first else (t, b, f)
    shapes = [x]
    if draw(st.booleans()):
        dirs = 2 if bidirectional else 1
        state = (layers * dirs, b, hidden)
        if not valid:
            state = tuple(d + draw(st.integers(0, 1)) for d in state)
        shapes += [state] * (2 if mode == "LSTM" else 1)
    hp = {"hidden_size": hidden, "num_layers": layers, "bidirectional": bidirectional,
          "batch_first": batch_first}
    return mode, hp, return_state, shapes


def _torch_forward(mode, hp, shapes):
    """What ``nn.LSTM`` / ``nn.GRU`` return (construction or call failure raises)."""
    mod = TORCH[mode](shapes[0][2], **hp)
    x = torch.zeros(shapes[0])
    state = [torch.zeros(s) for s in shapes[1:]]
    hx = None if not state else (tuple(state) if mode == "LSTM" else state[0])
    with torch.no_grad():
        out, last = mod(x, hx)
    return [out, *last] if mode == "LSTM" else [out, last]


@pytest.mark.torch
@pytest.mark.jax
@given(recurrent_cases())
def test_rule_matches_torch_and_jax(case):
    mode, hp, return_state, shapes = case
    layer = LAYERS[mode](**hp, return_state=return_state)
    specs = [o.shape for o in ls.infer(layer, *shapes).outputs]
    got = [tuple(t.shape) for t in _torch_forward(mode, hp, shapes)]
    assert specs == (got if return_state else got[:1])
    m = ls.build(layer, "jax", rng="portable")  # NumPy draws: nothing to compile
    params = m.init(0, *shapes)
    xs = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    out = jax.eval_shape(m.apply, params, *xs)
    assert [o.shape for o in jax.tree_util.tree_leaves(out)] == specs


@pytest.mark.torch
@given(recurrent_cases(valid=False))
def test_rule_and_torch_fail_together(case):
    mode, hp, return_state, shapes = case
    try:
        ls.infer(LAYERS[mode](**hp, return_state=return_state), *shapes)
        rule_ok = True
    except ls.ShapeError:
        rule_ok = False
    try:
        _torch_forward(mode, hp, shapes)
        torch_ok = True
    except FRAMEWORK_ERRORS:
        torch_ok = False
    assert rule_ok == torch_ok, shapes


@given(recurrent_cases(), st.booleans())
def test_symbolic_then_bind_equals_bind_then_infer(case, named_f):
    mode, hp, return_state, shapes = case
    net = ls.Sequential(LAYERS[mode](**hp, return_state=return_state))
    x = shapes[0]
    b, t = (0, 1) if hp["batch_first"] else (1, 0)
    values = {"B": x[b], "T": x[t], "F": x[2]}
    sym_x = [None, None, "F" if named_f else x[2]]
    sym_x[b], sym_x[t] = "B", "T"
    sym = [tuple(sym_x)] + [(s[0], "B", s[2]) for s in shapes[1:]]
    symbolic = ls.infer(net, *sym)
    assume(all(bind(a, values) == bind(b, values) for _, a, b in symbolic.assumptions))
    concrete = ls.infer(net, *shapes)
    assert [bind_shape(o.shape, values) for o in symbolic.outputs] == [
        o.shape for o in concrete.outputs
    ]
    bound = symbolic.bind(**values)
    assert [o.shape for o in bound.outputs] == [o.shape for o in concrete.outputs]
    assert {k: bind_shape(p.shape, values) for k, p in symbolic.params.items()} == {
        k: p.shape for k, p in concrete.params.items()
    }


# -- every backend, against NumPy and the hand-written torch module ---------------

CASES = {
    # name: (mode, hyperparameters, input shapes)
    "lstm_3_layers": ("LSTM", {"hidden_size": 5, "num_layers": 3}, [(2, 6, 4)]),
    "lstm_bidirectional_2_layers": (
        "LSTM", {"hidden_size": 4, "num_layers": 2, "bidirectional": True}, [(3, 5, 3)]
    ),
    "lstm_seq_first_no_bias": (
        "LSTM", {"hidden_size": 4, "num_layers": 2, "batch_first": False, "bias": False},
        [(5, 2, 3)],
    ),
    "lstm_state_in_and_out": (
        "LSTM", {"hidden_size": 4, "num_layers": 2, "bidirectional": True, "return_state": True},
        [(2, 4, 3), (4, 2, 4), (4, 2, 4)],
    ),
    "gru_3_layers": ("GRU", {"hidden_size": 5, "num_layers": 3}, [(2, 6, 4)]),
    "gru_bidirectional_2_layers": (
        "GRU", {"hidden_size": 4, "num_layers": 2, "bidirectional": True}, [(3, 5, 3)]
    ),
    "gru_seq_first_state": (
        "GRU", {"hidden_size": 4, "num_layers": 2, "batch_first": False, "return_state": True},
        [(5, 2, 3), (2, 2, 4)],
    ),
    "gru_no_bias": ("GRU", {"hidden_size": 3, "bias": False}, [(2, 4, 3)]),
}


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _leaves(y):
    return [ls.to_numpy(t) for t in jax.tree_util.tree_leaves(
        y, is_leaf=lambda t: hasattr(t, "shape"))]


def _torch_kw(hp):
    return {"batch_first": True, **{k: v for k, v in hp.items() if k != "return_state"}}


# on every backend: the hand-written torch module is the reference, _leaves flattens with JAX
@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_backends_agree_with_numpy_and_torch(backend, case):
    mode, hp, shapes = CASES[case]
    xs = _inputs(shapes)
    layer = LAYERS[mode](**hp)
    inferred = ls.infer(layer, *shapes)
    m = ls.build(layer, backend, rng="portable", seed=11)
    if backend == "torch":
        m.eval()
    y = m(*(ls.asarray(x, backend) for x in xs))
    if hp.get("return_state"):  # torch's nesting: (out, (h, c)) / (out, h)
        assert len(y) == 2
        assert isinstance(y[1], tuple) == (mode == "LSTM")
    got = _leaves(y)
    assert [g.shape for g in got] == [o.shape for o in inferred.outputs]
    ref = ls.build(layer, "numpy", rng="portable", seed=11)
    expected = _leaves(ref(*xs))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    state = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
    assert list(state) == list(inferred.params)
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(state[name], value)
    hand = TORCH[mode](shapes[0][2], **_torch_kw(hp))
    hand.load_state_dict({k: torch.from_numpy(v) for k, v in ref.state_dict().items()})
    ts = [torch.from_numpy(x) for x in xs]
    hx = None if len(ts) == 1 else (tuple(ts[1:]) if mode == "LSTM" else ts[1])
    with torch.no_grad():
        want = hand.eval()(ts[0], hx)
    want_leaves = [t.numpy() for t in jax.tree_util.tree_leaves(want, is_leaf=torch.is_tensor)]
    for g, w in zip(got, want_leaves if hp.get("return_state") else want_leaves[:1], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_ops_run_one_direction_as_torch(mode):
    """The one-layer op of every backend, both directions, against torch's op."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    g = 4 if mode == "LSTM" else 3
    w_ih, w_hh = (rng.standard_normal(s).astype(np.float32) * 0.5 for s in [(g * 5, 3), (g * 5, 5)])
    b_ih, b_hh = (rng.standard_normal(g * 5).astype(np.float32) * 0.5 for _ in range(2))
    h0 = rng.standard_normal((2, 5)).astype(np.float32)
    for reverse in (False, True):
        results = []
        for mod, conv in ((np_ops, np.asarray), (torch_ops, torch.from_numpy),
                          (jax_ops, jnp.asarray)):
            args = [conv(a) for a in (x, w_ih, w_hh, b_ih, b_hh)]
            state = (conv(h0), conv(h0)) if mode == "LSTM" else (conv(h0),)
            fn = mod.lstm if mode == "LSTM" else mod.gru
            out = fn(args[0], *state, *args[1:], reverse)
            results.append([np.asarray(ls.to_numpy(o)) for o in out])
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# -- torch native modules ----------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize(
    "kw",
    [{}, {"num_layers": 2, "bidirectional": True}, {"bias": False, "batch_first": False},
     {"num_layers": 3, "dropout": 0.2}],
)
def test_torch_native_module_is_bit_identical(mode, kw):
    torch.manual_seed(7)
    m = ls.build(ls.Sequential(LAYERS[mode](6, **kw)), "torch")
    m.materialize((2, 3, 5))
    torch.manual_seed(7)
    hand = TORCH[mode](5, 6, **{"batch_first": True, **kw})
    assert isinstance(m[0], TORCH[mode])
    assert type(m[0]).__name__ == mode
    got, want = m[0].state_dict(), hand.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert list(m.state_dict()) == ["0." + k for k in want]
    m.eval()
    hand.eval()
    x = torch.randn(2, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(m(x), hand(x)[0])


@pytest.mark.torch
def test_torch_native_return_state_and_initial_state():
    torch.manual_seed(0)
    layer = LSTM(4, 2, return_state=True)
    m = ls.build(layer, "torch").materialize((2, 3, 5), (2, 2, 4), (2, 2, 4))
    torch.manual_seed(0)
    hand = nn.LSTM(5, 4, 2, batch_first=True)
    x, h0, c0 = torch.randn(2, 3, 5), torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    with torch.no_grad():
        out, (h, c) = m(x, h0, c0)
        want_out, (want_h, want_c) = hand(x, (h0, c0))
    torch.testing.assert_close(out, want_out)
    torch.testing.assert_close(h, want_h)
    torch.testing.assert_close(c, want_c)
    assert list(m.state_dict()) == list(hand.state_dict())


class MyLSTM(LSTM):
    """A subclass: no native entry, so torch runs it through the torch ops."""


class MyGRU(GRU):
    """A subclass: no native entry, so torch runs it through the torch ops."""


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("cls", [MyLSTM, MyGRU])
def test_torch_ops_path_for_layers_without_a_native_module(cls):
    net = ls.Sequential(cls(4, 2, bidirectional=True, return_state=True))
    m = ls.build(net, "torch", rng="portable", seed=1)
    x = _inputs([(2, 5, 3)])[0]
    got = _leaves(m(torch.from_numpy(x)))
    assert not isinstance(m[0], nn.RNNBase)
    want = _leaves(ls.build(net, "numpy", rng="portable", seed=1)(x))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.torch
def test_torch_training_backward():
    m = ls.build(ls.Sequential(GRU(4, 2, dropout=0.5), ls.Linear(1)), "torch", seed=0)
    x = torch.randn(3, 5, 2)
    loss = m(x).pow(2).sum()
    loss.backward()
    assert m[0].weight_ih_l0.grad is not None


# -- training (dropout), checkpoints and JAX transforms -----------------------------


@pytest.mark.parametrize("backend", ["numpy", pytest.param("jax", marks=pytest.mark.jax)])
def test_dropout_between_layers_in_training_only(backend):
    layer = LSTM(4, 3, dropout=0.5)
    m = ls.build(layer, backend, seed=0)
    x = _inputs([(2, 5, 3)])[0]
    y_eval = ls.to_numpy(m(ls.asarray(x, backend)))
    if backend == "jax":
        apply = jax.jit(m.apply, static_argnames="training")
        y1 = apply(m.params, x, training=True, key=jax.random.key(1))
        y2 = apply(m.params, x, training=True, key=jax.random.key(2))
        assert y1.shape == y_eval.shape
        assert not np.allclose(np.asarray(y1), np.asarray(y2))
        np.testing.assert_allclose(np.asarray(apply(m.params, x)), y_eval, atol=1e-6)
    else:
        assert y_eval.shape == (2, 5, 4)


@pytest.mark.torch
@pytest.mark.jax
def test_checkpoint_moves_between_backends():
    torch.manual_seed(0)
    tm = ls.build(GRU(4, 2, bidirectional=True), "torch").materialize((2, 3, 5))
    state = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    jm = ls.build(GRU(4, 2, bidirectional=True), "jax")
    jm.load_state_dict(state)
    x = _inputs([(2, 3, 5)])[0]
    with torch.no_grad():
        want = tm.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(jm(jnp.asarray(x))), want, rtol=1e-5, atol=1e-5)


@pytest.mark.jax
def test_jax_jit_grad_vmap():
    m = ls.build(LSTM(4, 2, bidirectional=True, return_state=True), "jax", seed=0)
    x = jnp.asarray(_inputs([(2, 5, 3)])[0])
    params = m.init(jax.random.key(0), x)
    out, (h, c) = jax.jit(m.apply)(params, x)
    assert out.shape == (2, 5, 8) and h.shape == c.shape == (4, 2, 4)

    def loss(p):
        o, (hh, _) = m.apply(p, x)
        return jnp.sum(o**2) + jnp.sum(hh)

    grads = jax.jit(jax.grad(loss))(params)
    assert grads["params"]["weight_hh_l1_reverse"].shape == (16, 4)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    per_example = jax.jit(jax.vmap(lambda xi: m.apply(params, xi[None])[0][0]))(x)
    np.testing.assert_allclose(np.asarray(per_example), np.asarray(out), atol=1e-5)
