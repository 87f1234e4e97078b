"""One conformance suite, run against every backend: output shapes equal the
inferred ones; portable init gives bit-identical weights; outputs agree; the
build contract (placeholders, materialize, state dicts, shape changes) holds.

CI installs torch and JAX, so every backend runs there."""

from __future__ import annotations

import numpy as np
import pytest

import lazyshape as ls
from lazyshape._demo import CustomLinear

BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]


def _two_inputs(merge):
    def make():
        a = ls.Input(("B", 6))
        b = ls.Input(("B", 6))
        return ls.Model([a, b], merge()(ls.Linear(6, name="fa")(a), b))

    return make


def _seq(*layers_fn):
    return lambda: ls.Sequential(*(f() for f in layers_fn))


LAYER_CASES = {
    "linear": (_seq(lambda: ls.Linear(7)), [(3, 5)]),
    "linear_3d_no_bias": (_seq(lambda: ls.Linear(4, bias=False)), [(2, 3, 5)]),
    "identity": (_seq(ls.Identity), [(3, 5)]),
    "dropout_eval": (_seq(lambda: ls.Dropout(0.3)), [(3, 5)]),
    "flatten": (_seq(ls.Flatten, lambda: ls.Linear(3)), [(2, 3, 4, 5)]),
    "flatten_mid": (_seq(lambda: ls.Flatten(1, 2)), [(2, 3, 4, 5)]),
    "unflatten": (_seq(lambda: ls.Unflatten(1, (3, -1))), [(2, 12)]),
    "reshape": (_seq(lambda: ls.Reshape(4, -1)), [(2, 8, 3)]),
    # a -1 filled from a sample (an empty batch), and from the dim (an empty array)
    "reshape_empty_batch": (_seq(lambda: ls.Reshape(4, -1)), [(0, 8, 3)]),
    "unflatten_empty": (_seq(lambda: ls.Unflatten(1, (3, -1))), [(2, 0)]),
    "relu": (_seq(lambda: ls.Linear(6), ls.ReLU), [(3, 5)]),
    "gelu": (_seq(lambda: ls.Linear(6), ls.GELU), [(3, 5)]),
    "gelu_tanh": (_seq(lambda: ls.Linear(6), lambda: ls.GELU("tanh")), [(3, 5)]),
    "tanh": (_seq(lambda: ls.Linear(6), ls.Tanh), [(3, 5)]),
    "sigmoid": (_seq(lambda: ls.Linear(6), ls.Sigmoid), [(3, 5)]),
    "silu": (_seq(lambda: ls.Linear(6), ls.SiLU), [(3, 5)]),
    "leaky_relu": (_seq(lambda: ls.Linear(6), lambda: ls.LeakyReLU(0.2)), [(3, 5)]),
    "softmax": (_seq(lambda: ls.Linear(6), lambda: ls.Softmax(1)), [(3, 5)]),
    "add": (_two_inputs(ls.Add), [(3, 6), (3, 6)]),
    "multiply": (_two_inputs(ls.Multiply), [(3, 6), (3, 6)]),
    "concat": (_two_inputs(lambda: ls.Concat(dim=1)), [(3, 6), (3, 6)]),
    "custom_linear": (_seq(lambda: CustomLinear(4), ls.ReLU), [(3, 5)]),
    "nested": (_seq(lambda: ls.Sequential(ls.Linear(8), ls.Tanh()), lambda: ls.Linear(2)), [(3, 5)]),
}


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_conformance(backend, case):
    make, shapes = LAYER_CASES[case]
    xs = _inputs(shapes)
    inferred = ls.infer(make(), *shapes)
    m = ls.build(make(), backend, rng="portable", seed=7)
    if hasattr(m, "eval"):  # a torch model starts in training mode, as nn.Module does
        m.eval()
    out = m(*(ls.asarray(x, backend) for x in xs))
    y = ls.to_numpy(out)
    assert y.shape == tuple(inferred.output.shape)
    assert str(y.dtype) == inferred.output.dtype
    # the NumPy backend is the reference: same portable weights, same outputs
    ref = ls.build(make(), "numpy", rng="portable", seed=7)
    expected = ref(*xs)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    state = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
    assert list(state) == list(inferred.params)
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(state[name], value)
        assert state[name].shape == tuple(inferred.params[name].shape)
        assert str(state[name].dtype) == inferred.params[name].dtype


