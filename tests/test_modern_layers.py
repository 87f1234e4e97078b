"""The activations ReLU6, Hardswish, Hardsigmoid, ELU, Mish and Softplus; the
dim-moving Permute and Transpose; DropPath (stochastic depth); LayerScale.

Rule tables pin shapes (symbolic dims included) and messages; every layer runs
on every backend against torch's own module (torchvision's and timm's
computations where torch.nn has none); DropPath's training behaviour is
checked statistically on each framework; and each kind passes `check_layer`."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from _frameworks import optional

import lazyshape as ls
from lazyshape.dims import Sym
from lazyshape.testing import check_layer

torch = optional("torch")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")

SE = ls.ShapeError
B, T, H, W = Sym("B"), Sym("T"), Sym("H"), Sym("W")

BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]

ACTIVATIONS = {
    "ReLU6": lambda: ls.ReLU6(),
    "Hardswish": lambda: ls.Hardswish(),
    "Hardsigmoid": lambda: ls.Hardsigmoid(),
    "ELU": lambda: ls.ELU(),
    "ELU(0.3)": lambda: ls.ELU(0.3),
    "ELU(-1.5)": lambda: ls.ELU(alpha=-1.5),
    "Mish": lambda: ls.Mish(),
    "Softplus": lambda: ls.Softplus(),
    "Softplus(2, 1)": lambda: ls.Softplus(2.0, 1.0),
    "Softplus(0.5, 0)": lambda: ls.Softplus(beta=0.5, threshold=0.0),
    "Softplus(-1, 2)": lambda: ls.Softplus(beta=-1.0, threshold=2.0),
}


def _torch_activation(name: str) -> nn.Module:
    return {
        "ReLU6": nn.ReLU6(), "Hardswish": nn.Hardswish(), "Hardsigmoid": nn.Hardsigmoid(),
        "ELU": nn.ELU(), "ELU(0.3)": nn.ELU(0.3), "ELU(-1.5)": nn.ELU(alpha=-1.5),
        "Mish": nn.Mish(), "Softplus": nn.Softplus(), "Softplus(2, 1)": nn.Softplus(2.0, 1.0),
        "Softplus(0.5, 0)": nn.Softplus(beta=0.5, threshold=0.0),
        "Softplus(-1, 2)": nn.Softplus(beta=-1.0, threshold=2.0),
    }[name]


def _infer(layer: ls.Layer, *shapes):
    return ls.infer(ls.Sequential(layer), *shapes)


def _values() -> np.ndarray:
    """Values through every branch: around -3, 0, 3 and 6, the thresholds, the
    tails where exp overflows float32, and random normals."""
    edges = np.array([-100.0, -30.0, -6.0, -3.0, -2.9, -1e-3, 0.0, 1e-3, 0.5, 1.0, 2.0, 2.9,
                      3.0, 5.9, 6.0, 6.1, 10.0, 19.9, 20.1, 30.0, 100.0])
    rng = np.random.default_rng(0)
    x = np.concatenate([edges, rng.standard_normal(103) * 4.0]).astype(np.float32)
    return x.reshape(4, 31)


def _run(layer: ls.Layer, backend: str, x: np.ndarray) -> np.ndarray:
    m = ls.build(ls.Sequential(layer), backend, rng="portable", seed=0)
    if hasattr(m, "eval"):
        m.eval()  # (a torch module starts in training mode)
    return np.asarray(ls.to_numpy(m(ls.asarray(x, backend))))


# -- rules: activations ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape, dtype", [
    ((), "float32"), ((5,), "float32"), (("B", "T", 7), "float32"), ((2, 0, 3), "float16"),
    (("B", "H", "W"), "bfloat16"), ((3, 4), "float64"),
])
def test_activations_keep_the_input_spec(name, shape, dtype):
    spec = ls.TensorSpec(shape, dtype)
    out = ls.infer(ACTIVATIONS[name](), spec, batch_dim=None, dtype=dtype).output
    assert out == spec


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_activations_reject_non_floating_inputs(name, dtype):
    layer = ACTIVATIONS[name]()
    kind = layer.kind
    with pytest.raises(SE, match=rf"^{kind} at '0': expected a floating-point input; "
                                 rf"got dtype {dtype}$"):
        _infer(layer, ls.TensorSpec((2, 3), dtype))


def test_activation_hyperparameters_are_checked_at_construction():
    with pytest.raises(SE, match=r"ELU: `alpha` to be a finite real number; got `alpha` \(=nan\)"):
        ls.ELU(math.nan)
    with pytest.raises(SE, match=r"Softplus: `beta` to be nonzero; got `beta` \(=0\)"):
        ls.Softplus(beta=0)
    with pytest.raises(SE, match=r"`threshold` to be a finite real number; got `threshold` "
                                 r"\(='20'\)"):
        ls.Softplus(threshold="20")
    with pytest.raises(SE, match=r"`beta` to be a finite real number; got `beta` \(=True\)"):
        ls.Softplus(beta=True)
    assert ls.ELU(2).alpha == 2.0 and type(ls.ELU(2).alpha) is float
    assert repr(ls.Softplus(2, 5)) == "Softplus(beta=2.0, threshold=5.0)"
    assert repr(ls.ELU()) == "ELU(alpha=1.0)" and repr(ls.Hardswish()) == "Hardswish()"


# -- rules: Permute, Transpose --------------------------------------------------------

PERMUTE = [
    ((0, 2, 1), ("B", "T", 5), (B, 5, T)),
    ((0, 2, 3, 1), ("B", 3, "H", "W"), (B, H, W, 3)),
    ((0, -1, 1, 2), ("B", 3, "H", "W"), (B, W, 3, H)),  # negative entries from the end
    ((2, 0, 1), (2, 3, 4), (4, 2, 3)),
    ((0,), ("B",), (B,)),
    ((-1,), (0,), (0,)),
    ((), (), ()),  # a 0-d input: torch.permute(x, ())
    ((1, 0), ("B", "H*W"), (Sym("H") * Sym("W"), B)),  # expressions move too
]


@pytest.mark.parametrize("dims, shape, expected", PERMUTE)
def test_permute_moves_every_dim_with_its_axis(dims, shape, expected):
    assert _infer(ls.Permute(*dims), shape).output.shape == expected
    assert _infer(ls.Permute(list(dims)), shape).output.shape == expected  # torchvision's form


@pytest.mark.parametrize("dtype", ["int64", "bool", "float16", "int8"])
def test_permute_and_transpose_take_any_dtype(dtype):
    spec = ls.TensorSpec((2, 3, 4), dtype)
    assert ls.infer(ls.Permute(2, 0, 1), spec, batch_dim=None).output == ls.TensorSpec(
        (4, 2, 3), dtype)
    assert ls.infer(ls.Transpose(0, 2), spec, batch_dim=None).output == ls.TensorSpec(
        (4, 3, 2), dtype)


@pytest.mark.parametrize("dims, shape, message", [
    ((0, 2, 1), (2, 3), r"^Permute at '0': expected an input with 3 dims, one per entry of "
                        r"`dims` \(=\(0, 2, 1\)\); got input shape \(2, 3\) \(2 dims\)$"),
    ((0, 2, 1), ("B", 3, "H", "W"), r"got input shape \(B, 3, H, W\) \(4 dims\)$"),
    ((0,), (), r"expected an input with 1 dims, one per entry of `dims` \(=\(0,\)\); "
               r"got input shape \(\) \(0 dims\)"),
])
def test_permute_of_the_wrong_rank_is_a_shape_error(dims, shape, message):
    with pytest.raises(SE, match=message):
        _infer(ls.Permute(*dims), shape)


@pytest.mark.parametrize("dims, got", [
    ((0, 0, 1), r"\(0, 0, 1\)"),
    ((0, 3, 1), r"\(0, 3, 1\)"),
    ((0, -4, 1), r"\(0, -4, 1\)"),
    ((0, -1, 2), r"\(0, -1, 2\)"),  # -1 is 2: twice
    ((0, 1.0, 2), r"\(0, 1.0, 2\)"),
    ((0, True), r"\(0, True\)"),
])
def test_permute_dims_must_be_a_permutation(dims, got):
    n = len(dims)
    with pytest.raises(SE, match=rf"^Permute: `dims` to be a permutation of the {n} input dims "
                                 rf"\(ints in \[{-n}, {n - 1}\], each dim once\); "
                                 rf"got `dims` \(={got}\)$"):
        ls.Permute(*dims)


def test_permute_repr_rebuilds_it():
    layer = ls.Permute(0, -1, 1)
    assert repr(layer) == "Permute(0, -1, 1)"
    assert eval(repr(layer), {"Permute": ls.Permute}).dims == (0, -1, 1)
    assert ls.Permute([0, 2, 1]).dims == (0, 2, 1)


TRANSPOSE = [
    ((1, 2), ("B", "T", 5), (B, 5, T)),
    ((-1, -2), ("B", "T", 5), (B, 5, T)),
    ((1, 3), ("B", 3, "H", "W"), (B, W, H, 3)),
    ((0, 0), ("B", 3), (B, 3)),
    ((0, -1), (4,), (4,)),
    ((0, -1), (), ()),  # torch treats a scalar as 1-d
    ((-1, 0), ("2*B", "T"), (T, 2 * B)),
]


@pytest.mark.parametrize("dims, shape, expected", TRANSPOSE)
def test_transpose_swaps_two_dims(dims, shape, expected):
    assert _infer(ls.Transpose(*dims), shape).output.shape == expected


@pytest.mark.parametrize("dims, shape, message", [
    ((1, 3), ("B", 3), r"^Transpose at '0': `dim1` in \[-2, 1\] for an input with 2 dims; "
                       r"got `dim1` \(=3\)$"),
    ((-4, 0), ("B", 3, 4), r"`dim0` in \[-3, 2\] for an input with 3 dims; got `dim0` \(=-4\)"),
    ((0, 1), (), r"`dim0` and `dim1` in \[-1, 0\] for a 0-d input \(a scalar counts as 1-d, "
                 r"as in torch\); got `dim0` \(=0\), `dim1` \(=1\) for input shape \(\)"),
])
def test_transpose_out_of_range_is_a_shape_error(dims, shape, message):
    with pytest.raises(SE, match=message):
        _infer(ls.Transpose(*dims), shape)


@pytest.mark.parametrize("bad", [1.0, "1", None, True])
def test_transpose_dims_are_ints(bad):
    with pytest.raises(SE, match=rf"^Transpose: `dim1` to be an int; got `dim1` "
                                 rf"\(={re.escape(repr(bad))}\)$"):
        ls.Transpose(0, bad)


# -- rules: DropPath -------------------------------------------------------------------


@pytest.mark.parametrize("mode, shape", [
    ("row", ("B", 3, "H", "W")), ("row", (0, 4)), ("row", ("N",)),
    ("batch", ()), ("batch", ("B", "T", 8)),
])
def test_drop_path_keeps_the_input_spec(mode, shape):
    spec = ls.TensorSpec(shape, "float32")
    assert ls.infer(ls.DropPath(0.2, mode), spec, batch_dim=None).output == spec
    assert not _infer(ls.DropPath(0.2, mode), shape).params


def test_drop_path_rejects_what_it_cannot_drop():
    with pytest.raises(SE, match=r"^DropPath at '0': expected an input with a batch dim "
                                 r"\(N, \.\.\.\) for `mode` 'row' \(each sample is kept or "
                                 r"dropped whole\); got input shape \(\) \(0 dims\)$"):
        _infer(ls.DropPath(0.1), ())
    with pytest.raises(SE, match=r"^DropPath at '0': expected a floating-point input; "
                                 r"got dtype int64$"):
        _infer(ls.DropPath(0.1, "batch"), ls.TensorSpec((2, 3), "int64"))


@pytest.mark.parametrize("kwargs, message", [
    ({"p": 1.5}, r"DropPath: `p` in \[0, 1\]; got `p` \(=1\.5\)"),
    ({"p": -0.1}, r"`p` in \[0, 1\]; got `p` \(=-0\.1\)"),
    ({"p": "0.1"}, r"`p` in \[0, 1\]; got `p` \(='0\.1'\)"),
    ({"mode": "sample"}, r"DropPath: `mode` 'row' or 'batch'; got `mode` \(='sample'\)"),
    ({"mode": None}, r"`mode` 'row' or 'batch'; got `mode` \(=None\)"),
])
def test_drop_path_hyperparameters_are_checked_at_construction(kwargs, message):
    with pytest.raises(SE, match=message):
        ls.DropPath(**kwargs)


def test_drop_path_repr():
    assert repr(ls.DropPath(0.1)) == "DropPath(p=0.1, mode='row')"
    assert repr(ls.DropPath(mode="batch")) == "DropPath(p=0.0, mode='batch')"


# -- rules: LayerScale -----------------------------------------------------------------


def test_layer_scale_infers_its_size_from_the_last_dim():
    inf = _infer(ls.LayerScale(), ("B", "T", 64))
    assert inf.output == ls.TensorSpec((B, T, 64), "float32")
    gamma = inf.params["0.gamma"]
    assert gamma.shape == (64,) and gamma.dtype == "float32"
    assert repr(gamma.init) == "constant(1e-05)"
    assert inf.layers[0].resolved == {"dim": 64, "init_values": 1e-5}
    assert repr(ls.LayerScale(0.1)) == "LayerScale(dim=?, init_values=0.1)"


def test_layer_scale_of_a_symbolic_last_dim():
    inf = _infer(ls.LayerScale(), ("B", "D"))
    assert inf.params["0.gamma"].shape == (Sym("D"),)
    given = _infer(ls.LayerScale(dim=8), ("B", "D"))
    assert given.output.shape == (B, Sym("D"))
    assert given.params["0.gamma"].shape == (8,)
    assert [(a, b) for _, a, b in given.assumptions] == [(Sym("D"), 8)]


def test_layer_scale_in_a_convnext_style_block():
    block = ls.Sequential(ls.Conv2d(96, 7, padding=3, groups=1), ls.Permute(0, 2, 3, 1),
                          ls.LayerNorm(), ls.Linear(384), ls.GELU(), ls.Linear(96),
                          ls.LayerScale(1e-6), ls.Permute(0, 3, 1, 2), ls.DropPath(0.1))
    inf = ls.infer(block, ("B", 3, "H", "W"))
    assert inf.output.shape == (B, 96, H, W)
    assert inf.params["6.gamma"].shape == (96,)
    assert inf.layers[6].resolved["dim"] == 96


@pytest.mark.parametrize("layer, shape, message", [
    (ls.LayerScale(dim=64), ("B", "T", 32),
     r"^LayerScale at '0': expected last input dim 64 \(`dim`\); got input shape \(B, T, 32\)$"),
    (ls.LayerScale(dim=4), (2, 1), r"expected last input dim 4 \(`dim`\); got input shape "
                                   r"\(2, 1\)"),
    (ls.LayerScale(), (), r"^LayerScale at '0': expected an input with at least 1 dims \(\*, D\); "
                          r"got input shape \(\) \(0 dims\)$"),
    (ls.LayerScale(), ls.TensorSpec((2, 3), "int32"),
     r"^LayerScale at '0': expected a floating-point input; got dtype int32$"),
])
def test_layer_scale_bad_inputs_are_shape_errors(layer, shape, message):
    with pytest.raises(SE, match=message):
        _infer(layer, shape)


@pytest.mark.parametrize("kwargs, message", [
    ({"dim": 0}, r"LayerScale: `dim` to be a positive int; got `dim` \(=0\)"),
    ({"dim": 2.0}, r"`dim` to be a positive int; got `dim` \(=2\.0\)"),
    ({"init_values": math.inf}, r"`init_values` to be a finite real number; "
                                r"got `init_values` \(=inf\)"),
    ({"init_values": None}, r"got `init_values` \(=None\)"),
])
def test_layer_scale_hyperparameters_are_checked_at_construction(kwargs, message):
    with pytest.raises(SE, match=message):
        ls.LayerScale(**kwargs)


# -- numerics against torch's own modules, on every backend ----------------------------


@pytest.mark.torch
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_compute_what_torch_computes(backend, name):
    x = _values()
    expected = _torch_activation(name)(torch.from_numpy(x)).numpy()
    y = _run(ACTIVATIONS[name](), backend, x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_are_torchs_modules_on_torch(name):
    m = ls.build(ls.Sequential(ACTIVATIONS[name]()), "torch").materialize((2, 3))
    built = dict(m.named_children())["0"]
    reference = _torch_activation(name)
    assert type(built) is type(reference)
    assert repr(built) == repr(reference)  # same hyperparameters


@pytest.mark.torch
@pytest.mark.parametrize("backend, dtype", [
    *[pytest.param(*b.values if hasattr(b, "values") else (b,), "float16",
                   marks=getattr(b, "marks", ())) for b in BACKENDS],
    ("numpy", "float64"),
    ("torch", "float64"),  # (JAX holds float64 in 32 bits without x64)
])
def test_activations_keep_the_models_dtype(backend, dtype):
    x = _values().astype(dtype)
    for name, make in ACTIVATIONS.items():
        m = ls.build(ls.Sequential(make()), backend, dtype=dtype)
        y = np.asarray(ls.to_numpy(m(ls.asarray(x, backend, dtype))))
        assert str(y.dtype) == dtype, name
        expected = _torch_activation(name)(torch.from_numpy(x.astype(np.float32))).numpy()
        tol = 1e-2 if dtype == "float16" else 1e-6
        np.testing.assert_allclose(y.astype(np.float32), expected, rtol=tol, atol=tol,
                                   err_msg=name)


def _torchvision_ops():
    from _reference import torchvision_models

    torchvision_models()  # (torchvision importable with the CPU torch)
    import torchvision.ops

    return torchvision.ops


@pytest.mark.torch
@pytest.mark.parametrize("backend", BACKENDS)
def test_permute_and_transpose_compute_what_torch_computes(backend):
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    t = torch.from_numpy(x)
    for dims in [(0, 2, 3, 1), (0, -1, 1, 2), (3, 2, 1, 0)]:
        np.testing.assert_array_equal(_run(ls.Permute(*dims), backend, x),
                                      torch.permute(t, dims).numpy())
    for a, b in [(1, 3), (-1, -2), (0, 0), (2, 0)]:
        np.testing.assert_array_equal(_run(ls.Transpose(a, b), backend, x),
                                      torch.transpose(t, a, b).numpy())
    ids = np.arange(6, dtype=np.int32).reshape(2, 3)  # any dtype
    y = _run(ls.Transpose(0, 1), backend, ids)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, ids.T)


@pytest.mark.torch
def test_permute_is_torchvisions_permute_on_torch():
    vision = _torchvision_ops()
    m = ls.build(ls.Sequential(ls.Permute(0, 2, 3, 1), ls.Transpose(1, 2)), "torch")
    x = torch.randn(2, 3, 4, 5)
    y = m(x)
    children = dict(m.named_children())
    assert type(children["0"]).__name__ == "Permute" and children["0"].dims == (0, 2, 3, 1)
    assert type(children["1"]).__name__ == "Transpose"
    assert isinstance(children["0"], nn.Module) and not hasattr(children["0"], "layer")
    reference = nn.Sequential(vision.misc.Permute([0, 2, 3, 1]), vision.misc.Permute([0, 2, 1, 3]))
    assert torch.equal(y, reference(x))
    assert tuple(y.shape) == (2, 5, 4, 3)


@pytest.mark.torch
@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_scale_computes_what_timms_computes(backend):
    x = _values()
    dim = x.shape[-1]
    # timm's LayerScale: gamma = init_values * ones(dim); forward x * gamma
    m = ls.build(ls.Sequential(ls.LayerScale(0.25)), backend, rng="portable", seed=0)
    y = np.asarray(ls.to_numpy(m(ls.asarray(x, backend))))
    gamma = ls.to_numpy(m.state_dict()["0.gamma"])
    np.testing.assert_array_equal(gamma, np.full(dim, 0.25, np.float32))
    np.testing.assert_allclose(y, x * 0.25, rtol=1e-6)
    # a trained gamma, loaded from torch
    g = torch.linspace(-2, 3, dim)
    m.load_state_dict({"0.gamma": g})
    y = np.asarray(ls.to_numpy(m(ls.asarray(x, backend))))
    np.testing.assert_allclose(y, (torch.from_numpy(x) * g).numpy(), rtol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("rng", ["native", "portable"])
def test_layer_scale_is_a_native_module_with_gamma_on_torch(rng):
    m = ls.build(ls.Sequential(ls.Linear(16), ls.LayerScale(1e-4)), "torch", rng=rng, seed=0)
    m.materialize((2, 8))
    children = dict(m.named_children())
    scale = children["1"]
    assert type(scale).__name__ == "LayerScale" and not hasattr(scale, "layer")
    assert isinstance(scale.gamma, nn.Parameter) and scale.gamma.shape == (16,)
    assert torch.equal(scale.gamma.detach(), torch.full((16,), 1e-4))
    assert list(m.state_dict()) == ["0.weight", "0.bias", "1.gamma"]
    x = torch.randn(2, 8)
    y = m(x)
    y.sum().backward()  # gamma learns
    assert scale.gamma.grad is not None and scale.gamma.grad.abs().sum() > 0
    assert torch.allclose(y, children["0"](x) * 1e-4)


@pytest.mark.torch
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer, shape, dtype, message", [
    (ls.Permute(0, 2, 1), (2, 3), "float32", r"expected an input with 3 dims.*; got input shape"),
    (ls.Transpose(0, 3), (2, 3), "float32", r"`dim1` in \[-2, 1\].*; got `dim1` \(=3\)"),
    (ls.LayerScale(dim=4), (2, 3), "float32", r"expected last input dim 4 \(`dim`\); got"),
    (ls.DropPath(0.5), (), "float32", r"expected an input with a batch dim .*; got input shape"),
    (ls.Mish(), (2, 3), "int32", r"expected a floating-point input; got dtype int32"),
])
def test_bad_input_is_a_shape_error_on_every_backend(backend, layer, shape, dtype, message):
    m = ls.build(ls.Sequential(layer), backend)
    x = ls.asarray(np.zeros(shape, dtype), backend)
    with pytest.raises(SE, match=rf"^{layer.kind} at '0': {message}"):
        m(x)


# -- DropPath in training ---------------------------------------------------------------


def _rows_are_dropped_whole(y: np.ndarray, x: np.ndarray, p: float) -> np.ndarray:
    """Each row of ``y`` is ``x``'s row times 0 or ``1/(1-p)``; returns which were kept."""
    flat_y = y.reshape(len(y), -1)
    flat_x = x.reshape(len(x), -1)
    kept = np.all(flat_y != 0, axis=1)
    assert np.all(flat_y[~kept] == 0)
    np.testing.assert_allclose(flat_y[kept], flat_x[kept] / (1 - p), rtol=1e-6)
    return kept


