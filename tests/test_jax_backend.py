"""The JAX backend: pure init/apply (jit, grad, vmap), the stateful model,
randomness, shapes against `ls.infer`, errors and checkpoints."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import lazyshape as ls
from lazyshape._backends import backend_for

try:
    import jax
    import jax.numpy as jnp
except ModuleNotFoundError as e:  # the tests skip without JAX (tests/conftest.py)
    if e.name not in ("jax", "jaxlib"):
        raise
    jax = jnp = None

pytestmark = pytest.mark.jax

KEY = jax.random.key(0) if jax else None


def mlp() -> ls.Sequential:
    return ls.Sequential(ls.Linear(32), ls.ReLU(), ls.Linear(10))


def batch(*shape: int, seed: int = 0) -> Any:
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def shapes(tree: Any) -> Any:
    return jax.tree.map(jnp.shape, tree)


class CustomLinear(ls.Layer):
    """API.md's custom layer, verbatim."""

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features

    def output_spec(self, x: ls.TensorSpec) -> ls.TensorSpec:
        return ls.TensorSpec((*x.shape[:-1], self.out_features), x.dtype)

    def param_specs(self, x: ls.TensorSpec) -> dict[str, ls.ParamSpec]:
        return {
            "weight": ls.ParamSpec(
                (self.out_features, x.shape[-1]),
                init=ls.init.kaiming_uniform(a=0, mode="fan_in", nonlinearity="relu"),
            ),
            "bias": ls.ParamSpec((self.out_features,), init=ls.init.zeros()),
        }

    def forward(self, params: Any, x: Any) -> Any:
        return ls.ops.matmul(x, ls.ops.permute_dims(params["weight"], (1, 0))) + params["bias"]


class Inits(ls.Layer):
    """A layer with one parameter per primitive initializer."""

    def output_spec(self, x: ls.TensorSpec) -> ls.TensorSpec:
        return x

    def param_specs(self, x: ls.TensorSpec) -> dict[str, ls.ParamSpec]:
        n = x.shape[-1]
        return {
            "orth": ls.ParamSpec((n, 2 * n), init=ls.init.orthogonal(gain=2.0)),
            "tall": ls.ParamSpec((2 * n, n), init=ls.init.orthogonal()),
            "trunc": ls.ParamSpec((50, n), init=ls.init.trunc_normal(1.0, 2.0, a=0.5, b=1.5)),
            "normal": ls.ParamSpec((500, n), init=ls.init.normal(3.0, 0.5)),
            "uniform": ls.ParamSpec((500, n), init=ls.init.uniform(-2.0, -1.0)),
            "const": ls.ParamSpec((n,), init=ls.init.constant(0.25)),
        }

    def forward(self, params: Any, x: Any) -> Any:
        return x


# -- the package and dispatch ---------------------------------------------------


def test_importing_the_backend_does_not_import_jax() -> None:
    code = (
        "import sys, lazyshape as ls, lazyshape_jax\n"
        "assert 'jax' in ls.backends(), ls.backends()\n"
        "assert lazyshape_jax.BACKEND.available()\n"
        "assert 'jax' not in sys.modules and 'jaxlib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_is_registered() -> None:
    from lazyshape._backends import get_backend

    backend = get_backend("jax")
    assert backend.name == "jax"
    assert backend.array_modules == ("jax", "jaxlib")


def test_arrays_and_tracers_dispatch_to_jax() -> None:
    seen: list[str] = []

    def record(x: Any) -> Any:
        seen.append(backend_for(x).name)
        return x.sum()

    x = jnp.ones((2, 3))
    record(x)  # jax.Array: jaxlib's ArrayImpl
    jax.jit(record)(x)  # DynamicJaxprTracer
    jax.grad(record)(x)  # JVPTracer
    jax.vmap(record)(x)  # BatchTracer
    assert seen == ["jax"] * 4
    assert ls.ops.relu(-x).sum() == 0


# -- pure init / apply -----------------------------------------------------------


def test_jit_apply_equals_eager_apply_and_stateful_call() -> None:
    m = ls.build(mlp(), "jax", seed=7)
    x = batch(4, 20)
    variables = m.init(jax.random.key(7), x)
    assert not m.initialized  # init is pure
    assert shapes(variables) == {"params": {  # no buffers: no "batch_stats"
        "0": {"weight": (32, 20), "bias": (32,)},
        "2": {"weight": (10, 32), "bias": (10,)},
    }}
    eager = m.apply(variables, x)
    jitted = jax.jit(m.apply)(variables, x)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)
    # m(x) initializes with the key of its seed: the same params as init
    np.testing.assert_allclose(m(x), eager, rtol=1e-6, atol=1e-6)
    for name, value in m.state_dict().items():
        prefix, leaf = name.split(".")
        np.testing.assert_array_equal(value, variables["params"][prefix][leaf])


