"""Checkpoints: every zoo model saves and reloads on every backend pair."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import lazyshape as ls
from lazyshape import zoo

BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]

#: each zoo model with an input that materializes it (small sizes: CI time)
MODELS = {
    "lenet5": (zoo.lenet5, (2, 1, 28, 28)),
    "resnet18": (zoo.resnet18, (1, 3, 32, 32)),
    "gpt2": (lambda: zoo.gpt2(vocab_size=50, max_len=16, num_layers=2, embed_dim=32,
                              num_heads=4, mlp_dim=64), (2, 8)),
    "lstm_classifier": (zoo.lstm_classifier, (2, 7, 12)),
}


def _random_state(shapes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A state of the same names, shapes and dtypes with values no initializer
    gives (integers, 0-d buffers included, count up from 7)."""
    rng = np.random.default_rng(1)
    out = {}
    for name, ref in shapes.items():
        if np.issubdtype(ref.dtype, np.integer):
            out[name] = np.asarray(rng.integers(7, 100, ref.shape), dtype=ref.dtype)
        else:
            out[name] = rng.standard_normal(ref.shape).astype(ref.dtype)
    return out


@functools.cache
def _native_dtypes(case: str, backend: str) -> dict[str, np.dtype]:
    """The dtype each state entry has when the model is built natively on ``backend``."""
    make, shape = MODELS[case]
    built = ls.build(make(), backend, seed=0).materialize(shape)
    return {k: ls.to_numpy(v).dtype for k, v in built.state_dict().items()}


@pytest.mark.parametrize("dst", BACKENDS)
@pytest.mark.parametrize("src", BACKENDS)
@pytest.mark.parametrize("case", sorted(MODELS))
def test_zoo_checkpoint_round_trips_bit_exactly(case, src, dst, tmp_path):
    make, shape = MODELS[case]
    built = ls.build(make(), src, seed=0).materialize(shape)
    reference = {k: ls.to_numpy(v) for k, v in built.state_dict().items()}
    state = _random_state(reference)
    built.load_state_dict({k: ls.asarray(v, src) for k, v in state.items()})
    path = tmp_path / "model.safetensors"
    ls.save(built, path)
    loaded = ls.load(path)
    assert sorted(loaded) == sorted(state)
    target = ls.build(make(), dst)
    target.load_state_dict(loaded)  # materializes from the checkpoint's shapes
    assert target.initialized
    back = {k: ls.to_numpy(v) for k, v in target.state_dict().items()}
    assert sorted(back) == sorted(state)
    native = _native_dtypes(case, dst)  # e.g. int64 counters are int32 on JAX without x64
    for name, want in state.items():
        got = back[name]
        assert got.shape == want.shape, name
        assert got.dtype == native[name], name
        np.testing.assert_array_equal(got, want.astype(native[name]), err_msg=name)
    if case == "resnet18":  # BatchNorm's num_batches_tracked: 0-d buffers survive
        assert [k for k, v in back.items() if v.ndim == 0]
