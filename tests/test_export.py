"""``ls.export``: the framework's exported program, lazyshape's symbols as its
dynamic dims, each symbol's range from the rules (no hand-written bounds).
The plan is checked with NumPy alone; torch and JAX export for real, and the
exported programs match eager at three sizes and fail just outside a range."""

from __future__ import annotations

import numpy as np
import pytest

import lazyshape as ls
from lazyshape import zoo
from lazyshape._export import plan_export


def _mlp() -> ls.Sequential:
    return ls.Sequential(ls.Linear(16), ls.ReLU(), ls.Linear(4))


def _small_gpt() -> ls.Sequential:
    return zoo.gpt2(vocab_size=50, max_len=16, num_layers=2, embed_dim=16, num_heads=2,
                    mlp_dim=32)


def _conv() -> ls.Sequential:
    """Valid for H, W >= 7 (a 3x3 convolution, then a 5x5 one), any batch."""
    return ls.Sequential(ls.Conv2d(4, 3), ls.ReLU(), ls.Conv2d(4, 5), ls.AdaptiveAvgPool2d(1),
                         ls.Flatten(), ls.Linear(3))


# -- the plan (no framework) -------------------------------------------------------


def test_the_ranges_come_from_the_rules():
    plan = plan_export(_small_gpt(), (("B", "T"),))
    assert plan.dims == ({0: "B", 1: "T"},)
    assert plan.ranges == {"B": (1, None), "T": (1, 16)}
    assert plan_export(_conv(), (("B", 3, "H", "W"),)).ranges == {
        "B": (1, None), "H": (7, None), "W": (7, None)}


def test_example_sizes_are_inside_the_ranges_distinct_and_never_0_or_1():
    plan = plan_export(_conv(), (("B", 3, "H", "W"),))
    (example,) = plan.examples
    b, c, h, w = example.shape
    assert c == 3 and b >= 2 and h >= 7 and w >= 7
    assert len({b, h, w}) == 3
    ls.infer(_conv(), example)  # the model resolves at the example


def test_example_sizes_satisfy_conditions_that_are_not_ranges():
    net = ls.Sequential(ls.Reshape(-1, 4), ls.Linear(3))  # needs 4 | B*F
    plan = plan_export(net, (("B", "F"),))
    (example,) = plan.examples
    b, f = example.shape
    assert (b * f) % 4 == 0 and b != f and min(b, f) >= 2


def test_symbols_the_rules_found_equal_are_one_dynamic_dim():
    x, y = ls.Input(("B", "C")), ls.Input(("B", "D"))
    model = ls.Model([x, y], ls.Add()(x, y))
    plan = plan_export(model, ())
    assert plan.dims == ({0: "B", 1: "C"}, {0: "B", 1: "C"})
    assert set(plan.ranges) == {"B", "C"}


@pytest.mark.parametrize(("model", "spec", "message"), [
    (_mlp, ("B", "F"), r"`0.weight` of shape \(16, F\) depends on F: a parameter's size "
                       r"cannot be dynamic"),
    (_mlp, ("B", None), r"input 0 dim 1 is an unnamed dim \(None\)"),
    (lambda: ls.Sequential(ls.ReLU()), ("B", "2*T"), r"input 0 dim 1 is the expression 2\*T"),
])
def test_what_cannot_be_exported_is_a_value_error(model, spec, message):
    with pytest.raises(ValueError, match=message):
        plan_export(model(), (spec,))


def test_inputs_that_do_not_fit_are_a_shape_error():
    with pytest.raises(ls.ShapeError, match=r"Linear at '0'"):
        ls.export(ls.Sequential(ls.Linear(3, in_features=4)), ("B", 5), backend="numpy")