def test_init_from_shapes_and_specs_matches_init_from_arrays() -> None:
    m = ls.build(mlp(), "jax")
    a = m.init(KEY, batch(3, 20))
    b = m.init(KEY, (None, 20))
    c = m.init(KEY, ls.TensorSpec(("B", 20)))
    assert jax.tree.all(jax.tree.map(lambda u, v, w: bool((u == v).all() & (v == w).all()), a, b, c))
    assert not m.initialized
    assert isinstance(m.state_dict()["0.weight"], ls.Placeholder)


def test_init_under_jit() -> None:
    m = ls.build(mlp(), "jax")
    x = batch(2, 20)
    jitted = jax.jit(m.init)(KEY, x)
    eager = m.init(KEY, x)
    jax.tree.map(np.testing.assert_array_equal, jitted, eager)


def test_grad_has_params_structure_and_sgd_reduces_loss() -> None:
    m = ls.build(mlp(), "jax")
    x, target = batch(16, 20, seed=1), batch(16, 10, seed=2)
    params = m.init(KEY, x)["params"]

    def loss(p: Any) -> Any:
        return jnp.mean((m.apply({"params": p}, x) - target) ** 2)

    grads = jax.grad(loss)(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert shapes(grads) == shapes(params)

    step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - 0.1 * g, p, jax.grad(loss)(p)))
    losses = [float(loss(params))]
    for _ in range(5):
        params = step(params)
        losses.append(float(loss(params)))
    assert losses[-1] < losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))


def test_vmap_over_an_extra_leading_axis() -> None:
    m = ls.build(mlp(), "jax")
    params = m.init(KEY, (2, 20))
    xs = batch(5, 2, 20)
    ys = jax.vmap(lambda x: m.apply(params, x))(xs)
    assert ys.shape == (5, 2, 10)
    np.testing.assert_allclose(ys[3], m.apply(params, xs[3]), rtol=1e-6, atol=1e-6)
    # an ensemble: vmap over keys and params
    ens = jax.vmap(lambda k: m.init(k, (2, 20)))(jax.random.split(KEY, 3))
    assert ens["params"]["0"]["weight"].shape == (3, 32, 20)
    assert jax.vmap(m.apply, in_axes=(0, None))(ens, xs[0]).shape == (3, 2, 10)


def test_apply_accepts_numpy_inputs_and_flat_params() -> None:
    m = ls.build(mlp(), "jax")
    x = np.ones((2, 20), np.float32)
    variables = m.init(KEY, x)
    flat = {f"{k}.{leaf}": v for k, sub in variables["params"].items() for leaf, v in sub.items()}
    np.testing.assert_array_equal(m.apply({"params": flat}, x), m.apply(variables, jnp.asarray(x)))


def test_nested_shared_and_multi_output_models() -> None:
    x = ls.Input(("B", 6))
    enc = ls.Sequential(ls.Linear(8), ls.Tanh(), name="enc")
    shared = ls.Linear(8, name="shared")
    h = shared(shared(enc(x)))
    model = ls.Model(x, [h, ls.Linear(2, name="head")(h)])
    m = ls.build(model, "jax")
    params = m.init(KEY, (3, 6))["params"]
    assert shapes(params) == {
        "enc": {"0": {"weight": (8, 6), "bias": (8,)}},
        "shared": {"weight": (8, 8), "bias": (8,)},
        "head": {"weight": (2, 8), "bias": (2,)},
    }
    xs = batch(3, 6)
    h_out, y = jax.jit(m.apply)({"params": params}, xs)
    assert (h_out.shape, y.shape) == ((3, 8), (3, 2))
    e = jnp.tanh(xs @ params["enc"]["0"]["weight"].T + params["enc"]["0"]["bias"])
    for _ in range(2):
        e = e @ params["shared"]["weight"].T + params["shared"]["bias"]
    np.testing.assert_allclose(h_out, e, rtol=1e-5, atol=1e-5)
    assert len(m(xs)) == 2
    assert sorted(m.state_dict()) == sorted(
        ["enc.0.weight", "enc.0.bias", "shared.weight", "shared.bias", "head.weight", "head.bias"]
    )


