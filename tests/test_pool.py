"""Pooling layers: shape tables, construction errors, properties against
``torch.nn.functional`` and ``jax.eval_shape`` (shapes, failures and values),
symbolic-then-bind, every backend, torch native modules, JAX transforms."""

from __future__ import annotations

import lazyshape_numpy.pool as np_ops
import numpy as np
import pytest
from _frameworks import optional
from hypothesis import event, given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.dims import bind_shape, format_shape
from lazyshape.layers.pool import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from lazyshape.testing._entries.pool import torch_adaptive_fast_path

torch_ops = optional("lazyshape_torch.pool")
torch = optional("torch")
F = optional("torch.nn.functional")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")
jax_ops = optional("lazyshape_jax.pool")

BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]

MAX = {1: MaxPool1d, 2: MaxPool2d, 3: MaxPool3d}
AVG = {1: AvgPool1d, 2: AvgPool2d, 3: AvgPool3d}
ADAPTIVE = {1: AdaptiveAvgPool1d, 2: AdaptiveAvgPool2d, 3: AdaptiveAvgPool3d}
F_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d} if torch else {}
F_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d} if torch else {}
F_ADAPTIVE = (
    {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d} if torch else {}
)
FRAMEWORK_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


def out_shape(layer, shape):
    """The inferred output shape of ``layer`` on ``shape``, as text."""
    return format_shape(ls.infer(ls.Sequential(layer), shape).output.shape)


# -- example tables ---------------------------------------------------------------

SHAPES = [
    # (layer, input shape, expected output shape)
    (lambda: MaxPool2d(2), ("B", 16, "H", "W"), "(B, 16, H//2, W//2)"),
    (lambda: MaxPool2d(2), (1, 3, 5, 5), "(1, 3, 2, 2)"),
    (lambda: MaxPool2d(2, ceil_mode=True), (1, 3, 5, 5), "(1, 3, 3, 3)"),
    (lambda: MaxPool2d(3, 2, 1), ("B", 3, "H", 8), "(B, 3, (H - 1)//2 + 1, 4)"),
    (lambda: MaxPool2d(3, 2, 1, ceil_mode=True), ("B", 3, "H", 7), "(B, 3, H//2 + 1, 4)"),
    (lambda: MaxPool2d((2, 3), (1, 2)), (2, 4, 6, 7), "(2, 4, 5, 3)"),
    (lambda: MaxPool1d(2, dilation=2), (2, 4, 7), "(2, 4, 3)"),
    (lambda: MaxPool1d(3, 2, ceil_mode=True), (1, 1, 2), "(1, 1, 1)"),  # window past the end
    (lambda: MaxPool1d(3, 1, 1, ceil_mode=True), ("N", "C", "L"), "(N, C, L)"),
    (lambda: MaxPool3d(2), (0, 2, 4, "H", None), "(0, 2, 2, H//2, ?//2)"),
    (lambda: AvgPool2d(2), ("B", 8, 32, "W"), "(B, 8, 16, W//2)"),
    (lambda: AvgPool2d(3, 1, 1), ("B", 8, "H", "W"), "(B, 8, H, W)"),
    (lambda: AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 6), "(2, 3, 4)"),
    (lambda: AvgPool3d(2, divisor_override=3), (1, 1, 4, 5, 6), "(1, 1, 2, 2, 3)"),
    (lambda: AvgPool3d(3, padding=1), (1, 1, "D", 3, 4), "(1, 1, (D - 1)//3 + 1, 1, 2)"),
    (lambda: AdaptiveAvgPool2d((1, 1)), ("B", "C", "H", "W"), "(B, C, 1, 1)"),
    (lambda: AdaptiveAvgPool2d(1), (4, 512, 7, 7), "(4, 512, 1, 1)"),
    (lambda: AdaptiveAvgPool2d((None, 3)), ("B", 4, "H", "W"), "(B, 4, H, 3)"),
    (lambda: AdaptiveAvgPool1d(5), (2, 3, 2), "(2, 3, 5)"),  # larger than the input
    (lambda: AdaptiveAvgPool3d((2, None, 1)), (0, 1, 3, 3, 3), "(0, 1, 2, 3, 1)"),
    (lambda: AdaptiveAvgPool2d((2, None)), (0, 0, 3, 3), "(0, 0, 2, 3)"),  # torch: 2-d allows C=0
]


