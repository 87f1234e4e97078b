"""Embedding: shape and dtype tables, construction errors, failures shared with
``torch.nn.functional.embedding``, every backend, the torch native module,
``padding_idx`` gradients on JAX and torch."""

from __future__ import annotations

import numpy as np
import pytest
from _frameworks import optional
from hypothesis import given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.dims import bind_shape, format_shape
from lazyshape.layers.embedding import Embedding
from lazyshape.layers.linear import Linear

torch = optional("torch")
F = optional("torch.nn.functional")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")


def ids(shape, dtype="int64"):
    return ls.TensorSpec(shape, dtype)


SHAPES = [
    # (layer, input spec, expected output shape)
    (lambda: Embedding(10, 4), ids(("B", "T")), "(B, T, 4)"),
    (lambda: Embedding(10, 4), ids((3,), "int32"), "(3, 4)"),
    (lambda: Embedding(10, 4), ids(()), "(4,)"),
    (lambda: Embedding(7, 2, padding_idx=0), ids((0, None, 5)), "(0, ?, 5, 2)"),
    (lambda: Embedding(50257, 768), ids(("B", 1024)), "(B, 1024, 768)"),
]


@pytest.mark.parametrize(("make", "spec", "expected"), SHAPES)
def test_output_shapes(make, spec, expected):
    inf = ls.infer(ls.Sequential(make()), spec)
    assert format_shape(inf.output.shape) == expected
    assert inf.output.dtype == "float32"


ERRORS = [
    (ids(("B", "T"), "float32"), r"^Embedding at '0': integer ids \(int32 or int64\); got dtype float32$"),
    (ids((2, 3), "int16"), r"^Embedding at '0': integer ids \(int32 or int64\); got dtype int16$"),
    (ids((2, 3), "uint8"), r"integer ids \(int32 or int64\); got dtype uint8$"),
    (ids((2, 3), "bool"), r"integer ids \(int32 or int64\); got dtype bool$"),
]


def test_a_bare_shape_tuple_means_int64_ids():
    inf = ls.infer(ls.Sequential(Embedding(10, 4)), ("B", "T"))
    assert inf.inputs[0].dtype == "int64"
    assert format_shape(inf.output.shape) == "(B, T, 4)"


@pytest.mark.parametrize(("spec", "regex"), ERRORS)
def test_input_errors(spec, regex):
    with pytest.raises(ls.ShapeError, match=regex):
        ls.infer(ls.Sequential(Embedding(10, 4)), spec)


HPARAM_ERRORS = [
    (lambda: Embedding(0, 4),
     r"^Embedding: `num_embeddings` to be a positive int; got `num_embeddings` \(=0\)$"),
    (lambda: Embedding(10, -1), r"Embedding: `embedding_dim` to be a positive int; got `embedding_dim` \(=-1\)"),
    (lambda: Embedding(10, 4.0), r"`embedding_dim` to be a positive int; got `embedding_dim` \(=4.0\)"),
    (lambda: Embedding(10, 4, padding_idx=10),
     r"^Embedding: `padding_idx` in \[-10, 9\] \(within `num_embeddings`\) or None; "
     r"got `padding_idx` \(=10\)$"),
    (lambda: Embedding(10, 4, padding_idx=-11), r"`padding_idx` in \[-10, 9\].*got `padding_idx` \(=-11\)"),
    (lambda: Embedding(10, 4, padding_idx=1.0), r"got `padding_idx` \(=1.0\)"),
]


@pytest.mark.parametrize(("make", "regex"), HPARAM_ERRORS)
def test_hyperparameter_errors(make, regex):
    with pytest.raises(ls.ShapeError, match=regex):
        make()


@pytest.mark.torch
def test_hyperparameter_errors_match_torch():
    for args, kw in [((10, 4), {"padding_idx": 10}), ((10, 4), {"padding_idx": -11})]:
        with pytest.raises(AssertionError):
            nn.Embedding(*args, **kw)
    assert Embedding(10, 4, padding_idx=-1).padding_idx == nn.Embedding(10, 4, padding_idx=-1).padding_idx


def test_params_repr_and_functional_model():
    inf = ls.infer(ls.Sequential(Embedding(10, 4, padding_idx=2)), ids(("B", "T")))
    (name, spec), = inf.params.items()
    assert name == "0.weight"
    assert spec.shape == (10, 4)
    assert repr(spec.init) == "normal(mean=0, std=1)"
    assert inf.num_params == 40
    assert repr(Embedding(10, 4)) == "Embedding(num_embeddings=10, embedding_dim=4)"
    assert repr(Embedding(10, 4, padding_idx=-1)) == (
        "Embedding(num_embeddings=10, embedding_dim=4, padding_idx=9)"
    )
    x = ls.Input(("B", "T"), "int64")
    h = Embedding(100, 16, name="wte")(x)
    assert format_shape(h.shape) == "(B, T, 16)"
    model = ls.Model(x, Linear(3, name="head")(h))
    inf = ls.infer(model)
    assert list(inf.params) == ["wte.weight", "head.weight", "head.bias"]
    assert format_shape(inf.output.shape) == "(B, T, 3)"