def test_stateful_call_takes_arrays() -> None:
    m = ls.build(mlp(), "jax")
    with pytest.raises(TypeError, match=r"called on arrays; got list"):
        m([[1.0] * 20])
    assert m(np.ones((2, 20), np.float32)).shape == (2, 10)


# -- randomness ---------------------------------------------------------------


def _branches(first: str) -> ls.Model:
    """Two named branches; ``first`` is created (and recorded) first."""
    x = ls.Input(("B", 6))
    made = {}
    for name in (first, "b" if first == "a" else "a"):
        made[name] = ls.Linear(4, name=name)(x)
    return ls.Model(x, ls.Add()(made["a"], made["b"]))


def test_keys_do_not_depend_on_construction_order() -> None:
    p1 = ls.build(_branches("a"), "jax").init(KEY, (2, 6))
    p2 = ls.build(_branches("b"), "jax").init(KEY, (2, 6))
    jax.tree.map(np.testing.assert_array_equal, p1, p2)
    # nor on which other parameters exist: a parameter's key is (key, its path)
    small = ls.build(ls.Sequential(ls.Linear(8), ls.Linear(3)), "jax").init(KEY, (2, 5))
    big = ls.build(ls.Sequential(ls.Linear(8), ls.Linear(7)), "jax").init(KEY, (2, 5))
    jax.tree.map(np.testing.assert_array_equal, small["params"]["0"], big["params"]["0"])


def test_different_keys_and_seeds_differ() -> None:
    m = ls.build(mlp(), "jax")
    a = m.init(jax.random.key(0), (2, 20))["params"]["0"]["weight"]
    b = m.init(jax.random.key(1), (2, 20))["params"]["0"]["weight"]
    assert not np.array_equal(a, b)
    # raw uint32 keys and typed keys give the same values
    np.testing.assert_array_equal(m.init(jax.random.PRNGKey(0), (2, 20))["params"]["0"]["weight"],
                                  a)
    s1 = ls.build(mlp(), "jax", seed=1).materialize((2, 20)).state_dict()["0.weight"]
    s2 = ls.build(mlp(), "jax", seed=2).materialize((2, 20)).state_dict()["0.weight"]
    s1_again = ls.build(mlp(), "jax", seed=1).materialize((2, 20)).state_dict()["0.weight"]
    assert not np.array_equal(s1, s2)
    np.testing.assert_array_equal(s1, s1_again)


def test_default_init_matches_pytorch_bounds() -> None:
    params = ls.build(ls.Linear(64), "jax").init(KEY, (2, 100))["params"]
    bound = 1 / math.sqrt(100)  # kaiming_uniform(a=sqrt(5)) and the bias default
    for leaf in ("weight", "bias"):
        v = np.asarray(params[leaf])
        assert v.dtype == np.float32
        assert v.min() >= -bound and v.max() <= bound
        assert v.max() > 0.8 * bound and v.min() < -0.8 * bound


def test_every_primitive_initializer() -> None:
    p = ls.build(Inits(), "jax").init(KEY, (1, 8))["params"]
    orth, tall = np.asarray(p["orth"], np.float64), np.asarray(p["tall"], np.float64)
    np.testing.assert_allclose(orth @ orth.T, 4.0 * np.eye(8), atol=1e-4)
    np.testing.assert_allclose(tall.T @ tall, np.eye(8), atol=1e-4)
    trunc = np.asarray(p["trunc"])
    assert trunc.min() >= 0.5 and trunc.max() <= 1.5 and trunc.std() > 0.1
    normal = np.asarray(p["normal"])
    assert abs(normal.mean() - 3.0) < 0.05 and abs(normal.std() - 0.5) < 0.05
    uniform = np.asarray(p["uniform"])
    assert uniform.min() >= -2.0 and uniform.max() <= -1.0
    np.testing.assert_array_equal(p["const"], np.full(8, 0.25, np.float32))


