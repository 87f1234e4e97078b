"""One promotion table for `ls.ops` on every backend: arrays of two dtypes are
combined in `ls.ops.promote_types` of them (the array API's promotion within a
category; across categories the higher one wins: int32 with float32 is
float32), whatever the framework would do on its own."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import lazyshape as ls
from lazyshape.backend import get_backend

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
          "float64", "complex64", "complex128"]
PAIRS = list(itertools.product(DTYPES, DTYPES))

#: each op, and the dtypes (of its result) it is defined for on every framework
OPS = {
    "add": lambda a, b: ls.ops.add(a, b),
    "multiply": lambda a, b: ls.ops.multiply(a, b),
    "subtract": lambda a, b: ls.ops.subtract(a, b),
    "maximum": lambda a, b: ls.ops.maximum(a, b),
    "matmul": lambda a, b: ls.ops.matmul(a, b),
    "tensordot": lambda a, b: ls.ops.tensordot(a, b, axes=1),
    "where": lambda a, b: ls.ops.where(ls.ops.equal(a, a), a, b),
    "concat": lambda a, b: ls.ops.concat([a, b], axis=0),
    "stack": lambda a, b: ls.ops.stack([a, b]),
}
NOT_FOR = {  # result dtypes a framework does not define the op for
    "subtract": {"bool"},
    "maximum": {"complex64", "complex128"},
    "matmul": {"bool"},
    "tensordot": {"bool"},
}


def _array(dtype: str, backend: str):
    values = np.array([[1, 0], [1, 1]], dtype=np.float32)
    return ls.ops.astype(ls.asarray(values, backend), get_backend(backend).native_dtype(dtype))


def _name(x) -> str:
    return ls.backend.normalize_dtype(x.dtype)


def test_the_table_is_torchs_and_jaxs_on_every_pair():
    pytest.importorskip("torch")
    import torch

    for a, b in PAIRS:
        want = str(torch.promote_types(getattr(torch, a), getattr(torch, b))).removeprefix("torch.")
        assert ls.ops.promote_types(a, b) == want, (a, b)


def test_the_table_is_the_array_apis_within_a_category():
    """Where the array API standard defines promotion (within a category), the
    table is NumPy 2's."""
    for a, b in PAIRS:
        if "bfloat16" in (a, b):
            continue
        ka, kb = (np.dtype(d).kind for d in (a, b))
        same = ka == kb or {ka, kb} == {"i", "u"}
        if same:
            assert ls.ops.promote_types(a, b) == str(np.promote_types(a, b)), (a, b)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("torch", marks=pytest.mark.torch),
                                     pytest.param("jax", marks=pytest.mark.jax)])
@pytest.mark.parametrize("op", sorted(OPS))
def test_every_backend_computes_in_the_promoted_dtype(backend, op):
    if backend not in ls.backends():
        pytest.skip(f"{backend} is not installed")
    native = get_backend(backend).native_dtype
    checked = 0
    for a, b in PAIRS:
        if backend == "numpy" and "bfloat16" in (a, b):
            continue  # ml_dtypes' bfloat16 has no arithmetic with other NumPy dtypes
        want = ls.ops.promote_types(a, b)
        if want in NOT_FOR.get(op, ()):
            continue
        x1, x2 = _array(a, backend), _array(b, backend)
        got = _name(OPS[op](x1, x2))
        assert got == native(want), (op, a, b, got)
        checked += 1
    assert checked >= 60  # most of the 144 pairs


@pytest.mark.parametrize("backend", ["numpy", pytest.param("torch", marks=pytest.mark.torch),
                                     pytest.param("jax", marks=pytest.mark.jax)])
def test_an_int_input_times_a_float32_weight_is_float32(backend):
    if backend not in ls.backends():
        pytest.skip(f"{backend} is not installed")
    x = _array("int32", backend)
    w = _array("float32", backend)
    y = ls.ops.matmul(x, ls.ops.permute_dims(w, (1, 0))) + _array("float32", backend)
    assert _name(y) == "float32"
    np.testing.assert_array_equal(ls.to_numpy(ls.ops.matmul(x, w)),
                                  np.array([[1, 0], [2, 1]], np.float32))


@pytest.mark.parametrize("backend", ["numpy", pytest.param("torch", marks=pytest.mark.torch),
                                     pytest.param("jax", marks=pytest.mark.jax)])
@pytest.mark.parametrize("x_dtype", ["int32", "uint8", "float16"])
def test_linear_and_convolutions_compute_in_the_promoted_dtype(backend, x_dtype):
    """An int or float16 input with float32 weights: float32 on every backend,
    the values those of a float32 input."""
    if backend not in ls.backends():
        pytest.skip(f"{backend} is not installed")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 3, 5)).astype(x_dtype)
    w1, w2 = rng.standard_normal((4, 5)), rng.standard_normal((4, 3, 2))
    b = rng.standard_normal(4)
    calls = {
        "linear": lambda x, f: ls.ops.linear(x, f(w1), f(b)),
        "conv": lambda x, f: ls.ops.conv(x, f(w2), f(b), (1,), ((0, 0),), (1,)),
        "conv_transpose": lambda x, f: ls.ops.conv_transpose(
            x, f(w2.transpose(1, 0, 2)), f(b), (1,), (0,), (0,), (1,)),
    }
    for name, call in calls.items():
        def f32(a):
            return ls.asarray(a.astype(np.float32), backend)

        y = call(ls.asarray(x, backend), f32)
        want = call(ls.asarray(x.astype(np.float32), backend), f32)
        assert _name(y) == "float32", (name, _name(y))
        np.testing.assert_allclose(ls.to_numpy(y), ls.to_numpy(want), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("torch", marks=pytest.mark.torch),
                                     pytest.param("jax", marks=pytest.mark.jax)])
def test_a_python_float_with_an_int_array_is_float32(backend):
    if backend not in ls.backends():
        pytest.skip(f"{backend} is not installed")
    x = _array("int32", backend)
    assert _name(ls.ops.multiply(x, 0.5)) == "float32"
    assert _name(ls.ops.add(1.5, x)) == "float32"
    assert _name(ls.ops.multiply(_array("float16", backend), 0.5)) == "float16"
    assert _name(ls.ops.add(x, 2)) == "int32"


def test_promote_types_takes_any_number_of_dtypes_and_framework_dtypes():
    assert ls.ops.promote_types("int8") == "int8"
    assert ls.ops.promote_types("bool", "uint8", "int8") == "int16"
    assert ls.ops.promote_types(np.dtype("int32"), "float16") == "float16"
    with pytest.raises(TypeError, match="at least one dtype"):
        ls.ops.promote_types()
    with pytest.raises(TypeError, match="unsupported dtype 'float8'"):
        ls.ops.promote_types("float32", "float8")