def _binomial_ok(kept: int, n: int, p_keep: float) -> bool:
    """Within 5 standard deviations of the binomial mean."""
    return abs(kept - n * p_keep) <= 5 * math.sqrt(n * p_keep * (1 - p_keep)) + 1


def _positive(n: int, *rest: int) -> np.ndarray:
    return (np.random.default_rng(1).random((n, *rest)) + 0.5).astype(np.float32)


def _rng_and_array(framework, x):
    """A seeded generator of ``framework`` and ``x`` as its array."""
    if framework == "numpy":
        return np.random.default_rng(0), x
    if framework == "torch":
        return torch.Generator().manual_seed(0), torch.from_numpy(x)
    return jax.random.key(0), jnp.asarray(x)


@pytest.mark.parametrize("framework", BACKENDS)
def test_the_forward_drops_rows_on_every_framework(framework):
    """The forward written once with ls.ops, on NumPy, torch and JAX arrays."""
    p, n = 0.3, 2000
    x = _positive(n, 3, 2)
    rng, arr = _rng_and_array(framework, x)
    layer = ls.DropPath(p)
    y = np.asarray(ls.to_numpy(layer.forward({}, arr, ctx=ls.Context(training=True, rng=rng))))
    assert y.shape == x.shape and y.dtype == np.float32
    kept = _rows_are_dropped_whole(y, x, p)
    assert _binomial_ok(int(kept.sum()), n, 1 - p), kept.sum()
    # batch mode: all or nothing, over many draws
    layer = ls.DropPath(0.5, "batch")
    outcomes = []
    for i in range(200):
        if framework == "jax":
            rng = jax.random.key(i)
        y = np.asarray(ls.to_numpy(layer.forward({}, arr[:4], ctx=ls.Context(True, rng))))
        assert np.all(y == 0) or np.allclose(y, x[:4] * 2.0)
        outcomes.append(bool(np.all(y == 0)))
    assert _binomial_ok(sum(outcomes), 200, 0.5)
    # evaluation, p == 0 and p == 1
    assert ls.DropPath(0.9).forward({}, arr, ctx=ls.Context(False, rng)) is arr
    assert ls.DropPath(0.0).forward({}, arr, ctx=ls.Context(True, rng)) is arr
    zeros = ls.to_numpy(ls.DropPath(1.0).forward({}, arr, ctx=ls.Context(True, rng)))
    assert np.all(np.asarray(zeros) == 0)