def test_portable_rng_matches_the_numpy_backend() -> None:
    x = np.random.default_rng(0).standard_normal((3, 20)).astype(np.float32)
    ref = ls.build(mlp(), "numpy", rng="portable", seed=3)
    m = ls.build(mlp(), "jax", rng="portable", seed=3)
    y_ref, y = ref(x), m(jnp.asarray(x))
    jax_state = m.state_dict()
    assert list(jax_state) == list(ref.state_dict())
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(np.asarray(jax_state[name]), value)
    np.testing.assert_allclose(np.asarray(y), y_ref, atol=1e-5, rtol=1e-5)
    # the pure init gives the same portable values (the key is not used)
    params = m.init(jax.random.key(99), x)["params"]
    np.testing.assert_array_equal(params["2"]["weight"], ref.state_dict()["2.weight"])


def _draw_as_defined(prim: Any, shape: tuple[int, ...], dtype: Any, key: Any, name: str) -> Any:
    """A native parameter's value as the JAX backend defines it, written out
    independently: ``fold_in(key, crc32(path))``, one n-d draw in float32,
    rounded once to the parameter's dtype."""
    import zlib

    from lazyshape._init import Constant, Normal, Orthogonal, TruncNormal, Uniform

    if isinstance(prim, Constant):
        return jnp.full(shape, prim.val, dtype)
    k = jax.random.fold_in(key, np.uint32(zlib.crc32(name.encode())))
    if isinstance(prim, Uniform):
        out = jax.random.uniform(k, shape, jnp.float32, prim.a, prim.b)
    elif isinstance(prim, Normal):
        out = prim.mean + prim.std * jax.random.normal(k, shape, jnp.float32)
    elif isinstance(prim, TruncNormal):
        lo, hi = (prim.a - prim.mean) / prim.std, (prim.b - prim.mean) / prim.std
        out = prim.mean + prim.std * jax.random.truncated_normal(k, lo, hi, shape, jnp.float32)
    else:
        assert isinstance(prim, Orthogonal)
        rows, cols = shape[0], math.prod(shape[1:])
        flat = jax.random.normal(k, (rows, cols), jnp.float32)
        flat = flat.T if rows < cols else flat
        q, r = jnp.linalg.qr(flat)
        q = q * jnp.sign(jnp.diag(r))
        out = (prim.gain * (q.T if rows < cols else q)).reshape(shape)
    return out.astype(dtype)


class Thirds(ls.Layer):
    """A constant that no float format holds exactly (rounded once, on the host)."""

    def output_spec(self, x: ls.TensorSpec) -> ls.TensorSpec:
        return x

    def param_specs(self, x: ls.TensorSpec) -> dict[str, ls.ParamSpec]:
        return {"third": ls.ParamSpec((x.shape[-1],), init=ls.init.constant(1 / 3))}

    def forward(self, params: Any, x: Any) -> Any:
        return x


@pytest.mark.parametrize(("dtype", "first"), [("float32", Inits), ("bfloat16", Thirds)])
def test_native_values_are_each_parameters_own_draw(dtype: str, first: Any) -> None:
    """Parameters drawn together (repeated shapes share a compiled sampler) get
    exactly the value each gets alone from its path's key, for every primitive."""
    from lazyshape_jax.model import flatten_variables

    m = ls.build(ls.Sequential(first(), ls.Linear(8), ls.Linear(8), ls.Linear(8)), "jax",
                 dtype=dtype)
    flat = flatten_variables(m.init(KEY, (1, 8)))
    inf = m._rt.resolve_pure(((1, 8),))
    plan = list(m._rt.primitives(inf.params, list(inf.params)))
    assert list(flat) == [name for name, *_ in plan]
    expected = jax.jit(lambda key: {  # all at once, as the backend drew them before
        name: _draw_as_defined(prim, shape, jnp.dtype(dtype), key, name)
        for name, shape, _, prim in plan
    })(KEY)
    for name, value in flat.items():
        assert value.dtype == jnp.dtype(dtype), name
        np.testing.assert_array_equal(np.asarray(value, np.float32),
                                      np.asarray(expected[name], np.float32), err_msg=name)


