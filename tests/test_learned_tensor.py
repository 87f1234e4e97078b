"""`LearnedTensor`: a parameter used as a value (a class token, a position
embedding, a layer scale), named by its path as torch names an ``nn.Parameter``
attribute, on every backend."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from _frameworks import optional

import lazyshape as ls
from lazyshape.dims import Sym

torch = optional("torch")

B, T = Sym("B"), Sym("T")
BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]


def _tokens_model():
    """A class token prepended to ``(B, N, D)`` tokens, then a position embedding
    added inside ``encoder`` (torchvision's ViT layout)."""
    x = ls.Input(("B", None, None), name="x")
    cls = ls.LearnedTensor((1, 1, "D"), ls.init.normal(std=1.0), batch=True,
                           name="class_token")(x)
    h = ls.Concat(dim=1)(cls, x)
    e_in = ls.Input(("B", None, None), name="x")
    pos = ls.LearnedTensor((1, "T", "D"), ls.init.normal(std=1.0), name="pos_embedding")(e_in)
    encoder = ls.Model(e_in, ls.Linear(3, name="fc")(ls.Add()(e_in, pos)), name="encoder")
    return ls.Model(x, encoder(h))


SHAPES = [
    ((1, 1, "D"), {}, ("B", 196, 768), (1, 1, 768)),
    ((1, 1, "D"), {"batch": True}, ("B", 196, 768), (B, 1, 768)),
    ((1, "T", "D"), {}, ("B", "T", 8), (1, T, 8)),
    (("C", 1, 1), {}, ("B", 96, 7, 7), (96, 1, 1)),  # ConvNeXt's layer scale
    ((4, 2), {}, (3,), (4, 2)),  # no names: any reference
    (("D", "D"), {}, (2, 5, 5), (5, 5)),
]


@pytest.mark.parametrize("shape, kw, ref, want", SHAPES)
def test_names_are_taken_from_the_reference_aligned_at_the_right(shape, kw, ref, want):
    inf = ls.infer(ls.LearnedTensor(shape, **kw), ref)
    assert inf.output.shape == want
    assert inf.output.dtype == "float32"  # the model's dtype


@pytest.mark.parametrize("shape, kw, ref, message", [
    ((1, "T", "D"), {}, (5,), r"LearnedTensor: an input with at least 2 dims to take the named sizes of `shape` \(=\(1, 'T', 'D'\)\) from, aligned at the right; got input shape \(5,\)"),
    (("D", "D"), {}, (2, 5, 4), r"the sizes named 'D' in `shape` \(=\('D', 'D'\)\) to be equal; got input shape \(2, 5, 4\)"),
    ((1, 2), {"batch": True}, (), r"LearnedTensor: an input with a batch dim \(N, \.\.\.\) for `batch=True`; got input shape \(\)"),
])
def test_a_reference_that_cannot_name_the_sizes_is_a_shape_error(shape, kw, ref, message):
    with pytest.raises(ls.ShapeError, match=message):
        ls.infer(ls.LearnedTensor(shape, **kw), ref)


@pytest.mark.parametrize("shape, kw", [((0, 2), {}), ((), {}), (("1x",), {}), ((2, "D"), {"batch": True})])
def test_bad_shapes_fail_at_construction(shape, kw):
    with pytest.raises(ls.ShapeError, match="LearnedTensor"):
        ls.LearnedTensor(shape, **kw)


def test_its_parameter_is_named_by_its_path():
    inf = ls.infer(_tokens_model(), ("B", 4, 6))
    assert {k: v.shape for k, v in inf.params.items()} == {
        "class_token": (1, 1, 6), "encoder.pos_embedding": (1, 5, 6),
        "encoder.fc.weight": (3, 6), "encoder.fc.bias": (3,)}
    assert inf.output.shape == (B, 5, 3)
    assert list(ls.infer(ls.LearnedTensor((2, 3)), (1,)).params) == ["value"]  # alone


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_names_it_alike_and_computes_alike(backend):
    model = _tokens_model()
    ref = ls.build(model, "numpy", rng="portable", seed=0)
    m = ls.build(model, backend, rng="portable", seed=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    y = np.asarray(ls.to_numpy(m(ls.asarray(x, backend))))
    np.testing.assert_allclose(y, ref(x), rtol=1e-5, atol=1e-5)
    assert list(m.state_dict()) == ["class_token", "encoder.pos_embedding", "encoder.fc.weight",
                                    "encoder.fc.bias"]
    token = np.asarray(ls.to_numpy(m.state_dict()["class_token"]))
    assert token.shape == (1, 1, 6) and np.all(y[:, 0] == y[0, 0])  # one token for every sample


@pytest.mark.torch
def test_torch_holds_it_as_a_parameter_under_torchs_name():
    model = _tokens_model()
    m = ls.build(model, "torch", seed=0)
    assert list(m.state_dict()) == ["class_token", "encoder.pos_embedding", "encoder.fc.weight",
                                    "encoder.fc.bias"]  # before any data
    opt = torch.optim.SGD(m.parameters(), lr=0.5)  # made before the first forward
    x = torch.randn(2, 4, 6)
    loss = m(x).square().mean()
    before = m.state_dict()["class_token"].clone()
    loss.backward()
    opt.step()
    assert not torch.equal(m.state_dict()["class_token"], before)  # it trains
    # a state dict with torch's names loads strictly, into a fresh model too
    fresh = ls.build(model, "torch")
    fresh.load_state_dict(m.state_dict(), strict=True)
    torch.testing.assert_close(fresh(x), m(x))
    copied = copy.deepcopy(m)
    torch.testing.assert_close(copied(x), m(x))
    m.double()
    assert m.state_dict()["class_token"].dtype == torch.float64
    bad = dict(fresh.state_dict())
    bad["class_token"] = torch.zeros(1, 2, 6)  # (1, 1, D) expected
    fresh = ls.build(model, "torch")
    with pytest.raises(ls.ShapeError, match=r"LearnedTensor at 'class_token': `class_token` of shape \(1, 1, \?\); got shape \(1, 2, 6\)"):
        fresh.load_state_dict(bad)
    assert not fresh.initialized
