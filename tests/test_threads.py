"""``ls.infer`` is reentrant: passes running at once in many threads give
exactly the single-threaded results (what a rule assumed, the model's dtype,
every spec), because whatever a pass needs travels with the pass. A built
model's first call from many threads at once initializes it once.

Run alone: ``python -m pytest tests/test_threads.py``."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import lazyshape as ls
from lazyshape import zoo


def _cases() -> list[tuple[ls.Layer, tuple, str]]:
    """Models whose inference records assumptions (symbols that meet at a merge)
    or depends on the model's dtype (an Embedding's output), at several dtypes."""
    x = ls.Input(("B", "C"))
    y = ls.Input(("B", "D"))
    merged = ls.Model([x, y], ls.Add()(ls.Linear(8)(x), ls.Linear(8)(y)))
    tokens = ls.Sequential(ls.Embedding(11, 6), ls.Flatten(), ls.Linear(3))
    conv = ls.Sequential(ls.Conv2d(4, 3, stride=2, groups=1), ls.ReLU(), ls.MaxPool2d(2))
    grouped = ls.Sequential(ls.Conv2d(4, 3, groups=2))
    gpt = zoo.gpt2(vocab_size=17, max_len=16, num_layers=1, embed_dim=8, num_heads=2, mlp_dim=16)
    cases = []
    for dtype in ("float32", "float64", "bfloat16"):
        cases += [
            (merged, (ls.TensorSpec(("B", "C"), dtype), ls.TensorSpec(("B", "D"), dtype)), dtype),
            (tokens, ((2, 5),), dtype),
            (tokens, (("B", "T"),), dtype),
            (conv, (("B", 3, "H", "W"),), dtype),
            (grouped, (("B", None, "H", "W"),), dtype),
            (gpt, (("B", "T"),), dtype),
        ]
    return cases


def _fingerprint(inf: ls.Inference) -> tuple:
    """Everything an inference says, as plain text and values."""
    return (
        tuple(str(o) for o in inf.outputs),
        tuple((r.path, r.param_path, tuple(map(str, r.inputs)), tuple(map(str, r.outputs)),
               tuple((k, str(p.shape), p.dtype) for k, p in r.params.items()),
               str(r.resolved))
              for r in inf.layers),
        tuple((path, str(a), str(b)) for path, a, b in inf.assumptions),
        str(inf.num_params),
    )


def _infer(model: ls.Layer, inputs: tuple, dtype: str) -> tuple:
    model._infer_cache.clear()  # every call a real pass, not a cache hit
    return _fingerprint(ls.infer(model, *inputs, dtype=dtype))


def test_concurrent_infers_give_exactly_the_single_threaded_results():
    cases = _cases()
    expected = [_infer(m, i, d) for m, i, d in cases]
    assert any(fp[2] for fp in expected)  # some passes do record assumptions
    # an Embedding's output has the model's dtype: a different one per pass
    assert [expected[k][0] for k in (1, 7, 13)] == [
        (f"TensorSpec((2, 3), {d})",) for d in ("float32", "float64", "bfloat16")]
    results: dict[int, list[tuple]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(k: int) -> None:
        try:
            start.wait()
            got = []
            for rep in range(25):  # each thread walks the cases from a different place
                for j in range(len(cases)):
                    m, i, d = cases[(j + k + rep) % len(cases)]
                    got.append(((j + k + rep) % len(cases), _infer(m, i, d)))
            results[k] = got
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert len(results) == 8
    for k, got in results.items():
        for index, fp in got:
            assert fp == expected[index], (k, index)


# -- the first forward of a built model, from 8 threads at once ---------------------

FIRST_CALL_BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.torch),
                       pytest.param("jax", marks=pytest.mark.jax)]


def _first_call_model() -> ls.Layer:
    return ls.Sequential(ls.Linear(6), ls.BatchNorm1d(), ls.ReLU(), ls.Linear(3))


@pytest.mark.parametrize("backend", FIRST_CALL_BACKENDS)
def test_eight_threads_making_the_first_forward_initialize_once(backend):
    """8 threads × 100 fresh models: every thread's output of each model's first
    call is the single-threaded one, and each model initialized once."""
    if backend not in ls.backends():
        pytest.skip(f"{backend} is not installed")
    x_np = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    x = ls.asarray(x_np, backend)
    def fresh():  # in evaluation mode (a torch module trains by default: statistics move)
        m = ls.build(_first_call_model(), backend, rng="portable", seed=3)
        return m.eval() if backend == "torch" else m

    reference = fresh()
    want = ls.to_numpy(reference(x))
    want_state = {k: ls.to_numpy(v) for k, v in reference.state_dict().items()}
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for rep in range(100):
            m = fresh()
            commits = []
            real_commit = m._rt.commit
            m._rt.commit = lambda inf, real=real_commit, seen=commits: (seen.append(inf), real(inf))[1]
            outs: dict[int, np.ndarray] = {}
            errors: list[BaseException] = []
            start = threading.Barrier(8)

            def work(k: int, m=m, outs=outs, errors=errors, start=start) -> None:
                try:
                    start.wait()
                    outs[k] = ls.to_numpy(m(x))
                except BaseException as e:  # noqa: BLE001 - reported below
                    errors.append(e)

            threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, (rep, errors)
            assert len(commits) == 1, (rep, len(commits))
            for k, y in outs.items():
                np.testing.assert_array_equal(y, want, err_msg=f"repetition {rep}, thread {k}")
            state = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
            for k, v in want_state.items():
                np.testing.assert_array_equal(state[k], v)
    finally:
        sys.setswitchinterval(old)