def test_native_init_under_jit_and_vmap() -> None:
    m = ls.build(ls.Sequential(ls.Linear(4), ls.LayerNorm(), ls.Linear(4)), "jax")
    params = m.init(KEY, (1, 4))
    jax.tree.map(np.testing.assert_array_equal, jax.jit(lambda k: m.init(k, (1, 4)))(KEY), params)
    keys = jax.random.split(KEY, 2)
    batched = jax.vmap(lambda k: m.init(k, (1, 4)))(keys)  # an ensemble's params
    for i in range(2):
        jax.tree.map(lambda b, p, i=i: np.testing.assert_array_equal(b[i], p),
                     batched, m.init(keys[i], (1, 4)))


def test_materializing_more_layers_of_known_kinds_compiles_nothing() -> None:
    """A parameter of a (primitive, shape, dtype) already drawn reuses its
    compiled sampler: materializing 40 layers after 2 of the same kinds compiles
    no program, so the time grows linearly with the parameter count."""
    compiles: list[str] = []

    def listen(event: str, duration: float, **kwargs: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    def stack(n: int) -> ls.Sequential:
        return ls.Sequential(*[ls.Linear(11) for _ in range(n)])

    ls.build(stack(2), "jax", seed=0).materialize((2, 13))
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        m = ls.build(stack(40), "jax", seed=1).materialize((2, 13))
        jax.block_until_ready(m.params)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert len(m.state_dict()) == 80
    assert compiles == []


# -- every layer: output shape equals ls.infer -----------------------------------

LAYERS = [
    ("linear", lambda: ls.Linear(7), (3, 5)),
    ("linear-nobias-3d", lambda: ls.Linear(7, bias=False), (2, 3, 5)),
    ("identity", ls.Identity, (3, 5)),
    ("dropout-eval", lambda: ls.Dropout(0.5), (3, 5)),
    ("flatten", ls.Flatten, (2, 3, 4, 5)),
    ("flatten-range", lambda: ls.Flatten(1, 2), (2, 3, 4, 5)),
    ("unflatten", lambda: ls.Unflatten(1, (3, -1)), (2, 12)),
    ("reshape", lambda: ls.Reshape(4, -1), (2, 8, 3)),
    ("relu", ls.ReLU, (3, 5)),
    ("gelu", ls.GELU, (3, 5)),
    ("gelu-tanh", lambda: ls.GELU("tanh"), (3, 5)),
    ("tanh", ls.Tanh, (3, 5)),
    ("sigmoid", ls.Sigmoid, (3, 5)),
    ("silu", ls.SiLU, (3, 5)),
    ("leaky-relu", lambda: ls.LeakyReLU(0.2), (3, 5)),
    ("softmax", ls.Softmax, (3, 5)),
    ("softmax-dim1", lambda: ls.Softmax(dim=1), (2, 3, 5)),
    ("custom-linear", lambda: CustomLinear(6), (3, 5)),
]


@pytest.mark.parametrize("make, shape", [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_output_shape_equals_infer(make: Any, shape: tuple[int, ...]) -> None:
    net = ls.Sequential(make())
    m = ls.build(net, "jax")
    x = batch(*shape)
    expected = ls.infer(net, shape).output
    y = m(x)
    assert y.shape == expected.shape
    assert str(y.dtype) == expected.dtype
    params = m.init(KEY, x)
    assert jax.jit(m.apply)(params, x).shape == expected.shape


MERGES = [
    ("add", ls.Add, (4, 6)),
    ("multiply", ls.Multiply, (4, 6)),
    ("concat", ls.Concat, (4, 12)),
]


@pytest.mark.parametrize("merge, out", [c[1:] for c in MERGES], ids=[c[0] for c in MERGES])
def test_merges_in_a_two_input_model(merge: Any, out: tuple[int, ...]) -> None:
    a, b = ls.Input(("B", 5)), ls.Input(("B", 3))
    model = ls.Model([a, b], merge()(ls.Linear(6, name="fa")(a), ls.Linear(6, name="fb")(b)))
    m = ls.build(model, "jax")
    xa, xb = batch(4, 5, seed=1), batch(4, 3, seed=2)
    assert ls.infer(model, xa, xb).output.shape == out
    y = m(xa, xb)
    assert y.shape == out
    params = m.init(KEY, xa, xb)
    assert set(params["params"]) == {"fa", "fb"}
    np.testing.assert_allclose(jax.jit(m.apply)(params, xa, xb), m.apply(params, xa, xb),
                               rtol=1e-6, atol=1e-6)


def test_activations_values() -> None:
    x = jnp.linspace(-4.0, 4.0, 41, dtype=jnp.float32).reshape(1, 41)
    xn = np.asarray(x, np.float64)
    table = [
        (ls.ReLU(), np.maximum(xn, 0)),
        (ls.Tanh(), np.tanh(xn)),
        (ls.Sigmoid(), 1 / (1 + np.exp(-xn))),
        (ls.SiLU(), xn / (1 + np.exp(-xn))),
        (ls.LeakyReLU(0.1), np.where(xn >= 0, xn, 0.1 * xn)),
        (ls.Softmax(), np.exp(xn) / np.exp(xn).sum(-1, keepdims=True)),
        (ls.GELU(), 0.5 * xn * (1 + np.vectorize(math.erf)(xn / math.sqrt(2)))),
    ]
    for layer, expected in table:
        y = ls.build(ls.Sequential(layer), "jax")(x)
        np.testing.assert_allclose(np.asarray(y), expected, atol=1e-6, err_msg=layer.kind)


@pytest.mark.torch
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate: str) -> None:
    import torch

    x = np.linspace(-6.0, 6.0, 1001, dtype=np.float32).reshape(7, 143)
    ours = ls.build(ls.GELU(approximate), "jax")(jnp.asarray(x))
    ref = torch.nn.functional.gelu(torch.from_numpy(x), approximate=approximate).numpy()
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-6, rtol=0)


def test_dropout_in_training() -> None:
    net = ls.Sequential(ls.Dropout(0.25))
    m = ls.build(net, "jax")
    x = jnp.ones((8, 100))
    params = m.init(KEY, x)
    assert params == {"params": {}}
    np.testing.assert_array_equal(m.apply(params, x), x)  # evaluation: identity
    np.testing.assert_array_equal(m(x), x)
    y = np.asarray(m.apply(params, x, training=True, key=jax.random.key(1)))
    zeros = (y == 0).mean()
    assert 0.15 < zeros < 0.35
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)  # survivors scaled
    again = m.apply(params, x, training=True, key=jax.random.key(1))
    np.testing.assert_array_equal(again, y)  # the key determines the mask
    other = m.apply(params, x, training=True, key=jax.random.key(2))
    assert not np.array_equal(other, y)
    step = jax.jit(m.apply, static_argnames="training")
    np.testing.assert_array_equal(step(params, x, training=True, key=jax.random.key(1)), y)


