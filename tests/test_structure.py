"""Structure at scale: models nested 10,000 deep and 100,000 layers wide
resolve, build and run with Python's recursion limit untouched (the walk over
a model's structure keeps its own stack)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import lazyshape as ls


def _nested_sequential(depth: int) -> ls.Layer:
    net: ls.Layer = ls.Linear(3)
    for _ in range(depth):
        net = ls.Sequential(net, ls.ReLU())
    return net


def _nested_functional(depth: int) -> ls.Layer:
    net: ls.Layer = ls.Linear(3, name="fc")
    for _ in range(depth):
        x = ls.Input(("B", 4))
        net = ls.Model(x, ls.ReLU()(net(x)))
    return net


@pytest.mark.parametrize("make", [_nested_sequential, _nested_functional])
def test_ten_thousand_levels_resolve_build_and_run(make):
    depth = 10_000
    limit = sys.getrecursionlimit()
    net = make(depth)
    inf = ls.infer(net, ("B", 4))
    assert inf.output.shape == (ls.Sym("B"), 3) and len(inf.layers) == depth + 1
    deepest = inf.layers[0].path
    assert deepest.count(".") == depth - 1  # the Linear, under `depth` containers
    m = ls.build(net, "numpy", rng="portable", seed=0)
    y = m(np.ones((2, 4), np.float32))
    ref = ls.build(ls.Sequential(ls.Linear(3), ls.ReLU()), "numpy", rng="portable", seed=0)
    ref.load_state_dict({"0.weight": m.params[deepest + ".weight"],
                         "0.bias": m.params[deepest + ".bias"]})
    np.testing.assert_array_equal(y, ref(np.ones((2, 4), np.float32)))
    assert sys.getrecursionlimit() == limit


def test_a_hundred_thousand_layers_in_one_sequential():
    net = ls.Sequential(ls.Linear(8), *[ls.ReLU() for _ in range(100_000)], ls.Linear(2))
    inf = ls.infer(net, ("B", 5))
    assert len(inf.layers) == 100_002 and inf.output.shape == (ls.Sym("B"), 2)
    m = ls.build(net, "numpy", seed=0)
    assert m(np.ones((3, 5), np.float32)).shape == (3, 2)
