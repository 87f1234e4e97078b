"""Dtypes: what a merge of mixed dtypes gives (PyTorch's and JAX's promotion,
on every backend), and which inputs a layer with parameters accepts (floating
inputs of the parameters' dtype; int and bool only where the layer takes ids).

Each table row: a model, its input specs, the model's dtype, and the expected
output dtype or ``(ShapeError, regex)``; every row runs through `ls.infer` and
through a forward on each backend that can hold its dtypes."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

import lazyshape as ls
from lazyshape._layer import check_param_dtype, shape_input_dtype
from lazyshape.ops import promote_types

HAVE = {name: importlib.util.find_spec(name) is not None for name in ("torch", "jax")}
#: the marks of each backend's tests (tests/conftest.py skips them where it is missing)
MARKS = {"numpy": (), "torch": (pytest.mark.torch,), "jax": (pytest.mark.jax,)}
BACKENDS = [pytest.param(name, marks=MARKS[name]) for name in ("numpy", "torch", "jax")]
DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
          "float32", "float64", "complex64", "complex128")
_X32 = {"float64": "float32", "int64": "int32", "complex128": "complex64"}



def _x64() -> bool:
    if not HAVE["jax"]:  # its tests skip: JAX's default, no x64
        return False
    import jax

    return bool(jax.config.jax_enable_x64)


def _holds(backend: str, dtypes: set[str]) -> bool:
    """Whether ``backend`` has arrays of every one of ``dtypes``."""
    if backend == "numpy":
        return "bfloat16" not in dtypes
    if backend == "jax" and not _x64():
        return not dtypes & set(_X32)
    return True


def _per_backend(rows, ids, model_dtype=None):
    """``(backend, *row)`` for each backend that holds the row's dtypes: a row a
    backend cannot hold (NumPy has no bfloat16; JAX without x64 no 64-bit
    types) is no test there, rather than a skipped one."""
    params = []
    for name in ("numpy", "torch", "jax"):
        for row, id_ in zip(rows, ids, strict=True):
            dt = row[2] if model_dtype is None else model_dtype
            if _holds(name, {s.dtype for s in row[1]} | {dt}):
                params.append(pytest.param(name, *row, id=f"{name}-{id_}", marks=MARKS[name]))
    return params


def _array(backend: str, spec: ls.TensorSpec, rng: np.random.Generator):
    shape = tuple(int(d) for d in spec.shape)
    dt = spec.dtype
    if dt == "bool":
        a = rng.random(shape) < 0.5
    elif dt.startswith(("int", "uint")):
        a = rng.integers(0, 3, shape).astype(dt)
    else:
        a = rng.standard_normal(shape).astype("float32" if dt == "bfloat16" else dt)
    x = ls.asarray(a, backend)
    return ls.ops.astype(x, "bfloat16") if dt == "bfloat16" else x


def _out_dtype(y) -> str:
    y = y[0] if isinstance(y, tuple) else y
    return str(y.dtype).removeprefix("torch.")


def _run(backend, make, specs, dtype, expected):
    """The row on ``backend``: a `ShapeError` matching the regex, or an output of
    the expected dtype (JAX without x64 holds 64-bit types in 32 bits)."""
    assert _holds(backend, {s.dtype for s in specs} | {dtype})  # see _per_backend
    m = ls.build(make(), backend, dtype=dtype, rng="portable", seed=0)
    rng = np.random.default_rng(0)
    xs = [_array(backend, s, rng) for s in specs]
    if isinstance(expected, tuple):
        with pytest.raises(ls.ShapeError, match=expected[1]):
            m(*xs)
        return
    want = _X32.get(expected, expected) if backend == "jax" and not _x64() else expected
    assert _out_dtype(m(*xs)) == want


def _infer(make, specs, dtype, expected):
    if isinstance(expected, tuple):
        with pytest.raises(ls.ShapeError, match=expected[1]):
            ls.infer(make(), *specs, dtype=dtype)
        return
    assert ls.infer(make(), *specs, dtype=dtype).outputs[0].dtype == expected


def spec(shape, dtype="float32"):
    return ls.TensorSpec(shape, dtype)


# -- merges: category promotion ---------------------------------------------------


def _merge_of(layer_fn, *specs_):
    def make():
        xs = [ls.Input(s.shape, s.dtype) for s in specs_]
        return ls.Model(xs, layer_fn()(*xs))

    return make


def _cat():
    return ls.Concat(dim=0)


MERGES = [
    # (layer, input specs, output dtype)
    (ls.Add, [spec((2, 3), "int32"), spec((2, 3))], "float32"),
    (ls.Add, [spec((2, 3), "int64"), spec((2, 3))], "float32"),
    (ls.Add, [spec((2, 3), "int64"), spec((2, 3), "float16")], "float16"),
    (ls.Add, [spec((2, 3), "float16"), spec((2, 3))], "float32"),
    (ls.Add, [spec((2, 3), "float16"), spec((2, 3), "bfloat16")], "float32"),
    (ls.Add, [spec((2, 3), "bfloat16"), spec((2, 3), "int32")], "bfloat16"),
    (ls.Add, [spec((2, 3), "int32"), spec((2, 3), "int64")], "int64"),
    (ls.Add, [spec((2, 3), "bool"), spec((2, 3), "int8")], "int8"),
    (ls.Add, [spec((2, 3), "uint8"), spec((2, 3), "int8")], "int16"),
    (ls.Add, [spec((2, 3), "bool"), spec((2, 3), "bool")], "bool"),
    (ls.Add, [spec((2, 3), "complex64"), spec((2, 3), "float64")], "complex128"),
    (ls.Add, [spec((2, 3), "int32"), spec((2, 3), "float16"), spec((2, 3))], "float32"),
    (ls.Add, [spec((), "float64"), spec((2, 3))], "float64"),     # torch alone: float32
    (ls.Add, [spec((3,), "int64"), spec((2, 3), "int32")], "int64"),
    (ls.Multiply, [spec((2, 3), "int32"), spec((2, 3), "float64")], "float64"),
    (ls.Multiply, [spec((2, 3), "bool"), spec((2, 3))], "float32"),
    (ls.Multiply, [spec((2, 1), "uint8"), spec((2, 3), "int32")], "int32"),
    (_cat, [spec((2, 3), "int64"), spec((1, 3))], "float32"),
    (_cat, [spec((2, 3), "int32"), spec((2, 3), "int64")], "int64"),
    (_cat, [spec((2, 3), "bool"), spec((2, 3), "int32")], "int32"),
    (_cat, [spec((2, 3), "float16"), spec((2, 3), "float64")], "float64"),
]
_MERGE_IDS = [
    f"{f.__name__.strip('_')}-" + "-".join(s.dtype for s in specs_) for f, specs_, _ in MERGES
]


@pytest.mark.parametrize(("layer_fn", "specs", "expected"), MERGES, ids=_MERGE_IDS)
def test_merge_output_dtype_of_the_rule(layer_fn, specs, expected):
    assert ls.infer(_merge_of(layer_fn, *specs)()).output.dtype == expected
    assert promote_types(*[s.dtype for s in specs]) == expected


@pytest.mark.parametrize(("backend", "layer_fn", "specs", "expected"),
                         _per_backend(MERGES, _MERGE_IDS, model_dtype="float32"))
def test_merge_forward_gives_the_rules_dtype(backend, layer_fn, specs, expected):
    _run(backend, _merge_of(layer_fn, *specs), specs, "float32", expected)


@pytest.mark.torch
def test_promotion_is_torchs():
    import torch

    for a, b in itertools.product(DTYPES, repeat=2):
        want = str(torch.promote_types(getattr(torch, a), getattr(torch, b)))
        assert promote_types(a, b) == want.removeprefix("torch."), (a, b)


@pytest.mark.jax
def test_promotion_is_jaxs():
    import jax.numpy as jnp

    for a, b in itertools.product(DTYPES, repeat=2):
        want = str(jnp.promote_types(getattr(jnp, a), getattr(jnp, b)))
        assert promote_types(a, b) == want, (a, b)


def test_promotion_is_associative_over_three_inputs():
    for a, b, c in itertools.product(DTYPES, repeat=3):
        left = promote_types(promote_types(a, b), c)
        assert promote_types(a, b, c) == left == promote_types(a, promote_types(b, c))


# -- layers with parameters: floating inputs of the parameters' dtype ---------------


def _seq(*layer_fns):
    return lambda: ls.Sequential(*(f() for f in layer_fns))


class _Scale(ls.Layer):
    """A custom layer with one parameter of the model's dtype."""

    def output_spec(self, x):
        return x

    def param_specs(self, x):
        return {"scale": ls.ParamSpec((x.shape[-1],), init=ls.init.ones())}

    def forward(self, params, x):
        return x * params["scale"]


