"""Robustness: random models (Sequentials, nested blocks, DAGs with merges,
one or two inputs and outputs) on random inputs, valid and invalid (a dim
added or dropped, sizes 0, 1, changed, 2**40 or -1, other dtypes): nothing but a
`ShapeError` naming a real node escapes `ls.infer`, ``build`` +
``materialize`` or a forward on any backend, the stages agree on validity,
and valid inputs give the inferred output shapes.

The fuzz runs 1.5x the profile's examples: ci 90, nightly 2250."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.testing import check_model, models, perturbed_inputs, scaled_settings
from lazyshape.testing._fuzz import HUGE, ModelCheckError

FUZZ = scaled_settings(1.5)


@FUZZ
@given(models(), st.data())
def test_only_shape_errors_escape(case, data):
    model, specs = case
    inputs = data.draw(perturbed_inputs(specs), label="inputs")
    check_model(model, *inputs)


@scaled_settings(0.5)
@given(models(functional=True), st.data())
def test_dags_with_merges(case, data):
    model, specs = case
    inputs = data.draw(perturbed_inputs(specs, huge=False), label="inputs")
    check_model(model, *inputs)


def _two_branches():
    a = ls.Input(("B", "F"))
    b = ls.Input(("B", "G"))
    h = ls.Linear(4, name="fc")(a)
    return ls.Model([a, b], ls.Concat(dim=0, name="cat")(ls.Add(name="add")(h, b), h))


def _conv_net():
    return ls.Sequential(ls.Conv2d(4, 3), ls.ReLU(), ls.Sequential(ls.MaxPool2d(2), ls.Flatten()),
                         ls.Linear(3))


F32 = "float32"

# (model factory, inputs, path of the ShapeError or None when valid)
CASES = [
    (_conv_net, [ls.TensorSpec((2, 3, 8, 8))], None),
    (_conv_net, [ls.TensorSpec((2, 3, 8))], "0"),                       # rank
    (_conv_net, [ls.TensorSpec((2, 3, 2, 8))], "0"),                    # too small for the kernel
    (_conv_net, [ls.TensorSpec((2, 3, 3, 3))], "2.0"),                  # too small for the pool
    (_conv_net, [ls.TensorSpec((2, 0, 8, 8))], "0"),                    # zero channels
    (_conv_net, [ls.TensorSpec((2, 3, 8, 8), "int64")], "0"),           # dtype
    (_conv_net, [ls.TensorSpec((HUGE, 3, 8, 8))], None),                # huge batch: infer only
    (_two_branches, [ls.TensorSpec((2, 5)), ls.TensorSpec((2, 4))], None),
    (_two_branches, [ls.TensorSpec((2, 5)), ls.TensorSpec((2, 3))], "add"),  # mismatched merge
    (_two_branches, [ls.TensorSpec((2, 5)), ls.TensorSpec((3, 4))], "input1"),  # B differs
    (_two_branches, [ls.TensorSpec((2, 5))], ""),                       # arity
    (_conv_net, [(2, 3, -1, 8)], "input0"),                             # negative size
    (_two_branches, [ls.TensorSpec((2, 5)), (2, -1)], "input1"),
]


@pytest.mark.parametrize(("make", "inputs", "path"), CASES)
def test_shape_errors_name_the_node(make, inputs, path):
    err = check_model(make(), *inputs)
    if path is None:
        assert err is None
    else:
        assert err is not None and err.path == path, err


@given(st.data())
def test_perturbed_inputs_draw_negative_sizes_by_default(data):
    specs = (ls.TensorSpec((2, 3)), ls.TensorSpec((4,)))
    drawn = data.draw(perturbed_inputs(specs, huge=False), label="inputs")
    negative = [x for x in drawn if not isinstance(x, ls.TensorSpec)]
    # a -1 makes the input a shape tuple (a spec cannot hold it)
    assert all(isinstance(x, tuple) and -1 in x for x in negative)
    opt_out = data.draw(perturbed_inputs(specs, negative=False), label="no negatives")
    assert all(isinstance(x, ls.TensorSpec) for x in opt_out)


def test_perturbed_inputs_reach_a_negative_size():
    from hypothesis import find

    drawn = find(perturbed_inputs((ls.TensorSpec((2, 3)),)),
                 lambda xs: not isinstance(xs[0], ls.TensorSpec))
    assert -1 in drawn[0]


def test_a_non_shape_error_is_reported():
    class Broken(ls.Layer):
        def output_spec(self, x):
            return x

        def forward(self, params, x):
            raise RuntimeError("boom")

    with pytest.raises(ModelCheckError, match=r"RuntimeError escaped instead of ShapeError"):
        check_model(ls.Sequential(Broken()), ls.TensorSpec((2, 3)), backends=["numpy"])