@pytest.mark.parametrize(("make", "shape", "expected"), SHAPES)
def test_output_shapes(make, shape, expected):
    assert out_shape(make(), shape) == expected


BATCH = r" \(is the batch dim missing\?\)"
TOO_SMALL = r"an output of at least 1 along every spatial dim .*; got output spatial shape "

SHAPE_ERRORS = [
    # (layer, input, regex)
    (lambda: MaxPool2d(2), (3, 8, 8),
     r"^MaxPool2d at '0': expected an input with 4 dims \(N, C, H, W\); got input shape "
     r"\(3, 8, 8\) \(3 dims\)" + BATCH + "$"),
    (lambda: MaxPool1d(2), (2, 3, 8, 8),
     r"MaxPool1d at '0': expected an input with 3 dims \(N, C, L\); got input shape "
     r"\(2, 3, 8, 8\) \(4 dims\)$"),
    (lambda: AvgPool3d(2), ("B", 3, 8, 8),
     r"AvgPool3d at '0': expected an input with 5 dims \(N, C, D, H, W\); got .*" + BATCH),
    (lambda: MaxPool2d(3), (1, 1, 2, 5),
     r"^MaxPool2d at '0': " + TOO_SMALL + r"\(0, 1\) for input shape \(1, 1, 2, 5\) "
     r"\[`kernel_size` \(=\(3, 3\)\), `stride` \(=\(3, 3\)\), `padding` \(=\(0, 0\)\)\]$"),
    (lambda: MaxPool2d(3, stride=2), ("B", 3, 2, "W"),
     r"MaxPool2d at '0': " + TOO_SMALL + r"\(0, \(W - 1\)//2\) for input shape \(B, 3, 2, W\)"),
    (lambda: MaxPool1d(2, dilation=3, ceil_mode=True), (1, 1, 2),
     TOO_SMALL + r"\(0,\) .* `dilation` \(=\(3,\)\), `ceil_mode` \(=True\)\]$"),
    (lambda: AvgPool1d(4, padding=1), (2, 2, 1), TOO_SMALL + r"\(0,\)"),
    (lambda: MaxPool2d(2), ls.TensorSpec((1, 1, 4, 4), "int64"),
     r"MaxPool2d at '0': expected a floating-point input; got dtype int64"),
    (lambda: AdaptiveAvgPool2d(1), ls.TensorSpec((1, 1, 4, 4), "int32"),
     r"AdaptiveAvgPool2d at '0': expected a floating-point input; got dtype int32"),
    (lambda: MaxPool1d(2), (1, 0, 4),
     r"MaxPool1d at '0': non-empty channel and spatial dims \(only the batch dim may be 0\); "
     r"got input shape \(1, 0, 4\)"),
    (lambda: AvgPool2d(1, padding=0), ("B", 3, 0, "W"), r"non-empty channel and spatial dims"),
    (lambda: AdaptiveAvgPool1d(2), (1, 2, 0),
     r"AdaptiveAvgPool1d at '0': non-empty spatial dims \(only the batch dim may be 0\); "
     r"got input shape \(1, 2, 0\)"),
    (lambda: AdaptiveAvgPool3d(2), (1, 0, 3, 3, 3),
     r"AdaptiveAvgPool3d at '0': non-empty channel and spatial dims"),
    (lambda: AvgPool3d(3, padding=1), (1, 1, 2, 4, 4),
     r"AvgPool3d at '0': every spatial input dim at least `kernel_size` \(torch's avg_pool3d "
     r"checks this before padding\); got input shape \(1, 1, 2, 4, 4\) "
     r"\[`kernel_size` \(=\(3, 3, 3\)\)"),
]


@pytest.mark.parametrize(("make", "shape", "regex"), SHAPE_ERRORS)
def test_shape_errors(make, shape, regex):
    with pytest.raises(ls.ShapeError, match=regex):
        ls.infer(ls.Sequential(make()), shape)