@pytest.mark.torch
@given(
    st.lists(st.integers(0, 3), max_size=3),
    st.sampled_from(["int64", "int32", "int16", "uint8", "float32", "float64"]),
    st.integers(1, 5),
)
def test_rule_and_torch_fail_together(shape, dtype, dim):
    """Same acceptance as ``F.embedding``; the same output shape; and the
    symbolic shape bound to the sizes is the concrete one."""
    shape = tuple(shape)
    try:
        rule = ls.infer(ls.Sequential(Embedding(6, dim)), ids(shape, dtype)).output.shape
    except ls.ShapeError:
        rule = None
    x = torch.zeros(shape, dtype=getattr(torch, dtype))
    try:
        ref = tuple(F.embedding(x, torch.zeros(6, dim)).shape)
    except RuntimeError:
        ref = None
    assert rule == ref
    if rule is not None:
        names = tuple(f"D{i}" for i in range(len(shape)))
        sym = ls.infer(ls.Sequential(Embedding(6, dim)), ids(names, dtype)).output.shape
        assert bind_shape(sym, dict(zip(names, shape, strict=True))) == rule


# -- every backend ------------------------------------------------------------------

BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]

CASES = {
    "plain": (lambda: Embedding(10, 4), (3, 5)),
    "padding": (lambda: Embedding(7, 3, padding_idx=1), (2, 2, 3)),
    "scalar_ids": (lambda: Embedding(5, 2), ()),
}


@pytest.mark.torch  # the hand-written torch module is the reference on every backend
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_backend(backend, case):
    make, shape = CASES[case]
    layer = make()
    x = np.random.default_rng(0).integers(0, layer.num_embeddings, shape)
    inferred = ls.infer(ls.Sequential(make()), x)
    m = ls.build(ls.Sequential(make()), backend, rng="portable", seed=3)
    y = ls.to_numpy(m(ls.asarray(x, backend)))
    assert y.shape == inferred.output.shape
    assert str(y.dtype) == inferred.output.dtype
    ref = ls.build(ls.Sequential(make()), "numpy", rng="portable", seed=3)
    np.testing.assert_allclose(y, ref(x), rtol=1e-6, atol=1e-6)
    weight = np.array(ls.to_numpy(m.state_dict()["0.weight"]))
    np.testing.assert_array_equal(weight, ref.state_dict()["0.weight"])
    # the hand-written torch module with the same weights
    hand = nn.Embedding(layer.num_embeddings, layer.embedding_dim, padding_idx=layer.padding_idx)
    hand.load_state_dict({"weight": torch.from_numpy(weight)})
    np.testing.assert_allclose(y, hand(torch.from_numpy(x)).detach().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_torch_native_module_is_bit_identical(seed, padding_idx):
    torch.manual_seed(seed)
    m = ls.build(ls.Sequential(Embedding(10, 4, padding_idx=padding_idx)), "torch")
    m.materialize(ids((2, 3)))
    torch.manual_seed(seed)
    hand = nn.Sequential(nn.Embedding(10, 4, padding_idx=padding_idx))
    assert type(m[0]) is nn.Embedding
    assert m[0].padding_idx == hand[0].padding_idx
    sm, sh = m.state_dict(), hand.state_dict()
    assert list(sm) == list(sh) == ["0.weight"]
    assert torch.equal(sm["0.weight"], sh["0.weight"])
    x = torch.tensor([[1, 2, 9], [0, 0, 3]])
    assert torch.equal(m(x), hand(x))
    if padding_idx is not None:
        assert torch.equal(m[0].weight[padding_idx], torch.zeros(4))


@pytest.mark.torch
def test_torch_forward_on_int32_ids_and_float64_model():
    m = ls.build(ls.Sequential(Embedding(10, 4)), "torch", dtype="float64")
    y = m(torch.tensor([[1, 2]], dtype=torch.int32))
    assert y.shape == (1, 2, 4)
    assert y.dtype == torch.float64


@pytest.mark.torch
@pytest.mark.jax
def test_padding_row_gets_no_gradient_on_jax_and_torch():
    ids_np = np.array([[1, 2, 1], [0, 1, 3]])
    m = ls.build(ls.Sequential(Embedding(5, 3, padding_idx=1)), "jax")
    params = m.init(0, ids_np)
    g = jax.grad(lambda p: (m.apply(p, ids_np) ** 2).sum())(params)["params"]["0"]["weight"]
    w = torch.tensor(np.asarray(params["params"]["0"]["weight"]), requires_grad=True)
    (F.embedding(torch.from_numpy(ids_np), w, padding_idx=1) ** 2).sum().backward()
    np.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(g[1], np.zeros(3))
    assert np.abs(g[2]).sum() > 0
    y = jax.jit(m.apply)(params, jnp.asarray(ids_np, jnp.int32))
    np.testing.assert_allclose(y, m.apply(params, ids_np), rtol=0, atol=0)
    v = jax.vmap(lambda i: m.apply(params, i))(jnp.stack([ids_np, ids_np[::-1]]))
    np.testing.assert_allclose(v[1], m.apply(params, ids_np[::-1]), rtol=0, atol=0)