class _Scale16(_Scale):
    """The same, with a parameter that names its own dtype (float16)."""

    def param_specs(self, x):
        return {"scale": ls.ParamSpec((x.shape[-1],), "float16", init=ls.init.ones())}

    def forward(self, params, x):
        return x * ls.ops.astype(params["scale"], "float32")


def _attention_qkv():
    q, k, v = ls.Input(("B", 3, 4)), ls.Input(("B", 5, 4)), ls.Input(("B", 5, 4))
    return ls.Model([q, k, v], ls.MultiheadAttention(2, name="attn")(q, k, v))


def _lstm_with_state():
    x, h, c = ls.Input(("B", 3, 4)), ls.Input((1, "B", 2)), ls.Input((1, "B", 2))
    return ls.Model([x, h, c], ls.LSTM(2, name="lstm")(x, h, c))


def _mismatch(kind, path, want, got, which="input"):
    return (ls.ShapeError, rf"^{kind} at '{path}': floating-point inputs of the parameters' "
            rf"dtype {want}; got {which} dtype {got} \(cast it, or build the model with "
            rf"dtype='{got}'\)")


def _not_floating(kind, got):
    return (ls.ShapeError, rf"^{kind} at '0': expected a floating-point input; got dtype {got}")


F32, F64 = "float32", "float64"