HPARAM_ERRORS = [
    (lambda: MaxPool2d(0),
     r"^MaxPool2d: `kernel_size` to be a positive int or a tuple of 2 positive ints; "
     r"got `kernel_size` \(=0\)$"),
    (lambda: MaxPool2d((2, 2, 2)), r"MaxPool2d: `kernel_size` .*; got `kernel_size` \(=\(2, 2, 2\)\)"),
    (lambda: MaxPool3d(2.0), r"MaxPool3d: `kernel_size` to be a positive int or a tuple of 3"),
    (lambda: MaxPool2d(2, stride=0), r"MaxPool2d: `stride` to be a positive int .*; got `stride` \(=0\)"),
    (lambda: MaxPool1d(2, dilation=(0,)), r"MaxPool1d: `dilation` to be a positive int"),
    (lambda: AvgPool2d(2, padding=-1),
     r"AvgPool2d: `padding` to be a non-negative int or a tuple of 2 non-negative ints; "
     r"got `padding` \(=-1\)"),
    (lambda: MaxPool2d(3, padding=2),
     r"^MaxPool2d: `padding` at most half of `kernel_size` \(padding <= kernel_size // 2\); "
     r"got `padding` \(=2\), `kernel_size` \(=3\)$"),
    (lambda: AvgPool3d((2, 4, 4), padding=(1, 2, 3)), r"AvgPool3d: `padding` at most half"),
    (lambda: AvgPool2d(2, divisor_override=0),
     r"AvgPool2d: `divisor_override` to be a non-zero int or None; got `divisor_override` \(=0\)"),
    (lambda: AdaptiveAvgPool2d(0),
     r"AdaptiveAvgPool2d: `output_size` to be a positive int or a tuple of 2 positive ints or "
     r"None; got `output_size` \(=0\)"),
    (lambda: AdaptiveAvgPool2d((1, 2, 3)), r"AdaptiveAvgPool2d: `output_size`"),
    (lambda: AdaptiveAvgPool1d(None),
     r"AdaptiveAvgPool1d: `output_size` to be a positive int or a tuple of 1 positive int; "
     r"got `output_size` \(=None\)"),
]


@pytest.mark.parametrize(("make", "regex"), HPARAM_ERRORS)
def test_hyperparameter_errors(make, regex):
    with pytest.raises(ls.ShapeError, match=regex):
        make()


def test_repr_and_defaults():
    assert repr(MaxPool2d(2)) == (
        "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), "
        "ceil_mode=False)"
    )
    assert repr(AvgPool1d(3, 1)) == (
        "AvgPool1d(kernel_size=(3,), stride=(1,), padding=(0,), ceil_mode=False, "
        "count_include_pad=True)"
    )
    assert repr(AvgPool2d(2, divisor_override=3)).endswith("divisor_override=3)")
    assert "divisor_override" not in repr(AvgPool3d(2))
    assert repr(AdaptiveAvgPool2d((None, 7))) == "AdaptiveAvgPool2d(output_size=(None, 7))"
    assert MaxPool3d(2, stride=(1, 2, 1)).stride == (1, 2, 1)
    assert MaxPool1d(4, name="pool").name == "pool"


def test_functional_model_and_summary():
    x = ls.Input(("B", 3, "H", "W"))
    h = MaxPool2d(2, name="pool")(x)
    y = AdaptiveAvgPool2d(1, name="gap")(h)
    model = ls.Model(x, y)
    assert h.shape == ls.infer(ls.Sequential(MaxPool2d(2)), ("B", 3, "H", "W")).output.shape
    inf = ls.infer(model, (2, 3, 9, 9))
    assert inf.output.shape == (2, 3, 1, 1)
    assert inf.num_params == 0
    assert "MaxPool2d" in ls.summary(model, (2, 3, 9, 9))


# -- properties against the frameworks --------------------------------------------


