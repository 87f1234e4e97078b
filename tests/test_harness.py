"""The harness itself (`lazyshape.testing`): every built-in layer passes
`check_layer` on every installed backend; the strategies draw what they
promise; a wrong rule fails with a report naming the property, the layer, the
inputs and what each side did; every known bug the harness found is pinned
by a strict xfail.

Example budget (``scaled_settings`` keys off the loaded profile): each
built-in kind runs half the profile's examples (ci 30, nightly 750), JAX
forwards a fifth of those (it compiles each new shape)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape import testing as lt
from lazyshape._demo import CustomLinear
from lazyshape.dims import bind_shape
from lazyshape.testing import LayerCheckError, check_layer, scaled_settings
from lazyshape.testing._known import KNOWN_ISSUES

KINDS = lt.kinds()
BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]
#: property (f) compares NumPy with a second backend: torch stands for "a second backend"
SECOND_BACKEND = pytest.mark.torch

#: the properties every built-in kind must exercise at least once
ALWAYS = "abcdf"


def _budget(factor: float = 0.5) -> tuple[object, dict[str, int]]:
    s = scaled_settings(factor)
    return s, {"jax": max(4, s.max_examples // 5)}


@SECOND_BACKEND
@pytest.mark.parametrize("kind", KINDS)
def test_every_builtin_layer_passes_check_layer(kind, record_property):
    s, budget = _budget()
    result = check_layer(lt.entries()[kind].layer_type, settings=s, backend_examples=budget)
    # examples per property, in `pytest --junitxml` reports
    record_property("counts", json.dumps(result.counts, sort_keys=True))
    missing = [p for p in ALWAYS if not result.counts[p]]
    assert not missing, f"{kind}: properties {missing} never ran: {result}"


def test_every_exported_layer_has_an_entry():
    exported = {
        name for name, obj in vars(ls).items()
        if isinstance(obj, type) and issubclass(obj, ls.Layer)
        and not issubclass(obj, ls.Module) and obj is not ls.Layer
    }
    assert exported, "no layers exported"
    assert exported <= set(KINDS), f"no harness entry for {sorted(exported - set(KINDS))}"


@SECOND_BACKEND
def test_a_custom_layer_passes_check_layer():
    result = check_layer(
        CustomLinear, hparams={"out_features": st.integers(1, 6)}, max_examples=15,
        backend_examples={"jax": 3},
    )
    assert result.counts["a"] and result.counts["c"] and result.counts["f"]


# -- dtype disagreements: the report says what to change -------------------------


class LinearKeepsInputDtype(ls.Layer):
    """Promises the input's dtype; int inputs times float32 weights are float32."""

    def output_spec(self, x):
        return ls.TensorSpec((*x.shape[:-1], 2), x.dtype)

    def param_specs(self, x):
        return {"weight": ls.ParamSpec((x.shape[-1], 2), init=ls.init.ones())}

    def forward(self, params, x):
        return ls.ops.matmul(x, params["weight"])


class LinearInWeightsDtype(LinearKeepsInputDtype):
    def output_spec(self, x):
        return ls.TensorSpec((*x.shape[:-1], 2), None)


def test_a_rule_missing_the_weights_dtype_is_told_to_return_none():
    # (JAX runs on no example: the failure's report still gives its answer)
    with pytest.raises(LayerCheckError) as info:
        check_layer(LinearKeepsInputDtype, inputs=[(2, 3)], probe_dtypes=("int32",),
                    properties="a", max_examples=300, backend_examples={"jax": 0})
    err = info.value
    assert err.property == "a" and "output dtype differs" in err.problem
    assert err.results["rule"].endswith(" int32")
    for backend in ls.backends():
        assert err.results[backend].endswith(" float32"), err.results
    assert err.fix[0] == ("the forward computes in the parameters' dtype (float32): return "
                          "TensorSpec(shape, None) from output_spec (None is the model's dtype)")
    assert err.fix[1].endswith("check_layer(..., probe_dtypes=())")
    assert "\nfix:\n  the forward computes in the parameters' dtype" in str(err)
    result = check_layer(LinearInWeightsDtype, inputs=[(2, 3)], probe_dtypes=("int32",),
                         properties="a", max_examples=100, backend_examples={"jax": 20})
    assert result.counts["a"]


class AddKeepsFirstDtype(ls.Layer):
    def output_spec(self, a, b):
        if a.shape != b.shape:
            raise ls.ShapeError("inputs of one shape", f"shapes {a.shape} and {b.shape}")
        return a

    def forward(self, params, a, b):
        return ls.ops.add(a, b)


class AddPromotes(AddKeepsFirstDtype):
    dtype_rule = "promote"

    def output_spec(self, a, b):
        return ls.TensorSpec(super().output_spec(a, b).shape, None)