# (model, input specs, model dtype, output dtype | (ShapeError, regex))
REJECTED = [
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), F64)], F32, _mismatch("Linear", "0", F32, F64)),
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), "float16")], F32,
     _mismatch("Linear", "0", F32, "float16")),
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), "bfloat16")], F32,
     _mismatch("Linear", "0", F32, "bfloat16")),
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), F32)], F64, _mismatch("Linear", "0", F64, F32)),
    (_seq(lambda: ls.Conv1d(2, 1)), [spec((2, 3, 5), F64)], F32,
     _mismatch("Conv1d", "0", F32, F64)),
    (_seq(lambda: ls.ConvTranspose2d(2, 1)), [spec((1, 3, 2, 2), F64)], F32,
     _mismatch("ConvTranspose2d", "0", F32, F64)),
    (_seq(lambda: ls.BatchNorm1d()), [spec((2, 3, 5), F64)], F32,
     _mismatch("BatchNorm1d", "0", F32, F64)),
    # running statistics are in the model's dtype too
    (_seq(lambda: ls.BatchNorm1d(affine=False)), [spec((2, 3, 5), F64)], F32,
     _mismatch("BatchNorm1d", "0", F32, F64)),
    (_seq(lambda: ls.InstanceNorm2d(affine=True)), [spec((2, 3, 4, 4), F64)], F32,
     _mismatch("InstanceNorm2d", "0", F32, F64)),
    (_seq(lambda: ls.LayerNorm()), [spec((2, 3, 5), "float16")], F32,
     _mismatch("LayerNorm", "0", F32, "float16")),
    (_seq(lambda: ls.GroupNorm(1)), [spec((2, 3, 5), F64)], F32,
     _mismatch("GroupNorm", "0", F32, F64)),
    (_seq(lambda: ls.MultiheadAttention(2)), [spec((2, 3, 4), F64)], F32,
     _mismatch("MultiheadAttention", "0", F32, F64)),
    (_attention_qkv, [spec((2, 3, 4), F64), spec((2, 5, 4), F64), spec((2, 5, 4), F64)], F32,
     _mismatch("MultiheadAttention", "attn", F32, F64, "input 0")),
    (_seq(lambda: ls.LSTM(2)), [spec((2, 3, 4), F64)], F32, _mismatch("LSTM", "0", F32, F64)),
    (_seq(lambda: ls.GRU(2)), [spec((2, 3, 4), F64)], F32, _mismatch("GRU", "0", F32, F64)),
    (_lstm_with_state, [spec((2, 3, 4), F64), spec((1, 2, 2), F64), spec((1, 2, 2), F64)], F32,
     _mismatch("LSTM", "lstm", F32, F64, "input 0")),
    # the first layer with parameters is where it fails
    (_seq(ls.ReLU, lambda: ls.Linear(3), lambda: ls.Linear(2)), [spec((2, 4), F64)], F32,
     _mismatch("Linear", "1", F32, F64)),
    (_seq(_Scale), [spec((2, 4), F64)], F32, _mismatch("_Scale", "0", F32, F64)),
]