@pytest.mark.parametrize("framework", BACKENDS)
@pytest.mark.parametrize("mode, shape", [("row", (0, 3)), ("row", (4, 0, 2)), ("batch", ()),
                                         ("batch", (3,)), ("row", (5,))])
def test_the_forward_keeps_odd_shapes(framework, mode, shape):
    x = np.ones(shape, np.float32)
    rng, arr = _rng_and_array(framework, x)
    y = ls.DropPath(0.5, mode).forward({}, arr, ctx=ls.Context(True, rng))
    assert tuple(y.shape) == shape
    assert set(np.unique(np.asarray(ls.to_numpy(y)))) <= {0.0, 2.0}


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["row", "batch"])
def test_drop_path_on_torch_is_torchvisions_stochastic_depth(mode):
    vision = _torchvision_ops()
    m = ls.build(ls.Sequential(ls.DropPath(0.4, mode)), "torch")
    x = torch.randn(64, 3, 5)
    m.materialize(tuple(x.shape))
    module = dict(m.named_children())["0"]
    reference = vision.StochasticDepth(0.4, mode)
    assert type(module).__name__ == "StochasticDepth" and not hasattr(module, "layer")
    assert repr(module) == repr(reference)
    m.train()
    for seed in range(5):
        torch.manual_seed(seed)
        y = m(x)
        torch.manual_seed(seed)
        assert torch.equal(y, reference.train()(x))  # same draws, same values
    m.eval()
    assert torch.equal(m(x), x)