def test_each_dropout_gets_its_own_key() -> None:
    m = ls.build(ls.Sequential(ls.Dropout(0.5), ls.Identity(), ls.Dropout(0.5)), "jax")
    x = jnp.ones((4, 64))
    y = np.asarray(m.apply({}, x, training=True, key=KEY))
    # one key shared by both layers would give one mask (half zeros); independent
    # masks keep a quarter of the elements, each scaled twice
    assert 0.6 < (y == 0).mean() < 0.9
    np.testing.assert_allclose(y[y != 0], 4.0)


def test_training_needs_a_key_and_a_static_flag() -> None:
    m = ls.build(ls.Sequential(ls.Dropout(0.5)), "jax")
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match=r"dropout in training needs a PRNG key"):
        m.apply({}, x, training=True)
    with pytest.raises(TypeError, match=r"training must be a Python bool"):
        jax.jit(m.apply)({}, x, training=True, key=KEY)


# -- errors -----------------------------------------------------------------------


def test_wrong_input_shape_after_materialization() -> None:
    m = ls.build(mlp(), "jax")
    m(batch(2, 20))
    before = m.state_dict()
    with pytest.raises(
        ls.ShapeError,
        match=r"Linear at '0': inputs that keep the materialized parameter shapes .*"
        r"`0\.weight` materialized as \(32, 20\), these inputs need \(32, 30\)",
    ):
        m(batch(2, 30))
    assert m.state_dict() == before
    assert m(batch(5, 20)).shape == (5, 10)  # another batch size is fine