@st.composite
def pool_cases(draw, family):
    """A layer configuration and a concrete input shape: mostly valid
    hyperparameters (inputs may still be too small), sometimes one invalid
    hyperparameter or an empty channel/spatial dim."""
    n = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["valid"] * 6 + ["bad hparam", "empty dim"]))
    size = st.integers(1, 7) if n < 3 else st.integers(1, 5)
    shape = [draw(st.integers(0, 2)), draw(st.integers(1, 2)), *draw(st.tuples(*[size] * n))]
    if mode == "empty dim":
        shape[draw(st.integers(1, n + 1))] = 0
    shape = tuple(shape)
    ints = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * n)  # noqa: E731
    if family == "adaptive":
        entry = st.one_of(st.integers(1, 6), st.none()) if n > 1 else st.integers(1, 6)
        return n, {"output_size": draw(st.tuples(*[entry] * n))}, shape
    k = draw(ints(1, 4))
    hp = {
        "kernel_size": k,
        "stride": draw(st.one_of(st.none(), ints(1, 3))),
        "padding": tuple(draw(st.integers(0, ki // 2)) for ki in k),
        "ceil_mode": draw(st.booleans()),
    }
    if family == "max":
        hp["dilation"] = draw(ints(1, 2))
    else:
        hp["count_include_pad"] = draw(st.booleans())
        if n > 1:
            hp["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 3)))
    if mode == "bad hparam":
        name = draw(st.sampled_from(
            ["kernel_size", "stride", "padding"] + (["dilation"] if family == "max" else [])
        ))
        i = draw(st.integers(0, n - 1))
        bad = {"kernel_size": 0, "stride": 0, "dilation": 0,
               "padding": draw(st.sampled_from([-1, k[i] // 2 + 1]))}[name]
        value = list(hp[name] or k)
        value[i] = bad
        hp[name] = tuple(value)
    # the int form of a hyperparameter means the same as the repeated tuple
    if draw(st.booleans()) and len(set(hp["kernel_size"])) == 1:
        hp["kernel_size"] = hp["kernel_size"][0]
    return n, hp, shape


def _torch_call(family, n, hp, x):
    if family == "max":
        return F_MAX[n](x, hp["kernel_size"], hp["stride"], hp["padding"], hp["dilation"],
                        ceil_mode=hp["ceil_mode"])
    if family == "avg":
        args = (hp["kernel_size"], hp["stride"], hp["padding"], hp["ceil_mode"],
                hp["count_include_pad"])
        return F_AVG[n](x, *args, **({} if n == 1 else {"divisor_override": hp["divisor_override"]}))
    return F_ADAPTIVE[n](x, hp["output_size"])


def _layer_ops(family, layer):
    """``fn(ops_module, x)``: the layer's op call on any backend's ops module."""
    if family == "max":
        args = (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
        return lambda ops, x: ops.max_pool(x, *args)
    if family == "avg":
        args = (layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                layer.count_include_pad, layer.divisor_override)
        return lambda ops, x: ops.avg_pool(x, *args)
    return lambda ops, x: ops.adaptive_avg_pool(
        x, tuple(d if o is None else o for d, o in zip(x.shape[2:], layer.output_size,
                                                        strict=True)))


CLASSES = {"max": MAX, "avg": AVG, "adaptive": ADAPTIVE}


def _check_against_frameworks(family, case):
    """Rule and torch fail together; when they succeed, torch's shape, JAX's
    ``eval_shape`` and the rule agree, and NumPy / JAX / torch values agree."""
    n, hp, shape = case
    try:
        layer = CLASSES[family][n](**hp)
        rule = ls.infer(ls.Sequential(layer), shape).output.shape
    except ls.ShapeError:
        rule = None
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    try:
        ref = _torch_call(family, n, hp, torch.from_numpy(x))
    except FRAMEWORK_ERRORS:
        ref = None
    if family == "adaptive" and rule is None and ref is not None:
        # deliberate: torch's fast paths (every output size 1: a mean, NaN on an
        # empty input; every output size the input's: a copy) skip its non-empty
        # check; lazyshape rejects empty spatial dims (and empty channels in 3-d)
        # as torch's general path does
        assert torch_adaptive_fast_path(shape, hp["output_size"]), shape
        return
    assert (rule is None) == (ref is None), (rule, None if ref is None else ref.shape)
    event("both reject" if rule is None else "both accept")
    if rule is None:
        return
    assert rule == tuple(ref.shape)
    call = _layer_ops(family, layer)
    got = jax.eval_shape(lambda a: call(jax_ops, a), jax.ShapeDtypeStruct(shape, jnp.float32))
    assert got.shape == rule
    np.testing.assert_allclose(call(np_ops, x), ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(call(torch_ops, torch.from_numpy(x)), ref.numpy(), rtol=0, atol=0)
    if 0 < x.size <= 400:  # JAX compiles each shape: values on small inputs only
        np.testing.assert_allclose(call(jax_ops, jnp.asarray(x)), ref.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.torch
@pytest.mark.jax
@given(pool_cases("max"))
def test_max_pool_agrees_with_torch_and_jax(case):
    _check_against_frameworks("max", case)


@pytest.mark.torch
@pytest.mark.jax
@given(pool_cases("avg"))
def test_avg_pool_agrees_with_torch_and_jax(case):
    _check_against_frameworks("avg", case)


@pytest.mark.torch
@pytest.mark.jax
@given(pool_cases("adaptive"))
def test_adaptive_avg_pool_agrees_with_torch_and_jax(case):
    _check_against_frameworks("adaptive", case)


@st.composite
def valid_pool_cases(draw):
    """Valid hyperparameters of a max or average pool and a concrete input."""
    family = draw(st.sampled_from(["max", "avg"]))
    n = draw(st.integers(1, 3))
    k = draw(st.tuples(*[st.integers(1, 4)] * n))
    hp = {
        "kernel_size": k,
        "stride": draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * n))),
        "padding": tuple(draw(st.integers(0, ki // 2)) for ki in k),
        "ceil_mode": draw(st.booleans()),
    }
    if family == "max":
        hp["dilation"] = draw(st.tuples(*[st.integers(1, 2)] * n))
    spatial = draw(st.tuples(*[st.integers(1, 12)] * n))
    return family, n, hp, (draw(st.integers(0, 3)), draw(st.integers(1, 3)), *spatial)


@given(valid_pool_cases())
def test_symbolic_then_bind_equals_concrete(case):
    """The symbolic output shape, bound to concrete sizes, is the concrete
    inference, for every valid concrete input (ceil mode's correction included)."""
    family, n, hp, shape = case
    layer = CLASSES[family][n](**hp)
    names = ("N", "C", "D0", "D1", "D2")[: n + 2]
    sym = ls.infer(ls.Sequential(layer), names).output.shape
    try:
        concrete = ls.infer(ls.Sequential(layer), shape).output.shape
    except ls.ShapeError:
        # too small: the formula, bound, says so too (or avg_pool3d's input < kernel)
        bound = bind_shape(sym, dict(zip(names, shape, strict=True)))
        below_kernel = family == "avg" and n == 3 and any(
            d < k for d, k in zip(shape[2:], hp["kernel_size"], strict=True)
        )
        assert any(d < 1 for d in bound[2:]) or below_kernel
        return
    assert bind_shape(sym, dict(zip(names, shape, strict=True))) == concrete


# -- every backend ------------------------------------------------------------------

LAYERS = {
    "max1d": (lambda: MaxPool1d(3, 2, 1, ceil_mode=True), (2, 3, 10), lambda: nn.MaxPool1d(3, 2, 1, ceil_mode=True)),
    "max2d": (lambda: MaxPool2d(2), (2, 3, 9, 8), lambda: nn.MaxPool2d(2)),
    "max2d_dilated": (lambda: MaxPool2d((3, 2), (2, 1), (1, 0), dilation=(1, 2)), (2, 2, 9, 8),
                      lambda: nn.MaxPool2d((3, 2), (2, 1), (1, 0), dilation=(1, 2))),
    "max3d": (lambda: MaxPool3d(2, 1, ceil_mode=True), (1, 2, 4, 5, 3), lambda: nn.MaxPool3d(2, 1, ceil_mode=True)),
    "avg1d": (lambda: AvgPool1d(3, 2, 1, count_include_pad=False), (2, 3, 10),
              lambda: nn.AvgPool1d(3, 2, 1, count_include_pad=False)),
    "avg2d": (lambda: AvgPool2d(3, 2, 1, ceil_mode=True), (2, 3, 8, 9),
              lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True)),
    "avg2d_divisor": (lambda: AvgPool2d(2, divisor_override=3), (2, 3, 6, 6),
                      lambda: nn.AvgPool2d(2, divisor_override=3)),
    "avg3d": (lambda: AvgPool3d(2, padding=1, count_include_pad=False), (1, 2, 4, 5, 3),
              lambda: nn.AvgPool3d(2, padding=1, count_include_pad=False)),
    "adaptive1d": (lambda: AdaptiveAvgPool1d(4), (2, 3, 10), lambda: nn.AdaptiveAvgPool1d(4)),
    "adaptive2d": (lambda: AdaptiveAvgPool2d((3, None)), (2, 3, 7, 5), lambda: nn.AdaptiveAvgPool2d((3, None))),
    "adaptive2d_global": (lambda: AdaptiveAvgPool2d(1), (2, 3, 7, 5), lambda: nn.AdaptiveAvgPool2d(1)),
    "adaptive3d": (lambda: AdaptiveAvgPool3d((2, 3, 4)), (1, 2, 5, 4, 3), lambda: nn.AdaptiveAvgPool3d((2, 3, 4))),
}


@pytest.mark.torch  # the hand-written torch module is the reference on every backend
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_every_backend(backend, case):
    make, shape, make_torch = LAYERS[case]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    inferred = ls.infer(ls.Sequential(make()), shape).output
    m = ls.build(ls.Sequential(make()), backend, rng="portable", seed=0)
    y = ls.to_numpy(m(ls.asarray(x, backend)))
    assert y.shape == inferred.shape
    assert str(y.dtype) == inferred.dtype
    ref = ls.build(ls.Sequential(make()), "numpy", rng="portable", seed=0)(x)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    hand = make_torch()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, hand, rtol=1e-4, atol=1e-4)


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_torch_native_module(case):
    make, shape, make_torch = LAYERS[case]
    m = ls.build(ls.Sequential(make()), "torch").materialize(shape)
    hand = nn.Sequential(make_torch())
    assert type(m[0]) is type(hand[0])
    assert list(m.state_dict()) == list(hand.state_dict()) == []
    x = torch.from_numpy(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    assert torch.equal(m(x), hand(x))


@pytest.mark.torch
def test_numpy_ops_handle_empty_batch_and_float64():
    x = np.zeros((0, 2, 5, 5))
    assert np_ops.max_pool(x, (2, 2), (2, 2), (0, 0), (1, 1), False).shape == (0, 2, 2, 2)
    y = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    out = np_ops.avg_pool(y, (3, 3), (2, 2), (1, 1), True, False)
    assert out.dtype == np.float64
    ref = F.avg_pool2d(torch.from_numpy(y), 3, 2, 1, True, False).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    assert np_ops.adaptive_avg_pool(y, (3, 1)).dtype == np.float64


# -- JAX transforms -------------------------------------------------------------------

JAX_CASES = ["max2d_dilated", "max1d", "avg2d", "avg3d", "adaptive2d", "adaptive3d"]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("case", JAX_CASES)
def test_jax_jit_grad_vmap(case):
    make, shape, make_torch = LAYERS[case]
    m = ls.build(ls.Sequential(make()), "jax")
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    params = m.init(0, x)
    y = jax.jit(m.apply)(params, x)
    np.testing.assert_allclose(y, m.apply(params, x), rtol=1e-6, atol=1e-6)
    # grad equals torch's autograd
    g = jax.grad(lambda a: (m.apply(params, a) ** 2).sum())(jnp.asarray(x))
    xt = torch.from_numpy(x).requires_grad_(True)
    (make_torch()(xt) ** 2).sum().backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    # vmap over an extra leading axis equals the loop
    xs = np.stack([x, 2 * x])
    v = jax.vmap(lambda a: m.apply(params, a))(xs)
    np.testing.assert_allclose(v[1], m.apply(params, 2 * x), rtol=1e-5, atol=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("shape,size,fast", [
    ((1, 1, 1, 0), (None, 1), True),            # every output 1: torch's mean
    ((0, 0, 1, 1, 1), (None, None, None), True),  # the input's size: torch's copy
    ((1, 1, 1, 0), (1, 2), False),              # torch's general path rejects it
])
def test_empty_inputs_torch_takes_by_an_adaptive_fast_path(shape, size, fast):
    n = len(shape) - 2
    f = F_ADAPTIVE[n]
    assert torch_adaptive_fast_path(shape, size) is fast
    if fast:
        f(torch.zeros(shape), size)
    else:
        with pytest.raises(RuntimeError, match="non-zero size for non-batch dimensions"):
            f(torch.zeros(shape), size)
    with pytest.raises(ls.ShapeError, match="non-empty"):  # lazyshape: always rejected
        ls.infer(ls.Sequential(CLASSES["adaptive"][n](size)), shape)