@pytest.mark.torch
def test_drop_path_training_statistics_on_torch():
    p, n = 0.25, 4000
    m = ls.build(ls.Sequential(ls.DropPath(p)), "torch")
    x = torch.from_numpy(_positive(n, 4))
    m.train()
    torch.manual_seed(0)
    y = m(x).numpy()
    kept = _rows_are_dropped_whole(y, x.numpy(), p)
    assert _binomial_ok(int(kept.sum()), n, 1 - p)
    assert abs(float(y.mean()) - float(x.mean())) < 0.05  # unbiased in expectation


@pytest.mark.jax
def test_drop_path_training_on_jax_follows_the_key():
    p, n = 0.5, 1000
    m = ls.build(ls.Sequential(ls.DropPath(p)), "jax")
    x = jnp.asarray(_positive(n, 3))
    variables = m.init(jax.random.key(0), x)
    y1 = np.asarray(m.apply(variables, x, training=True, key=jax.random.key(1)))
    y2 = np.asarray(m.apply(variables, x, training=True, key=jax.random.key(1)))
    y3 = np.asarray(m.apply(variables, x, training=True, key=jax.random.key(2)))
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    kept = _rows_are_dropped_whole(y1, np.asarray(x), p)
    assert _binomial_ok(int(kept.sum()), n, 1 - p)
    np.testing.assert_array_equal(np.asarray(m.apply(variables, x)), np.asarray(x))
    jitted = jax.jit(lambda v, a, k: m.apply(v, a, training=True, key=k))
    np.testing.assert_array_equal(np.asarray(jitted(variables, x, jax.random.key(1))), y1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_path_is_the_identity_in_evaluation(backend):
    x = _values()
    np.testing.assert_array_equal(_run(ls.DropPath(0.7), backend, x), x)
    np.testing.assert_array_equal(_run(ls.DropPath(1.0, "batch"), backend, x), x)


# -- ONNX writers ----------------------------------------------------------------------


@pytest.mark.onnx
@pytest.mark.parametrize("layer, shape", [
    (ls.Permute(0, 2, 1), ("B", "T", 5)),
    (ls.Transpose(1, -1), ("B", "T", 5)),
    (ls.LayerScale(), ("B", "T", 5)),
    (ls.ReLU6(), ("B", "T", 5)),
    (ls.Hardswish(), ("B", 5)),
    (ls.Hardsigmoid(), ("B", 5)),
    (ls.ELU(0.5), ("B", 5)),
    (ls.Mish(), ("B", 5)),
    (ls.Softplus(2.0, 1.0), ("B", 5)),
    (ls.DropPath(0.3), ("B", 5)),
    (ls.Permute(), ()),
    (ls.Transpose(0, -1), ()),
])
def test_onnx_carries_the_symbols_the_rule_does(layer, shape):
    from lazyshape._dims import format_dim
    from lazyshape.testing import entries
    from lazyshape.testing._onnx import onnx_infer

    entries()  # (the built-in kinds' entries register their ONNX writers)
    spec = ls.TensorSpec(shape, "float32")
    ours = ls.infer(layer, spec, batch_dim=None).output
    ((dims, _),) = onnx_infer(layer, [spec])
    assert dims == tuple(d if type(d) is int else format_dim(d) for d in ours.shape)


# -- the harness -----------------------------------------------------------------------

KINDS = ["ReLU6", "Hardswish", "Hardsigmoid", "ELU", "Mish", "Softplus", "Permute",
         "Transpose", "DropPath", "LayerScale"]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("kind", KINDS)
def test_each_new_kind_passes_check_layer(kind):
    result = check_layer(getattr(ls, kind), max_examples=20, backend_examples={"jax": 3})
    for prop in "abcdf":
        assert result.counts[prop] > 0, (prop, result)
    assert result.counts["b:torch.nn.functional"] > 0 and result.counts["b:jax.eval_shape"] > 0
