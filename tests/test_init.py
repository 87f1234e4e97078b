"""Initializers: fans and formulas equal PyTorch's; primitives sample the right
distributions; the portable streams are deterministic and per-path."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lazyshape as ls
from lazyshape._init import (
    Constant,
    Normal,
    Orthogonal,
    TruncNormal,
    Uniform,
    portable_generator,
    sample_numpy,
)


@pytest.mark.parametrize(
    ("shape", "fans"),
    [((256, 20), (20, 256)), ((16, 3, 5, 5), (75, 400)), ((4, 2, 3), (6, 12))],
)
def test_fans_match_torch_formula(shape, fans):
    assert ls.init.fans(shape) == fans


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match=r"fan in and fan out need a parameter with at least 2 dims; got shape \(5,\)"):
        ls.init.fans((5,))


@pytest.mark.parametrize(
    ("init", "shape", "expected"),
    [
        (ls.init.kaiming_uniform(a=math.sqrt(5)), (256, 20), Uniform(-1 / math.sqrt(20), 1 / math.sqrt(20))),
        (ls.init.kaiming_uniform(a=0, nonlinearity="relu"), (10, 20), Uniform(-math.sqrt(6 / 20), math.sqrt(6 / 20))),
        (ls.init.kaiming_normal(mode="fan_out", nonlinearity="relu"), (8, 4, 3), Normal(0.0, math.sqrt(2) / math.sqrt(24))),
        (ls.init.xavier_uniform(gain=2.0), (3, 5), Uniform(-2 * math.sqrt(6 / 8), 2 * math.sqrt(6 / 8))),
        (ls.init.xavier_normal(), (3, 5), Normal(0.0, math.sqrt(2 / 8))),
        (ls.init.fan_in_uniform(16), (7,), Uniform(-0.25, 0.25)),
        (ls.init.zeros(), (2,), Constant(0.0)),
        (ls.init.ones(), (2,), Constant(1.0)),
        (ls.init.constant(0.5), (2,), Constant(0.5)),
    ],
)
def test_named_initializers_reduce_to_primitives(init, shape, expected):
    prim = init.primitive(shape)
    assert type(prim) is type(expected)
    for field in ("a", "b", "mean", "std", "val"):
        if hasattr(expected, field):
            assert getattr(prim, field) == pytest.approx(getattr(expected, field), rel=1e-12)


@pytest.mark.torch
def test_bounds_match_torch_when_installed():
    import torch

    # torch's own kaiming_uniform_ bound, read off a large sample's extremes
    for a, nl in ((math.sqrt(5), "leaky_relu"), (0.0, "relu")):
        prim = ls.init.kaiming_uniform(a=a, nonlinearity=nl).primitive((64, 50))
        t = torch.empty(64, 50)
        torch.nn.init.kaiming_uniform_(t, a=a, nonlinearity=nl)
        assert float(t.abs().max()) <= prim.b
        assert float(t.abs().max()) > 0.9 * prim.b
    assert ls.init.calculate_gain("leaky_relu", math.sqrt(5)) == torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    assert ls.init.calculate_gain("tanh") == torch.nn.init.calculate_gain("tanh")


def test_bad_initializer_arguments():
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        ls.init.kaiming_uniform(mode="fan_avg")
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        ls.init.kaiming_normal(nonlinearity="swish")
    with pytest.raises(ValueError, match="trunc_normal needs a < b"):
        ls.init.trunc_normal(a=1.0, b=-1.0)


def test_sampling_distributions():
    rng = np.random.default_rng(0)
    u = sample_numpy(Uniform(-2.0, 3.0), (20000,), "float32", rng)
    assert u.dtype == np.float32 and u.min() >= -2.0 and u.max() <= 3.0
    assert abs(u.mean() - 0.5) < 0.05
    n = sample_numpy(Normal(1.0, 2.0), (20000,), "float64", rng)
    assert abs(n.mean() - 1.0) < 0.05 and abs(n.std() - 2.0) < 0.05
    t = sample_numpy(TruncNormal(0.0, 1.0, -0.5, 0.5), (5000,), "float32", rng)
    assert t.min() >= -0.5 and t.max() <= 0.5 and t.shape == (5000,)
    c = sample_numpy(Constant(3.0), (2, 2), "float32", rng)
    assert (c == 3.0).all()


@pytest.mark.parametrize("shape", [(4, 6), (6, 4), (3, 2, 2)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    q = sample_numpy(Orthogonal(2.0), shape, "float64", np.random.default_rng(1))
    flat = q.reshape(shape[0], -1) / 2.0
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-12)


def test_portable_streams_are_per_path_and_deterministic():
    a = portable_generator(3, "0.weight").random(4)
    b = portable_generator(3, "0.weight").random(4)
    c = portable_generator(3, "2.weight").random(4)
    d = portable_generator(4, "0.weight").random(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_linear_defaults_are_torch_defaults():
    inf = ls.infer(ls.Linear(256), (2, 20))
    assert inf.params["weight"].init == ls.init.kaiming_uniform(a=math.sqrt(5))
    assert inf.params["bias"].init == ls.init.fan_in_uniform(20)
    assert repr(inf.params["weight"].init) == "kaiming_uniform(a=2.23607, mode='fan_in', nonlinearity='leaky_relu')"


@pytest.mark.parametrize("prim", [Uniform(-1.0, 1.0), Normal(0.0, 2.0),
                                  TruncNormal(0.0, 1.0, -0.5, 0.5), Constant(0.25),
                                  Orthogonal(1.0)], ids=lambda p: type(p).__name__)
def test_sampling_into_a_given_array_writes_the_same_values_in_place(prim):
    shape = (70, 1000)  # more than one chunk
    want = sample_numpy(prim, shape, "float32", np.random.default_rng(5))
    out = np.full(shape, np.nan, np.float32)
    got = sample_numpy(prim, shape, "float32", np.random.default_rng(5), out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)
    for bad in (np.empty((70, 999), np.float32), np.empty(shape, np.float64),
                np.empty((1000, 70), np.float32).T):
        with pytest.raises(ValueError, match="out must be"):
            sample_numpy(prim, shape, "float32", np.random.default_rng(5), out=bad)