ACCEPTED = [
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), F64)], F64, F64),
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), "float16")], "float16", "float16"),
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), "bfloat16")], "bfloat16", "bfloat16"),
    (_seq(lambda: ls.Conv1d(2, 1), lambda: ls.BatchNorm1d()), [spec((2, 3, 5), F64)], F64, F64),
    (_seq(lambda: ls.MultiheadAttention(2)), [spec((2, 3, 4), F64)], F64, F64),
    (_lstm_with_state, [spec((2, 3, 4), F64), spec((1, 2, 2), F64), spec((1, 2, 2), F64)], F64,
     F64),
    # no parameters: any floating input
    (_seq(lambda: ls.InstanceNorm1d()), [spec((2, 3, 5), F64)], F32, F64),
    (_seq(lambda: ls.LayerNorm(elementwise_affine=False)), [spec((2, 3, 5), F64)], F32, F64),
    (_seq(ls.ReLU, lambda: ls.Softmax(-1)), [spec((2, 3), F64)], F32, F64),
    # ids: an Embedding's output has the weights' dtype
    (_seq(lambda: ls.Embedding(4, 2)), [spec((2, 3), "int64")], F32, F32),
    (_seq(lambda: ls.Embedding(4, 2), lambda: ls.Linear(3)), [spec((2, 3), "int32")], F32, F32),
    # a parameter that names its own dtype is the layer's business
    (_seq(_Scale16), [spec((2, 4), F32)], F32, F32),
]

# ... in the model's dtype, whichever it is
ACCEPTED_IN_THE_MODELS_DTYPE = [
    (_seq(lambda: ls.Embedding(4, 2)), [spec((2, 3), "int64")], F64, F64),
    (_seq(lambda: ls.Embedding(4, 2), lambda: ls.LayerNorm(), lambda: ls.Linear(3)),
     [spec((2, 3), "int32")], "bfloat16", "bfloat16"),
]

NOT_FLOATING = [
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), "int64")], F32, _not_floating("Linear", "int64")),
    (_seq(lambda: ls.Linear(3)), [spec((2, 4), "bool")], F32, _not_floating("Linear", "bool")),
    (_seq(lambda: ls.Conv2d(2, 1)), [spec((2, 3, 4, 4), "int32")], F32,
     _not_floating("Conv2d", "int32")),
    (_seq(lambda: ls.BatchNorm2d()), [spec((2, 3, 4, 4), "uint8")], F32,
     _not_floating("BatchNorm2d", "uint8")),
    (_seq(lambda: ls.LayerNorm()), [spec((2, 5), "int64")], F32,
     _not_floating("LayerNorm", "int64")),
    (_seq(lambda: ls.GroupNorm(1)), [spec((2, 3, 5), "bool")], F32,
     _not_floating("GroupNorm", "bool")),
    (_seq(lambda: ls.MultiheadAttention(1)), [spec((2, 3, 4), "int64")], F32,
     _not_floating("MultiheadAttention", "int64")),
    (_seq(lambda: ls.LSTM(2)), [spec((2, 3, 4), "int32")], F32, _not_floating("LSTM", "int32")),
    (_seq(lambda: ls.GRU(2)), [spec((2, 3, 4), "bool")], F64, _not_floating("GRU", "bool")),
    (_seq(lambda: ls.Embedding(4, 2)), [spec((2, 3), F32)], F32,
     (ls.ShapeError, r"^Embedding at '0': integer ids \(int32 or int64\); got dtype float32")),
]


def _ids(rows):
    return [f"{i}-" + "-".join(s.dtype for s in specs_) + f"-in-{dt}"
            for i, (_, specs_, dt, _) in enumerate(rows)]