@pytest.mark.parametrize("backend", BACKENDS)
def test_build_contract(backend, tmp_path):
    net = ls.Sequential(ls.Linear(256), ls.ReLU(), ls.Linear(10, in_features=256))
    m = ls.build(net, backend, seed=0)
    assert not m.initialized
    placeholders = m.state_dict()
    assert list(placeholders) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    if backend != "torch":  # torch shows its own UninitializedParameter (see its tests)
        assert repr(placeholders["0.weight"]) == "<Uninitialized (256, ?) float32>"
    m.materialize(("B", 20))
    assert m.initialized
    weights = {k: ls.to_numpy(v).copy() for k, v in m.state_dict().items()}
    assert weights["0.weight"].shape == (256, 20)
    y = m(ls.asarray(_inputs([(4, 20)])[0], backend))
    assert tuple(y.shape) == (4, 10)
    with pytest.raises(ls.ShapeError, match=r"Linear at '0': inputs that keep the materialized parameter shapes \(on_shape_change='error'.*got `0.weight` materialized as \(256, 20\), these inputs need \(256, 30\)"):
        m(ls.asarray(_inputs([(4, 30)])[0], backend))
    for k, v in m.state_dict().items():  # unchanged
        np.testing.assert_array_equal(ls.to_numpy(v), weights[k])
    with pytest.raises(ls.ShapeError, match=r"Linear at '0': expected a floating-point input; got dtype int32"):
        m(ls.asarray(np.zeros((4, 20), np.int32), backend))

    # checkpoints: safetensors, canonical names, loadable into another backend
    path = tmp_path / "mlp.safetensors"
    ls.save(m, path)
    state = ls.load(path)
    assert set(state) == set(weights)
    other = ls.build(net, "numpy")
    other.load_state_dict(state)
    assert other.initialized
    np.testing.assert_allclose(other(_inputs([(4, 20)])[0]), ls.to_numpy(y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_state_dict_checks_before_changing_anything(backend):
    net = ls.Sequential(ls.Linear(8), ls.ReLU(), ls.Linear(3))
    source = ls.build(net, "numpy", seed=1).materialize((2, 5))
    state = source.state_dict()
    fresh = ls.build(net, backend)
    bad = dict(state)
    bad["2.weight"] = np.zeros((3, 9), np.float32)
    with pytest.raises(ls.ShapeError, match=r"Linear at '2': `2.weight` of shape \(3, 8\); got shape \(3, 9\)"):
        fresh.load_state_dict(bad)
    assert not fresh.initialized
    with pytest.raises(ls.ShapeError, match=r"a state with exactly the model's parameter names; got missing \['2.bias'\], unexpected \[\]"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "2.bias"})
    assert not fresh.initialized
    fresh.load_state_dict(state)  # materializes from the checkpoint's shapes
    assert fresh.initialized
    x = _inputs([(2, 5)])[0]
    np.testing.assert_allclose(ls.to_numpy(fresh(ls.asarray(x, backend))), source(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reinit_on_shape_change_reinitializes_only_changed_parameters(backend):
    net = ls.Sequential(ls.Linear(6), ls.ReLU(), ls.Linear(2, in_features=6))
    m = ls.build(net, backend, seed=0, on_shape_change="reinit")
    m.materialize((2, 4))
    before = {k: ls.to_numpy(v).copy() for k, v in m.state_dict().items()}
    y = m(ls.asarray(_inputs([(2, 9)])[0], backend))
    assert tuple(y.shape) == (2, 2)
    after = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
    assert after["0.weight"].shape == (6, 9)
    np.testing.assert_array_equal(after["2.weight"], before["2.weight"])
    np.testing.assert_array_equal(after["2.bias"], before["2.bias"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_unresolved_parameters_cannot_materialize(backend):
    m = ls.build(ls.Sequential(ls.Flatten(), ls.Linear(3)), backend)
    with pytest.raises(ls.ShapeError, match=r"Sequential: concrete parameter shapes to materialize; got `1.weight` of shape \(3, 3\*H\) needs H"):
        m.materialize(("B", 3, "H"))
    assert not m.initialized


def test_unknown_backend_lists_installed_ones_and_the_extra():
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow'; installed backends: \['numpy'"):
        ls.build(ls.Linear(2), "tensorflow")
    with pytest.raises(ValueError, match=r'pip install "lazyshape\[tensorflow\]"'):
        ls.build(ls.Linear(2), "tensorflow")


def test_ops_dispatch_on_numpy_arrays():
    x = np.array([[-1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(ls.ops.relu(x), [[0.0, 2.0]])
    np.testing.assert_allclose(ls.ops.softmax(x).sum(), 1.0, rtol=1e-6)
    assert ls.ops.matmul(x, ls.ops.permute_dims(x, (1, 0))).shape == (1, 1)
    assert ls.ops.tensordot(x, x.T, axes=1).shape == (1, 1)  # any array-API name
    assert ls.ops.tensordot is ls.ops.tensordot  # made once, then a plain attribute
    with pytest.raises(TypeError, match="no installed lazyshape backend handles arrays of type builtins.list"):
        ls.ops.relu([1.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bare_multi_input_layer_builds(backend):
    m = ls.build(ls.Add(), backend)
    x, y = _inputs([(2, 3), (2, 3)])
    np.testing.assert_allclose(ls.to_numpy(m(ls.asarray(x, backend), ls.asarray(y, backend))), x + y, rtol=1e-6)


def test_specs_copy_and_pickle_by_value():
    import copy
    import pickle

    spec = ls.TensorSpec(("B", 3))
    pspec = ls.ParamSpec((3, 4), "float32", ls.init.ones(), trainable=False)
    assert copy.deepcopy(spec) == spec and pickle.loads(pickle.dumps(pspec)) == pspec
    model = ls.build(ls.Sequential(ls.Linear(2)), "numpy").materialize((1, 3))
    clone = copy.deepcopy(model)
    np.testing.assert_array_equal(clone.state_dict()["0.weight"], model.state_dict()["0.weight"])


# -- the NumPy forward: steps bound at materialization ---------------------------


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_numpy_bound_steps_equal_each_layers_forward(case):
    """The NumPy model binds built-in layers to its own ops at materialization;
    the outputs are bit-identical to running every layer's ``forward`` (through
    ``ls.ops``) over the same params."""
    from lazyshape._layer import Context
    from lazyshape._runtime import pack_outputs, run_program

    make, shapes = LAYER_CASES[case]
    xs = _inputs(shapes, seed=3)
    m = ls.build(make(), "numpy", seed=5)
    y = m(*xs)
    rt = m._rt
    ref = run_program(rt.program, rt.node_params(m.params), xs, Context(training=False))
    np.testing.assert_array_equal(y, pack_outputs(rt.program, ref))
    np.testing.assert_array_equal(m(*xs), y)  # the second call takes the hot path


def test_numpy_forward_resolves_ops_once_and_custom_layers_still_dispatch(monkeypatch):
    x = _inputs([(3, 5)])[0]
    builtin = ls.build(ls.Sequential(ls.Linear(8), ls.ReLU(), ls.Tanh(), ls.Linear(2)), "numpy",
                       seed=0)
    custom = ls.build(ls.Sequential(CustomLinear(4), ls.ReLU()), "numpy", seed=0)
    expected, expected_custom = builtin(x), custom(x)
    calls = []

    def fail(*args, **kwargs):
        raise AssertionError("ls.ops called on the NumPy hot path")

    matmul = ls.ops.matmul

    def counting_matmul(*args):
        calls.append("matmul")
        return matmul(*args)

    for name in ("linear", "relu", "tanh"):
        monkeypatch.setattr(ls.ops, name, fail)
    monkeypatch.setattr(ls.ops, "matmul", counting_matmul)
    np.testing.assert_array_equal(builtin(x), expected)
    np.testing.assert_array_equal(custom(x), expected_custom)  # its forward, via ls.ops
    assert calls == ["matmul"]


def test_numpy_subclass_of_a_builtin_layer_runs_its_own_forward():
    class Doubled(ls.Linear):
        def forward(self, params, x):
            return 2 * super().forward(params, x)

    x = _inputs([(3, 5)])[0]
    plain = ls.build(ls.Sequential(ls.Linear(4)), "numpy", seed=1)
    doubled = ls.build(ls.Sequential(Doubled(4)), "numpy", seed=1)
    np.testing.assert_array_equal(doubled(x), 2 * plain(x))


def test_numpy_bound_steps_follow_new_params_and_input_counts():
    x = _inputs([(2, 5)])[0]
    m = ls.build(ls.Sequential(ls.Linear(3), ls.ReLU()), "numpy", seed=0)
    before = m(x)
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    m.load_state_dict(state)  # rebinds: the steps hold the new arrays
    np.testing.assert_array_equal(m(x), np.maximum(x @ state["0.weight"].T + state["0.bias"], 0))
    assert not np.array_equal(m(x), before)
    # a bare Add recompiles its program for each input count it is called with
    add = ls.build(ls.Add(), "numpy")
    a, b, c = _inputs([(2, 3)] * 3)
    np.testing.assert_array_equal(add(a, b), a + b)
    np.testing.assert_array_equal(add(a, b, c), a + b + c)
    np.testing.assert_array_equal(add(a, b), a + b)