def test_a_rule_missing_the_promotion_is_told_to_declare_dtype_rule():
    with pytest.raises(LayerCheckError) as info:
        check_layer(AddKeepsFirstDtype, inputs=[(2, 3), (2, 3)], probe_dtypes=("int32",),
                    properties="a", max_examples=300, backend_examples={"jax": 0})
    assert info.value.fix, str(info.value)
    assert info.value.fix[0].startswith("the forward computes in the promoted dtype")
    assert 'declare dtype_rule = "promote" on the class' in info.value.fix[0]
    result = check_layer(AddPromotes, inputs=[(2, 3), (2, 3)], probe_dtypes=("int32", "bool"),
                         properties="a", max_examples=100, backend_examples={"jax": 20})
    assert result.counts["a"]


class ScalesWithAnOperator(ls.Layer):
    def output_spec(self, x):
        return x

    def forward(self, params, x):
        return x * 0.5  # the framework's own promotion: NumPy gives float64 for int32


@SECOND_BACKEND
def test_backends_disagreeing_on_a_dtype_are_told_to_use_ls_ops():
    if ls.backends() == ["numpy", "jax"]:
        pytest.skip("JAX without x64 cannot show a float64")
    with pytest.raises(LayerCheckError) as info:
        check_layer(ScalesWithAnOperator, inputs=[(2, 3)], probe_dtypes=("int32",),
                    properties="a", max_examples=300, backend_examples={"jax": 0})
    assert info.value.fix[0].startswith("the backends disagree with each other: compute "
                                        "with ls.ops functions")


# -- failure reports ------------------------------------------------------------


class WrongFlatten(ls.Flatten):
    """Forgets the dims after end_dim: the rule says (N, C*H) where the
    computation gives (N, C*H, W) for Flatten(1, 2)."""

    def output_spec(self, x):
        s = self.start_dim % x.ndim
        return x.with_shape((*x.shape[:s], ls.dims.prod(x.shape[s:])))


def test_a_wrong_rule_fails_with_a_reproducer():
    with pytest.raises(LayerCheckError) as info:
        check_layer(WrongFlatten, hparams={"start_dim": st.just(1), "end_dim": st.just(2)},
                    inputs=lambda layer: lt.specs(min_ndim=4, max_ndim=4).map(lambda s: (s,)),
                    max_examples=20)
    err = info.value
    text = str(err)
    assert err.property in "ab"
    assert "WrongFlatten(start_dim=1, end_dim=2)" in text
    assert "layer = WrongFlatten(start_dim=1, end_dim=2)" in text
    assert "ls.infer(layer, ls.TensorSpec((1, 1, 1, 1), 'float32'))" in text  # shrunk
    assert "rule" in err.results and len(err.results) >= 2


class BatchDependent(ls.Layer):
    """A parameter sized by the batch dim."""

    def output_spec(self, x):
        return x

    def param_specs(self, x):
        return {"scale": ls.ParamSpec((x.shape[0],), init=ls.init.ones())}

    def forward(self, params, x):
        return x


def test_a_batch_dependent_parameter_fails_property_e():
    with pytest.raises(LayerCheckError, match=r"(?s)property \(e\) failed.*`scale` depends on the batch dim") as info:
        check_layer(BatchDependent, inputs=[(2, 3)], properties="e", max_examples=5)
    assert info.value.results["concrete"] == "{'scale': (2,)}"


class IntOnly(ls.Layer):
    """A rule that converts dims to int: symbolic inputs break it."""

    def output_spec(self, x):
        return ls.TensorSpec((int(x.shape[0]), 2 * int(x.shape[-1])), x.dtype)


def test_a_rule_that_needs_ints_fails_property_c():
    with pytest.raises(LayerCheckError, match=r"(?s)property \(c\) failed.*fails on symbolic inputs"):
        check_layer(IntOnly, inputs=[(2, 3)], properties="c", max_examples=10)


class NumpyOnlyScale(ls.Layer):
    """Computes differently on NumPy than on the other backends."""

    def output_spec(self, x):
        return x

    def forward(self, params, x):
        return x * 2.0 if isinstance(x, np.ndarray) else x


@SECOND_BACKEND
def test_backends_that_disagree_fail_property_f():
    with pytest.raises(LayerCheckError, match=r"(?s)property \(f\) failed.*output 0 differs between numpy and"):
        check_layer(NumpyOnlyScale, inputs=[(2, 3)], properties="f", max_examples=5)


class LiesAboutShape(ls.Layer):
    def output_spec(self, x):
        return x.with_shape((*x.shape[:-1], x.shape[-1] + 1))

    def forward(self, params, x):
        return x