def test_input_shape_errors_name_the_layer() -> None:
    m = ls.build(ls.Sequential(ls.Linear(4, in_features=3)), "jax")
    with pytest.raises(ls.ShapeError, match=r"Linear at '0'.*in_features"):
        m(batch(2, 5))
    with pytest.raises(ls.ShapeError, match=r"Linear at '0'.*in_features"):
        m.init(KEY, (2, 5))


def test_apply_with_params_of_the_wrong_shapes() -> None:
    m = ls.build(mlp(), "jax")
    params = m.init(KEY, (2, 20))
    pattern = (
        r"Linear at '0': variables that fit input shapes \(2, 30\): `0\.weight` of shape "
        r"\(32, 30\); got `0\.weight` of shape \(32, 20\)"
    )
    with pytest.raises(ls.ShapeError, match=pattern):
        m.apply(params, batch(2, 30))
    with pytest.raises(ls.ShapeError, match=pattern):
        jax.jit(m.apply)(params, batch(2, 30))
    del params["params"]["2"]["bias"]
    with pytest.raises(
        ls.ShapeError,
        match=r"Sequential: variables with exactly the model's parameter and buffer names; "
        r"got missing \['params: 2\.bias'\], unexpected \[\]",
    ):
        m.apply(params, batch(2, 20))


def test_merge_mismatch_is_a_shape_error() -> None:
    a, b = ls.Input(("B", None)), ls.Input(("B", None))
    m = ls.build(ls.Model([a, b], ls.Add()(a, b)), "jax")
    with pytest.raises(ls.ShapeError, match=r"Add at 'add'"):
        m(batch(2, 3), batch(2, 4))


def test_symbolic_parameter_shapes_cannot_materialize() -> None:
    m = ls.build(mlp(), "jax")
    with pytest.raises(ls.ShapeError, match=r"concrete parameter shapes to materialize"):
        m.materialize(("B", None))
    with pytest.raises(ls.ShapeError, match=r"concrete parameter shapes to materialize"):
        m.init(KEY, ("B", None))
    assert not m.initialized


# -- the stateful model -------------------------------------------------------------


def test_placeholders_and_repr_before_and_after() -> None:
    m = ls.build(mlp(), "jax")
    assert not m.initialized and m.params == {}
    state = m.state_dict()
    assert repr(state["0.weight"]) == "<Uninitialized (32, ?) float32>"
    assert "Linear(in_features=?, out_features=32" in repr(m)
    m.materialize((2, 20))
    assert m.initialized
    assert "Linear(in_features=20, out_features=32, bias=True)" in repr(m)
    weight = m.state_dict()["0.weight"]
    assert isinstance(weight, jax.Array) and weight.shape == (32, 20)
    assert m.params["params"]["0"]["weight"] is weight


def test_stateful_call_traces_once_per_signature() -> None:
    m = ls.build(mlp(), "jax")
    calls = []
    resolve = m._rt.resolve

    def counting(xs: Any) -> Any:
        calls.append(tuple(x.shape for x in xs))
        return resolve(xs)

    m._rt.resolve = counting
    x = batch(2, 20)
    first = m(x)
    n = len(calls)
    for _ in range(3):
        np.testing.assert_array_equal(m(x), first)
    assert len(calls) == n  # cached: no resolution, no retrace
    m(batch(3, 20))
    assert len(calls) == n + 1


