"""Parameters that would not fit are refused before anything is allocated:
`ls.MemoryLimitError` with the bytes needed and the largest tensors; the limit
is ``ls.build(..., max_param_bytes=)``, by default what the process can still
allocate. Initializers round to the parameter's dtype chunk by chunk."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lazyshape as ls
from lazyshape import _init
from lazyshape._memory import available_bytes, format_bytes

BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.torch),
            pytest.param("jax", marks=pytest.mark.jax)]


def _needs(backend: str) -> None:
    if backend not in ls.backends():
        pytest.skip(f"{backend} is not installed")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_that_cannot_fit_is_refused_before_allocating(backend):
    _needs(backend)
    net = ls.Sequential(ls.Linear(10**12))
    m = ls.build(net, backend)
    x = ls.asarray(np.ones((2, 1024), np.float32), backend)
    with pytest.raises(ls.MemoryLimitError) as info:
        m(x)
    e = info.value
    assert isinstance(e, MemoryError)
    assert e.needed == (10**12 * 1024 + 10**12) * 4
    assert e.largest[0] == ("0.weight", (10**12, 1024), 10**12 * 1024 * 4)
    assert "the parameters need 3.6 PiB (float32)" in str(e)
    assert "`0.weight` (1000000000000, 1024) 3.6 PiB" in str(e)
    assert "this process can still allocate" in str(e)
    assert not m.initialized
    # the shapes still resolve, with no memory
    assert ls.infer(net, (2, 1024)).params["0.weight"].shape == (10**12, 1024)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_param_bytes_is_the_limit(backend):
    _needs(backend)
    net = ls.Sequential(ls.Linear(100), ls.BatchNorm1d())
    need = ls.infer(net, (2, 10)).num_bytes
    with pytest.raises(ls.MemoryLimitError, match=r"need 5.9 KiB \(float32\), more than the 4.9 KiB allowed \(max_param_bytes\)"):
        ls.build(net, backend, max_param_bytes=4999).materialize((2, 10))
    assert need > 4999
    m = ls.build(net, backend, max_param_bytes=need).materialize((2, 10))
    assert m.initialized


@pytest.mark.parametrize("backend", BACKENDS)
def test_loading_a_state_is_guarded_too(backend):
    _needs(backend)
    net = ls.Sequential(ls.Linear(100))
    state = ls.build(net, "numpy", seed=0).materialize((2, 10)).state_dict()
    m = ls.build(net, backend, max_param_bytes=1000)
    with pytest.raises(ls.MemoryLimitError):
        m.load_state_dict(state)
    assert not m.initialized


@pytest.mark.parametrize("bad", [-1, "1GB", True, float("nan")])
def test_a_bad_limit_is_a_value_error(bad):
    with pytest.raises(ValueError, match="max_param_bytes must be a non-negative number of bytes"):
        ls.build(ls.Linear(2), max_param_bytes=bad)


@pytest.mark.torch
def test_parameters_on_the_meta_device_need_no_memory():
    pytest.importorskip("torch")
    m = ls.build(ls.Sequential(ls.Linear(10**6)), "torch", device="meta")
    m.materialize((2, 10**6))  # 4 TB of float32 that nobody allocates
    assert m.state_dict()["0.weight"].shape == (10**6, 10**6)


def test_under_ulimit_the_default_limit_is_the_address_space_left():
    code = textwrap.dedent("""
        import resource, numpy as np
        import lazyshape as ls
        from lazyshape._memory import _read_int
        used = _read_int("/proc/self/status", "VmSize")
        limit = used + 512 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        net = ls.Sequential(ls.Linear(32768))           # (32768, 16384) float32: 2 GiB
        m = ls.build(net, "numpy")
        try:
            m.materialize((2, 16384))
            print("allocated")
        except ls.MemoryLimitError as e:
            print("refused", e.needed, e.limit <= 512 * 2**20)
        small = ls.build(ls.Sequential(ls.Linear(1024)), "numpy").materialize((2, 4096))
        print("small", small.initialized)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == f"refused {(32768 * 16384 + 32768) * 4} True", proc.stdout
    assert lines[1] == "small True"


def test_the_available_memory_is_read():
    found = available_bytes()
    assert found is not None and found > 0


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1,023 B"), (1536, "1.5 KiB"),
                                          (3 * 2**30, "3.0 GiB"), (4 * 10**15, "3.6 PiB")])
def test_bytes_are_written_in_binary_units(n, text):
    assert format_bytes(n) == text


def _one_draw(prim, shape, dtype, rng):
    """The reference: the whole tensor drawn at once in float64, rounded once."""
    n = int(np.prod(shape))
    if isinstance(prim, _init.Uniform):
        out = prim.a + (prim.b - prim.a) * rng.random(shape)
    elif isinstance(prim, _init.Normal):
        out = prim.mean + prim.std * rng.standard_normal(shape)
    else:
        out, filled = np.empty(n), 0
        while filled < n:
            draw = prim.mean + prim.std * rng.standard_normal(max(n - filled, 16) * 2)
            keep = draw[(draw >= prim.a) & (draw <= prim.b)][: n - filled]
            out[filled:filled + keep.size] = keep
            filled += keep.size
        out = out.reshape(shape)
    return out.astype(_init.numpy_dtype(dtype))


@pytest.mark.parametrize("prim", [_init.Uniform(-0.3, 0.7), _init.Normal(0.1, 2.0),
                                  _init.TruncNormal(0.0, 1.0, -0.1, 0.3)], ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_chunked_draws_are_bit_identical_to_one_draw(prim, dtype):
    for shape in [(3,), (257, 513), (_init.CHUNK * 2 + 5,)]:
        got = _init.sample_numpy(prim, shape, dtype, _init.portable_generator(3, "w"))
        want = _one_draw(prim, shape, dtype, _init.portable_generator(3, "w"))
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), shape