def test_a_rule_that_disagrees_with_the_forward_fails_property_a():
    with pytest.raises(LayerCheckError, match=r"(?s)property \(a\) failed.*output shape differs") as info:
        check_layer(LiesAboutShape, inputs=[(2, 3)], properties="a", max_examples=5)
    assert info.value.results["rule"] == "(2, 4) float32"
    assert info.value.results["numpy"] == "(2, 3) float32"


def test_user_oracle_and_invalid_inputs():
    """A user layer declares what it must reject and brings its own oracle."""

    def oracle_fn(layer, specs):
        (x,) = specs
        if x.ndim < 1:
            raise ValueError("needs a feature dim")
        return (((*x.shape[:-1], layer.out_features), "float32"),)

    result = check_layer(
        CustomLinear,
        hparams={"out_features": st.integers(1, 4)},
        invalid=lambda layer: st.just((ls.TensorSpec((), "float32"),)),
        oracles=[lt.Oracle("mine", oracle_fn, dtypes=False)],
        max_examples=15,
        properties="b",
    )
    assert result.counts["b:mine"] > 0


def test_register_decorator_declares_a_user_layers_strategies():
    @lt.register(hparams={"factor": st.integers(1, 3)},
                 inputs=lambda layer: st.tuples(lt.specs(min_ndim=2, max_ndim=3)))
    class Repeat(ls.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def output_spec(self, x):
            return x.with_shape((*x.shape[:-1], x.shape[-1] * self.factor))

        def forward(self, params, x):
            return ls.ops.concat([x] * self.factor, axis=-1)

    try:
        assert lt.entry_for(Repeat) is not None
        result = check_layer(Repeat, max_examples=10, backend_examples={"jax": 2})
        assert result.counts["a"] > 0
    finally:
        del lt._registry._ENTRIES[Repeat]


# -- strategies ------------------------------------------------------------------


@given(lt.dims(1, 6))
def test_dims_are_ints_or_expressions(d):
    assert (type(d) is int and 1 <= d <= 6) or isinstance(d, ls.Expr)


@given(lt.specs(min_ndim=0, max_ndim=3, symbols=("B", "H"), expressions=True))
def test_specs_with_symbols(spec):
    assert isinstance(spec, ls.TensorSpec) and spec.ndim <= 3


@given(lt.specs(min_ndim=1, max_ndim=4, max_side=5).flatmap(
    lambda s: st.tuples(st.just(s), lt.symbolize((s,)))))
def test_symbolize_binds_back_to_the_concrete_inputs(case):
    spec, (sym, env) = case
    assert bind_shape(sym[0].shape, env) == spec.shape
    assert env  # at least one dim went symbolic


@given(lt.layers())
def test_layers_draw_every_registered_kind(layer):
    assert type(layer).__name__ in KINDS


@given(st.data())
def test_inputs_are_accepted_and_invalid_inputs_rejected(data):
    layer = data.draw(lt.layers(["Linear", "Conv2d", "Concat", "LayerNorm"]))
    ls.infer(layer, *data.draw(lt.inputs(layer)))
    with pytest.raises(ls.ShapeError):
        ls.infer(layer, *data.draw(lt.invalid_inputs(layer)))


@given(lt.models(max_layers=4))
def test_models_accept_their_inputs(case):
    model, specs = case
    inf = ls.infer(model, *specs)
    assert all(not o.is_symbolic for o in inf.outputs)


# -- the bugs the harness found (each skipped by check_layer while open) ---------

def _known(issue_id):
    issue = next(i for i in KNOWN_ISSUES if i.id == issue_id)
    return pytest.mark.xfail(strict=True, reason=issue.summary)


@pytest.mark.torch
def test_merge_promotes_as_torch():
    # was the known bug "merge-int-float-promotion": the rule promoted as NumPy does
    import torch

    inf = ls.infer(ls.Add(), ls.TensorSpec((2,), "int32"), ls.TensorSpec((2,), "float32"))
    got = torch.ones(2, dtype=torch.int32) + torch.ones(2)
    assert inf.output.dtype == str(got.dtype).removeprefix("torch.") == "float32"
    a = ls.Input((2,), "int32")
    b = ls.Input((2,), "float32")
    m = ls.build(ls.Model([a, b], ls.Add()(a, b)), "numpy")
    assert m(np.ones(2, np.int32), np.ones(2, np.float32)).dtype == np.float32


def test_flatten_of_an_empty_input_runs_on_numpy():
    m = ls.build(ls.Flatten(), "numpy")
    assert m(np.zeros((0, 2, 3), np.float32)).shape == (0, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_flatten_of_a_scalar_as_torch(backend):
    # was the known bug "flatten-0d": the rule gave (1,) for any start_dim / end_dim
    for dims in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        assert ls.infer(ls.Flatten(*dims), ()).output.shape == (1,)
        y = ls.build(ls.Flatten(*dims), backend)(ls.asarray(np.float32(2.5), backend))
        np.testing.assert_array_equal(ls.to_numpy(y), np.array([2.5], np.float32))
    msg = (r"^Flatten at '0': `start_dim` and `end_dim` in \[-1, 0\] for a 0-d input "
           r"\(flattened as a 1-d one, as torch.flatten\); got `start_dim` \(=1\), "
           r"`end_dim` \(=-1\) for input shape \(\)")  # JAX may append a note
    with pytest.raises(ls.ShapeError, match=msg):
        ls.infer(ls.Sequential(ls.Flatten()), ())
    m = ls.build(ls.Sequential(ls.Flatten()), backend)
    with pytest.raises(ls.ShapeError, match=msg):  # before the forward, not its IndexError
        m(ls.asarray(np.float32(2.5), backend))
    for dims in [(1, -1), (0, 1), (-2, -1), (0, -2)]:
        with pytest.raises(ls.ShapeError, match=r"for a 0-d input"):
            ls.infer(ls.Flatten(*dims), ())


@pytest.mark.parametrize("layer", [ls.Softmax(0), ls.Softmax(-1), ls.Flatten(0), ls.Flatten(-1, 0)],
                         ids=repr)
@SECOND_BACKEND
def test_scalar_inputs_pass_check_layer(layer):
    result = check_layer(layer, [()], settings=scaled_settings(0.1))
    assert all(result.counts[p] for p in "abdf"), result


@pytest.mark.torch
def test_flatten_and_softmax_of_a_scalar_fail_with_torch():
    import torch

    x = torch.tensor(2.5)
    for start, end in [(s, e) for s in range(-2, 2) for e in range(-2, 2)]:
        try:
            want: tuple[int, ...] | None = tuple(torch.flatten(x, start, end).shape)
        except IndexError:
            want = None
        try:
            got: tuple[int, ...] | None = ls.infer(ls.Flatten(start, end), ()).output.shape
        except ls.ShapeError:
            got = None
        assert got == want, (start, end)
    for dim in range(-2, 2):
        try:
            want = tuple(torch.softmax(x, dim).shape)
        except IndexError:
            want = None
        try:
            got = ls.infer(ls.Softmax(dim), ()).output.shape
        except ls.ShapeError:
            got = None
        assert got == want, dim


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_of_a_scalar_as_torch(backend):
    # was the known bug "softmax-0d": the rule rejected dim 0 / -1 on a 0-d input
    for dim in (0, -1):
        assert ls.infer(ls.Softmax(dim), ()).output.shape == ()
        y = ls.to_numpy(ls.build(ls.Softmax(dim), backend)(ls.asarray(np.float32(-3.0), backend)))
        assert y.shape == () and y.dtype == np.float32 and y == 1.0
    msg = (r"^Softmax at '0': `dim` in \[-1, 0\] for a 0-d input \(a scalar counts as 1-d, "
           r"as in torch\); got `dim` \(=1\) for input shape \(\)$")
    with pytest.raises(ls.ShapeError, match=msg):
        ls.infer(ls.Sequential(ls.Softmax(1)), ())
    with pytest.raises(ls.ShapeError, match=r"got `dim` \(=-2\) for input shape \(\)$"):
        ls.infer(ls.Softmax(-2), ())
    with pytest.raises(ls.ShapeError, match=r"floating"):
        ls.infer(ls.Softmax(0), ls.TensorSpec((), "int32"))


@pytest.mark.torch
def test_float64_input_into_a_float32_model_is_a_shape_error():
    # was the known bug "float-input-vs-param-dtype": the pass calls check_param_dtype
    msg = (r"^Linear at '0': floating-point inputs of the parameters' dtype float32; "
           r"got input dtype float64 \(cast it, or build the model with dtype='float64'\)")
    with pytest.raises(ls.ShapeError, match=msg):
        ls.infer(ls.Sequential(ls.Linear(3)), ls.TensorSpec((2, 4), "float64"))
    m = ls.build(ls.Sequential(ls.Linear(3)), "torch")
    with pytest.raises(ls.ShapeError, match=msg):  # not torch's RuntimeError
        m(ls.asarray(np.ones((2, 4)), "torch"))
    assert not m.initialized
    m64 = ls.build(ls.Sequential(ls.Linear(3)), "torch", dtype="float64")
    assert str(m64(ls.asarray(np.ones((2, 4)), "torch")).dtype) == "torch.float64"


@pytest.mark.torch
def test_conv_transpose_with_an_empty_output_fails_with_torchs_shape_check():
    # was the known bug "conv-transpose-empty-output": torch's oneDNN kernels
    # (float32 / bfloat16 CPU) return an empty tensor, but torch's own shape check
    # raises "Output size is too small" (the reference kernels: batch 1, float64;
    # meta for 1-d). lazyshape rejects it on every backend, before any computation;
    # the harness's torch oracle counts oneDNN's empty output as a Deviation.
    import torch
    from torch import nn

    layer = ls.ConvTranspose1d(1, 1, padding=1)
    msg = (r"^ConvTranspose1d at '0': an output size >= 1 in every spatial dim: .*; "
           r"got 0 for dim 2 of input shape \(2, 1, 2\)")  # JAX may append a note
    with pytest.raises(ls.ShapeError, match=msg):
        ls.infer(ls.Sequential(layer), (2, 1, 2))
    ref = nn.ConvTranspose1d(1, 1, 1, padding=1)
    for x in (torch.ones(1, 1, 2), torch.ones(2, 1, 2, dtype=torch.float64)):
        with pytest.raises(RuntimeError, match="Output size is too small"):
            ref.to(x.dtype)(x)
    for backend in ls.backends():
        m = ls.build(ls.Sequential(ls.ConvTranspose1d(1, 1, padding=1)), backend)
        with pytest.raises(ls.ShapeError, match=msg):
            m(ls.asarray(np.ones((2, 1, 2), np.float32), backend))
    torch_oracle = lt.entries()["ConvTranspose1d"].oracles[0]
    with pytest.raises(lt.Deviation, match=r"an empty spatial dim in \(2, 1, 0\)"):
        torch_oracle.fn(layer, (ls.TensorSpec((2, 1, 2)),))


_XLA_ABORT = """
import numpy as np, lazyshape as ls
layer = ls.ConvTranspose2d(1, (3, 2), (1, 2), (1, 1))
m = ls.build(layer, "jax", rng="portable")
print(m(ls.asarray(np.ones((1, 1, 2, 3), np.float32), "jax")).shape)
"""


@pytest.mark.jax
def test_conv_transpose_does_not_abort_xla():
    # was the known bug "xla-conv-transpose-abort"; in a subprocess: it aborted the
    # interpreter (more configurations, against torch: tests/test_conv.py)
    proc = subprocess.run([sys.executable, "-c", _XLA_ABORT], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-400:]
    assert proc.stdout.decode().split() == ["(1,", "1,", "2,", "4)"]


def test_negative_input_size_is_a_shape_error():
    with pytest.raises(ls.ShapeError, match=r"Input at 'input0': an input shape of non-negative ints, symbol names or None; got shape \(2, -1\) \(dims must be non-negative, got -1\)"):
        ls.infer(ls.Sequential(ls.Linear(3)), (2, -1))


# -- inputs found for layers that declare none ----------------------------------------


class StridedConv1d(ls.Layer):
    """A strided, dilated, padded 1-d convolution written with ``ls.ops.conv``:
    ``(N, C, L) -> (N, out, (L + 2p - d(k - 1) - 1)//s + 1)``; no declared inputs."""

    def __init__(self, out_channels, kernel_size, stride=1, dilation=1, padding=0):
        super().__init__()
        self.out_channels, self.kernel_size = out_channels, kernel_size
        self.stride, self.dilation, self.padding = stride, dilation, padding

    def output_spec(self, x):
        if len(x.shape) != 3:
            raise ls.ShapeError("an (N, C, L) input", f"shape {x.shape}")
        n, _, length = x.shape
        if isinstance(length, int) and length < 1:  # torch refuses it, padding or not
            raise ls.ShapeError("a non-empty length", f"length {length}")
        k, s, d, p = self.kernel_size, self.stride, self.dilation, self.padding
        out = (length + 2 * p - d * (k - 1) - 1) // s + 1
        if isinstance(out, int) and out < 1:
            raise ls.ShapeError("an input at least as long as the dilated kernel",
                                f"length {length}")
        return ls.TensorSpec((n, self.out_channels, out), None)

    def param_specs(self, x):
        return {"weight": ls.ParamSpec((self.out_channels, x.shape[1], self.kernel_size),
                                       init=ls.init.uniform(-0.1, 0.1))}

    def forward(self, params, x):
        p = self.padding
        return ls.ops.conv(x, params["weight"], None, (self.stride,), ((p, p),),
                           (self.dilation,))


STRIDED_HPARAMS = dict(out_channels=st.integers(1, 3), kernel_size=st.integers(1, 3),
                       stride=st.integers(1, 3), dilation=st.integers(1, 2),
                       padding=st.integers(0, 1))


class LastAxisMax(ls.Layer):
    """The maximum over the last axis of a rank-``rank`` input of at least 3 there."""

    has_params = False

    def __init__(self, rank):
        super().__init__()
        self.rank = rank

    def output_spec(self, x):
        if len(x.shape) != self.rank:
            raise ls.ShapeError(f"a rank-{self.rank} input", f"shape {x.shape}")
        if isinstance(x.shape[-1], int) and x.shape[-1] < 3:
            raise ls.ShapeError("at least 3 along the last axis", f"shape {x.shape}")
        return ls.TensorSpec(x.shape[:-1], x.dtype)

    def forward(self, params, x):
        return ls.ops.max(x, axis=-1)


def _accepted_share(result):
    """Of the examples drawn from undeclared inputs, the share the rule accepted."""
    drawn = result.counts["case:candidate"]
    return (drawn - result.counts.get("rejected:candidate", 0)) / drawn


@pytest.mark.parametrize("rank", [1, 3, 4, 5])
def test_undeclared_inputs_reach_the_properties_at_any_rank(rank):
    result = check_layer(lambda: LastAxisMax(rank), backends=["numpy"], max_examples=60,
                         properties="abce")
    assert result.counts["case:candidate"] >= 20, result
    assert _accepted_share(result) >= 0.8, result
    assert result.counts["a"] >= 0.9 * result.counts["case:candidate"], result
    assert 0 < result.rejected < 0.5  # probes: rejected now and then, counted


def test_a_strided_conv_with_undeclared_inputs_gets_long_enough_inputs():
    result = check_layer(StridedConv1d, hparams=STRIDED_HPARAMS, backends=["numpy"],
                         max_examples=60)
    assert _accepted_share(result) >= 0.8, result
    assert result.counts["a"] >= 0.9 * result.counts["case:candidate"], result  # (3 of 62 before)


def test_accepted_ranks_asks_the_rule():
    assert lt.strategies.accepted_ranks(ls.Linear(3, in_features=5)) == (
        1, {rank: (5,) for rank in range(1, 6)})
    arity, found = lt.strategies.accepted_ranks(StridedConv1d(2, 3, dilation=2))
    assert arity == 1 and list(found) == [3]
    assert found[3][0] == 5  # the dilated kernel's extent: the shortest accepted length
    sides = lt.strategies.PROBE_SIDES
    assert lt.strategies.accepted_ranks(ls.Add()) == (2, {  # two inputs; outputs kept small
        r: tuple(s for s in sides if s**r <= lt.strategies.MAX_ELEMENTS) if r else (1,)
        for r in range(6)})
    assert lt.strategies.accepted_inputs(LastAxisMax(7)) is None  # no probe is rank 7


# -- wrong rules of the strided conv: each must be caught ----------------------------------

MUTANTS = ("ceil", "no dilation", "padding once", "float32 always", "too short accepted",
           "length 1 rejected")


def _length(layer: StridedConv1d, length: Any, mutant: str) -> Any:
    k, s, d, p = layer.kernel_size, layer.stride, layer.dilation, layer.padding
    if mutant == "ceil":
        return -((-(length + 2 * p - d * (k - 1) - 1)) // s) + 1
    if mutant == "no dilation":
        return (length + 2 * p - (k - 1) - 1) // s + 1
    if mutant == "padding once":
        return (length + p - d * (k - 1) - 1) // s + 1
    return (length + 2 * p - d * (k - 1) - 1) // s + 1


def mutant(name: str) -> type[StridedConv1d]:
    """`StridedConv1d` with the wrong rule ``name``."""

    class Mutant(StridedConv1d):
        def output_spec(self, x: ls.TensorSpec) -> ls.TensorSpec:
            if len(x.shape) != 3:
                raise ls.ShapeError("an (N, C, L) input", f"shape {x.shape}")
            n, _, length = x.shape
            if isinstance(length, int) and length < 1:
                raise ls.ShapeError("a non-empty length", f"length {length}")
            out = _length(self, length, name)
            if name == "too short accepted" and isinstance(out, int):
                out = max(out, 1)
            if isinstance(out, int) and (out < 1 or name == "length 1 rejected" and out == 1):
                raise ls.ShapeError("an input long enough", f"length {length}")
            dtype = "float32" if name == "float32 always" else None
            return ls.TensorSpec((n, self.out_channels, out), dtype)

    Mutant.__name__ = Mutant.__qualname__ = "Mutant_" + name.replace(" ", "_")
    return Mutant


def declared_lengths(layer: Any) -> Any:
    """Valid inputs as the docs advise: ``(N, C, L)`` float32, L 6-12."""
    return st.tuples(st.builds(lambda n, c, length: ls.TensorSpec((n, c, length), "float32"),
                               st.integers(1, 3), st.integers(1, 3), st.integers(6, 12)))


@pytest.mark.torch  # (the edges are judged by torch's kernels)
@pytest.mark.parametrize("declared", [False, True], ids=["undeclared", "declared"])
@pytest.mark.parametrize("name", MUTANTS)
def test_a_wrong_rule_of_a_strided_conv_is_caught(name, declared):
    with pytest.raises(LayerCheckError):
        check_layer(mutant(name), declared_lengths if declared else None,
                    hparams=STRIDED_HPARAMS, backend_examples={"jax": 5})


@pytest.mark.torch
@pytest.mark.parametrize("declared", [False, True], ids=["undeclared", "declared"])
def test_the_right_rule_of_a_strided_conv_passes_at_its_edges(declared):
    result = check_layer(StridedConv1d, declared_lengths if declared else None,
                         hparams=STRIDED_HPARAMS, backend_examples={"jax": 5})
    assert result.counts["b:edges"] >= 0.5 * result.examples, result


@pytest.mark.torch
def test_an_edge_report_names_the_dim_and_both_sides():
    layer = mutant("length 1 rejected")(1, 3)
    with pytest.raises(LayerCheckError) as info:
        check_layer(layer, [(1, 1, 8)], properties="b")
    err = info.value
    assert "one below the smallest size the rule accepts" in err.problem
    assert "input 0 dim 2 = 3" in err.problem  # an output of length 1: the rule refuses it
    assert err.results["torch"] == "(1, 1, 1)" and "ShapeError" in err.results["rule"]


@pytest.mark.torch
def test_a_dtype_rule_is_checked_in_other_floating_dtypes():
    with pytest.raises(LayerCheckError) as info:
        check_layer(mutant("float32 always"), [(1, 2, 6)], hparams=STRIDED_HPARAMS,
                    properties="a", max_examples=5)
    err = info.value
    dtype = err.problem.rpartition("model and inputs in ")[2].rstrip(")")
    assert dtype in ("float64", "float16", "bfloat16"), err.problem
    assert err.results["rule"].endswith("float32")
    assert [v for k, v in err.results.items() if k != "rule"][0].endswith(dtype), err.results
    result = check_layer(StridedConv1d, [(1, 2, 6)], hparams=STRIDED_HPARAMS, properties="a",
                         max_examples=5)
    assert 0 < result.counts["a:dtypes"] <= result.counts["case:valid"]  # once per layer


class HalfBlind(StridedConv1d):
    """Right in every dtype but float16, where it answers float32."""

    def output_spec(self, x):
        out = super().output_spec(x)
        return ls.TensorSpec(out.shape, "float32") if x.dtype == "float16" else out


class IntBlind(ls.Layer):
    """``x * 0.5``: the rule follows the input's dtype, also for ints (wrong: the
    product of an int array and a Python float is floating on every backend)."""

    has_params = False

    def output_spec(self, x):
        return ls.TensorSpec(x.shape, x.dtype)

    def forward(self, params, x):
        return x * 0.5


@pytest.mark.torch
@pytest.mark.parametrize("layer, dtype", [(HalfBlind, "float16"), (IntBlind, "int")],
                         ids=["float16 only", "int inputs only"])
def test_every_dtype_is_probed_for_each_layer(layer, dtype):
    """One example is enough: each drawn layer runs in every model dtype and with
    its inputs in every probe dtype, so a rule wrong in one of them fails on
    every run, whatever the example."""
    with pytest.raises(LayerCheckError) as info:
        check_layer(layer, [(1, 2, 6)], hparams=STRIDED_HPARAMS if layer is HalfBlind else None,
                    max_examples=1, backends=["numpy", "torch"])
    assert info.value.property == "a" and dtype in info.value.problem, info.value


# -- the self-test: mutants of the author's own rule ------------------------------------


@pytest.mark.torch
def test_the_self_test_kills_every_mutant_of_a_well_checked_rule():
    report = lt.mutation_score(StridedConv1d, hparams=STRIDED_HPARAMS,
                               backend_examples={"jax": 5})
    assert report.survived == [] and report.score == 1.0, report
    assert set(report.killed) == {m.name for m in lt._mutation.MUTANTS}, report
    n = len(lt._mutation.MUTANTS)
    assert f"{n} of {n} mutants killed (100%)" in str(report)


def test_the_self_test_names_the_survivors_of_a_weak_check():
    # property (e) alone cannot see output shapes or dtypes
    report = lt.mutation_score(StridedConv1d, [(1, 2, 6)], hparams=STRIDED_HPARAMS,
                               properties="e", backends=["numpy"], max_examples=5)
    assert "out[-1]+1" in report.survived and "dtype float32" in report.survived, report
    assert report.score < 0.5
    assert "SURVIVED  out[-1]+1" in str(report)


def test_a_mutant_that_changes_nothing_is_not_a_survivor():
    report = lt.mutation_score(LastAxisMax, [(4,)], hparams={"rank": st.just(1)},
                               backends=["numpy"], max_examples=5, properties="a")
    # a rank-0 output has no dim to move; the layer has no parameter
    assert {"out[0]+1", "out[-1]-1", "param[0]+1"} <= set(report.not_applicable), report


#: built-in kinds whose rules the self-test mutates (one per family the harness must guard)
MUTATED_KINDS = ["Conv2d", "ConvTranspose1d", "MaxPool1d", "AdaptiveAvgPool2d", "Flatten",
                 "Reshape", "MultiheadAttention", "LSTM", "BatchNorm2d", "LayerNorm", "Embedding",
                 "Add", "Concat"]


@SECOND_BACKEND
def test_every_mutant_of_the_builtin_rules_is_killed(capsys):
    s, budget = _budget()
    reports = [lt.mutation_score(lt.entries()[kind].layer_type, settings=s,
                                 backend_examples=budget) for kind in MUTATED_KINDS]
    killed = sum(len(r.killed) for r in reports)
    applicable = killed + sum(len(r.survived) for r in reports)
    with capsys.disabled():  # the kill rate, in the output of `make test`
        print(f"\nself-test of {len(reports)} built-in rules: {killed} of {applicable} "
              f"mutants killed ({killed / applicable:.0%})")
    assert applicable >= 30
    assert [(r.kind, r.survived) for r in reports if r.survived] == []


# -- the harness's own probes against the framework ------------------------------------------


def _torch_accepts(kind, hp, length):
    """Whether torch's functional op takes a (1, 2, length) input with these
    hyperparameters and gives a non-empty output."""
    import torch
    import torch.nn.functional as F

    x = torch.zeros(1, 2, length)
    try:
        if kind == "Conv1d":
            y = F.conv1d(x, torch.zeros(3, 2, hp["kernel_size"]), None, hp["stride"],
                         hp["padding"], hp["dilation"])
        elif kind == "ConvTranspose1d":
            y = F.conv_transpose1d(x, torch.zeros(2, 3, hp["kernel_size"]), None, hp["stride"],
                                   hp["padding"], hp["output_padding"], 1, hp["dilation"])
        else:
            y = F.max_pool1d(x, hp["kernel_size"], hp["stride"], hp["padding"], hp["dilation"],
                             hp["ceil_mode"])
    except RuntimeError:
        return False
    return y.numel() > 0


@st.composite
def _edge_cases(draw):
    kind = draw(st.sampled_from(["Conv1d", "ConvTranspose1d", "MaxPool1d"]))
    k = draw(st.integers(1, 5))
    hp = {"kernel_size": k, "stride": draw(st.integers(1, 3)), "dilation": draw(st.integers(1, 3))}
    if kind == "MaxPool1d":
        hp.update(padding=draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans()))
        layer = ls.MaxPool1d(**hp)
    elif kind == "Conv1d":
        hp.update(padding=draw(st.integers(0, 3)))
        layer = ls.Conv1d(3, **hp)
    else:
        hp.update(padding=draw(st.integers(0, 3)))
        hp.update(output_padding=draw(st.integers(0, max(hp["stride"], hp["dilation"]) - 1)))
        layer = ls.ConvTranspose1d(3, **hp)
    return kind, hp, layer


@pytest.mark.torch
@given(_edge_cases())
def test_the_edge_the_harness_finds_is_torchs(case):
    """`smallest_accepted` (the boundary probes' search) lands on the smallest
    length torch takes, for convolutions, transposed convolutions and pools at
    random hyperparameters."""
    from lazyshape.testing._boundary import smallest_accepted

    kind, hp, layer = case
    start = (ls.TensorSpec((1, 2, 64), "float32"),)
    edge = smallest_accepted(layer, start, 0, 2)
    torch_edge = next(n for n in range(65) if _torch_accepts(kind, hp, n))
    assert edge == torch_edge, (kind, hp)


# -- verdicts that don't depend on the run -------------------------------------------


def test_a_run_that_is_not_derandomized_names_its_seed_and_replays_from_it():
    from hypothesis import settings

    s = settings(max_examples=30, derandomize=False, database=None)
    with pytest.raises(LayerCheckError) as info:
        check_layer(mutant("ceil"), hparams=STRIDED_HPARAMS, backends=["numpy"], settings=s)
    seed = info.value.hypothesis_seed
    assert isinstance(seed, int) and f"hypothesis_seed={seed}) replays them" in str(info.value)
    replays = []
    for _ in range(2):
        with pytest.raises(LayerCheckError) as again:
            check_layer(mutant("ceil"), hparams=STRIDED_HPARAMS, backends=["numpy"], settings=s,
                        hypothesis_seed=seed)
        replays.append((again.value.inputs, again.value.problem))
    assert replays[0] == replays[1] == (info.value.inputs, info.value.problem)
    # a passing run too: the same draws, the same counts
    a, b = (check_layer(StridedConv1d, hparams=STRIDED_HPARAMS, backends=["numpy"], settings=s,
                        hypothesis_seed=7) for _ in range(2))
    assert a.hypothesis_seed == 7 and a.counts == b.counts
    derandomized = settings(s, derandomize=True)
    assert check_layer(StridedConv1d, hparams=STRIDED_HPARAMS, backends=["numpy"],
                       settings=derandomized).hypothesis_seed is None