def test_reinit_recreates_only_changed_params() -> None:
    m = ls.build(mlp(), "jax", on_shape_change="reinit")
    m(batch(2, 20))
    before = m.state_dict()
    assert m(batch(2, 30)).shape == (2, 10)
    after = m.state_dict()
    assert after["0.weight"].shape == (32, 30)
    for name in ("0.bias", "2.weight", "2.bias"):
        assert after[name] is before[name]
    # the recreated weight is what a fresh init draws for that shape
    fresh = m.init(init_key(None), (2, 30))["params"]["0"]["weight"]
    np.testing.assert_array_equal(after["0.weight"], fresh)


def init_key(seed: int | None) -> Any:
    import lazyshape_jax.init

    return lazyshape_jax.init.make_rng(seed)


def test_dtype_is_honored() -> None:
    m = ls.build(mlp(), "jax", dtype="bfloat16")
    m.materialize((2, 20))
    assert {str(v.dtype) for v in m.state_dict().values()} == {"bfloat16"}
    assert m(batch(2, 20).astype(jnp.bfloat16)).dtype == jnp.bfloat16
    params = m.init(KEY, (2, 20))
    assert params["params"]["2"]["bias"].dtype == jnp.bfloat16


def test_float64_needs_x64() -> None:
    m = ls.build(mlp(), "jax", dtype="float64")
    with pytest.raises(ValueError, match=r"jax_enable_x64"):
        m.materialize((2, 20))


def test_params_setter_checks_and_keeps_nesting() -> None:
    m = ls.build(mlp(), "jax")
    x = batch(2, 20)
    m(x)
    new = jax.tree.map(jnp.zeros_like, m.params)
    m.params = new
    np.testing.assert_array_equal(m(x), np.zeros((2, 10), np.float32))
    with pytest.raises(ls.ShapeError):
        m.params = m.init(KEY, (2, 21))
    np.testing.assert_array_equal(m(x), np.zeros((2, 10), np.float32))


# -- checkpoints --------------------------------------------------------------------


def test_load_state_dict_into_an_uninitialized_model() -> None:
    src = ls.build(mlp(), "numpy", seed=0)
    x = np.ones((2, 20), np.float32)
    y_ref = src(x)
    m = ls.build(mlp(), "jax")
    m.load_state_dict(src.state_dict())
    assert m.initialized
    assert isinstance(m.state_dict()["0.weight"], jax.Array)
    np.testing.assert_allclose(np.asarray(m(jnp.asarray(x))), y_ref, atol=1e-5)


@pytest.mark.torch
def test_load_state_dict_from_torch_tensors() -> None:
    import torch

    state = {"0.weight": torch.ones(32, 20), "0.bias": torch.zeros(32),
             "2.weight": torch.ones(10, 32), "2.bias": torch.zeros(10)}
    m = ls.build(mlp(), "jax")
    m.load_state_dict(state)
    np.testing.assert_allclose(m(jnp.ones((1, 20))), np.full((1, 10), 640.0))


def test_mismatched_state_is_a_shape_error_and_changes_nothing() -> None:
    m = ls.build(mlp(), "jax")
    bad = {"0.weight": np.zeros((32, 20)), "0.bias": np.zeros(32),
           "2.weight": np.zeros((10, 31)), "2.bias": np.zeros(10)}
    with pytest.raises(ls.ShapeError, match=r"`2\.weight` of shape \(10, 32\); got shape \(10, 31\)"):
        m.load_state_dict(bad)
    assert not m.initialized
    m.materialize((2, 20))
    before = m.state_dict()
    with pytest.raises(ls.ShapeError, match=r"missing \['2\.bias'\]"):
        m.load_state_dict({k: v for k, v in bad.items() if k != "2.bias"})
    assert m.state_dict() == before


def test_save_load_round_trip(tmp_path: Any) -> None:
    m = ls.build(mlp(), "jax", seed=4)
    x = batch(2, 20)
    y = m(x)
    path = tmp_path / "mlp.safetensors"
    ls.save(m, path)
    state = ls.load(path)
    assert sorted(state) == sorted(m.state_dict())
    m2 = ls.build(mlp(), "jax")
    m2.load_state_dict(state)
    np.testing.assert_array_equal(m2(x), y)
    with pytest.raises(ls.ShapeError, match=r"call materialize first"):
        ls.save(ls.build(mlp(), "jax"), tmp_path / "empty.safetensors")