#: every table of (model, input specs, model dtype, expected dtype or error):
#: floating inputs of another dtype rejected; an Embedding's output in the
#: model's dtype; inputs the parameters accept or, not floating, reject
TABLES = {
    "rejected": REJECTED,
    "embedding": ACCEPTED_IN_THE_MODELS_DTYPE,
    "accepted": ACCEPTED,
    "not-floating": NOT_FLOATING,
}
ROWS = [row for rows in TABLES.values() for row in rows]
ROW_IDS = [f"{name}-{id_}" for name, rows in TABLES.items() for id_ in _ids(rows)]


@pytest.mark.parametrize(("make", "specs", "dtype", "expected"), ROWS, ids=ROW_IDS)
def test_dtype_tables_by_infer(make, specs, dtype, expected):
    _infer(make, specs, dtype, expected)


@pytest.mark.parametrize(("backend", "make", "specs", "dtype", "expected"),
                         _per_backend(ROWS, ROW_IDS))
def test_dtype_tables_on_every_backend(backend, make, specs, dtype, expected):
    _run(backend, make, specs, dtype, expected)


def test_check_param_dtype_names_the_input_and_the_fix():
    layer = ls.Linear(3)
    x = spec((2, 4), F64)
    params = layer.param_specs(x)
    check_param_dtype(layer, x, params, F64, "fc")  # same dtype
    check_param_dtype(layer, spec((2, 4), "int64"), params, F32, "fc")  # the rule's business
    with pytest.raises(ls.ShapeError, match=_mismatch("Linear", "fc", F32, F64)[1]):
        check_param_dtype(layer, x, params, F32, "fc")
    with pytest.raises(ls.ShapeError, match=r"got input 1 dtype float16 \(cast it"):
        check_param_dtype(layer, (spec((2, 4)), spec((2, 4), "float16")), params, F32, "fc")
    own = {"scale": ls.ParamSpec((4,), F64)}
    check_param_dtype(layer, spec((2, 4), "float16"), own, F32, "fc")  # named dtypes: no check
    assert shape_input_dtype(ls.Linear(3), F64) == F64
    assert shape_input_dtype(ls.Linear(3), "bfloat16") == "bfloat16"
    assert shape_input_dtype(ls.Embedding(4, 2), F64) == "int64"


def test_defining_a_functional_model_leaves_the_dtype_to_infer():
    x = ls.Input(("B", 4), dtype=F64)
    h = ls.Linear(3, name="fc")(x)  # the model's dtype isn't known yet: no check
    assert h.dtype == F64
    model = ls.Model(x, h)
    assert ls.infer(model, dtype=F64).output.dtype == F64


def test_an_output_of_the_models_dtype_is_filled_in_by_the_pass():
    class Probe(ls.Layer):
        def output_spec(self, x):
            return ls.TensorSpec(x.shape, None)  # the model's dtype, which a rule can't know

    assert ls.infer(ls.Sequential(Probe()), (2, 3), dtype=F64).output.dtype == F64
    assert ls.infer(ls.Sequential(Probe()), (2, 3), dtype="bfloat16").output.dtype == "bfloat16"
    assert ls.infer(Probe(), (2, 3)).output.dtype == F32
    assert Probe()(ls.Input(("B", 3))).dtype == F32  # a model being defined: float32


def test_a_functional_model_of_another_dtype_is_rejected_by_infer():
    x = ls.Input(("B", 4), dtype=F64)
    model = ls.Model(x, ls.Linear(3, name="fc")(x))
    with pytest.raises(ls.ShapeError, match=_mismatch("Linear", "fc", F32, F64)[1]):
        ls.infer(model)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bare_shape_means_the_models_floating_dtype(backend):
    net = ls.Sequential(ls.Linear(4), ls.ReLU(), ls.Linear(2))
    assert ls.infer(net, ("B", 3), dtype=F64).output.dtype == F64
    dtype = "bfloat16" if backend == "jax" else F64  # JAX: no float64 without x64
    m = ls.build(net, backend, dtype=dtype)
    # placeholders come from a partial inference on a bare (B, ?) input
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    m.materialize((2, 3))
    assert {str(v.dtype).removeprefix("torch.") for v in m.state_dict().values()} == {dtype}