def test_numpy_has_no_export_format_and_an_unbuilt_model_needs_a_backend():
    with pytest.raises(ValueError, match="the numpy backend has no export format"):
        ls.export(_mlp(), ("B", 8), backend="numpy")
    with pytest.raises(ValueError, match="needs backend="):
        ls.export(_mlp(), ("B", 8))
    built = ls.build(_mlp(), "numpy")
    with pytest.raises(ValueError, match="built on 'numpy'; got backend='torch'"):
        ls.export(built, ("B", 8), backend="torch")
    with pytest.raises(TypeError, match="takes a built or lazyshape model"):
        ls.export(object(), ("B", 8))


# -- torch ---------------------------------------------------------------------------

CASES = {  # model, input spec, three concrete inputs, one just outside a range
    "mlp": (_mlp, ("B", 8), [(2, 8), (5, 8), (9, 8)], None),
    "conv": (_conv, ("B", 3, "H", "W"), [(2, 3, 7, 9), (3, 3, 12, 7), (1, 3, 16, 16)],
             (2, 3, 6, 9)),
    "gpt": (_small_gpt, ("B", "T"), [(2, 3), (3, 16), (1, 1)], (2, 17)),
}


def _input(shape, spec_dims, rng):
    if len(spec_dims) == 2 and spec_dims[1] == "T":  # token ids
        return rng.integers(0, 50, shape).astype(np.int64)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_export_matches_eager_and_keeps_the_ranges(case):
    torch = pytest.importorskip("torch")
    make, spec, shapes, outside = CASES[case]
    m = ls.build(make(), "torch", seed=0)
    ep = ls.export(m, spec)
    assert isinstance(ep, torch.export.ExportedProgram)
    m.eval()
    rng = np.random.default_rng(0)
    lows = {int(r.lower) for r in ep.range_constraints.values()}
    for shape in shapes:
        if 1 in shape and 1 not in lows:  # torch's attention can't serve a size of 1
            continue
        x = torch.from_numpy(_input(shape, spec, rng))
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(x), m(x), rtol=1e-5, atol=1e-5)
    if outside is not None:
        with pytest.raises(Exception, match=r"Guard failed|constraint|range|>=|<="):
            ep.module()(torch.from_numpy(_input(outside, spec, rng)))


@pytest.mark.torch
def test_torch_export_starts_at_2_where_torch_specializes_a_size_of_1():
    pytest.importorskip("torch")
    ep = ls.export(_small_gpt(), ("B", "T"), backend="torch")
    ranges = sorted((int(r.lower), str(r.upper)) for r in ep.range_constraints.values())
    assert ranges == [(2, "16"), (2, "int_oo")]  # T <= 16 from the rules; 2 from torch


@pytest.mark.torch
def test_torch_export_of_an_unbuilt_model_materializes_at_the_example():
    torch = pytest.importorskip("torch")
    ep = ls.export(_conv(), ("B", 3, "H", "W"), backend="torch")
    ranges = sorted((int(r.lower), str(r.upper)) for r in ep.range_constraints.values())
    assert ranges == [(1, "int_oo"), (7, "int_oo"), (7, "int_oo")]
    assert ep.module()(torch.randn(4, 3, 10, 11)).shape == (4, 3)


# -- JAX -------------------------------------------------------------------------------


@pytest.mark.jax
@pytest.mark.parametrize("case", sorted(CASES))
def test_jax_export_matches_apply_and_keeps_the_ranges(case):
    jax = pytest.importorskip("jax")
    make, spec, shapes, outside = CASES[case]
    m = ls.build(make(), "jax", seed=0)
    exported = ls.export(m, spec)
    assert isinstance(exported, jax.export.Exported)
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = jax.numpy.asarray(_input(shape, spec, rng))
        np.testing.assert_allclose(np.asarray(exported.call(m.variables, x)),
                                   np.asarray(m.apply(m.variables, x)), rtol=1e-5, atol=1e-5)
    if outside is not None:
        with pytest.raises(Exception, match=r"constraint|>=|<="):
            exported.call(m.variables, jax.numpy.asarray(_input(outside, spec, rng)))
