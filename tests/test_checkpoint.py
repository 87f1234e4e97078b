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


# -- malformed and mismatching files ---------------------------------------------------


def _good(tmp_path) -> tuple:
    """A well-formed checkpoint of a small model, its bytes, and its header."""
    import json

    m = ls.build(ls.Sequential(ls.Linear(3), ls.BatchNorm1d()), "numpy", seed=0).materialize((2, 4))
    path = tmp_path / "good.safetensors"
    ls.save(m, path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return path, raw, json.loads(raw[8 : 8 + n])


def _with_header(raw: bytes, header: dict) -> bytes:
    """``raw``'s data behind another (JSON) header."""
    import json

    n = int.from_bytes(raw[:8], "little")
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def _shifted(header: dict, key: str, offsets: list) -> dict:
    return {**header, key: {**header[key], "data_offsets": offsets}}


MALFORMED = {
    "empty": (lambda raw, h: b"", r"0 bytes: too short for a safetensors header"),
    "truncated": (lambda raw, h: raw[: len(raw) - 5], r"at `1.weight`: data_offsets \[104, 116\] outside the 111-byte data"),
    "trailing bytes": (lambda raw, h: raw + b"junk", r"the tensors cover 116 bytes of the 120-byte data"),
    "zeroed header": (lambda raw, h: bytes(8) + bytes(len(raw) - 8), r"its header is not JSON"),
    "not json": (lambda raw, h: (5).to_bytes(8, "little") + b"{nope" + raw[13:], r"its header is not JSON"),
    "json, not safetensors": (lambda raw, h: _with_header(raw, [1, 2]), r"not a JSON object of tensors"),
    "header length 10**15": (lambda raw, h: (10**15).to_bytes(8, "little") + raw[8:], r"its header claims 1000000000000000 bytes, more than the file's"),
    "offsets beyond the file": (lambda raw, h: _with_header(raw, _shifted(h, "0.bias", [0, 10**15])), r"at `0.bias`: data_offsets \[0, 1000000000000000\] outside"),
    "negative offsets": (lambda raw, h: _with_header(raw, _shifted(h, "0.bias", [-4, 8])), r"at `0.bias`: data_offsets \[-4, 8\] outside"),
    "overlapping offsets": (lambda raw, h: _with_header(raw, {
        **h, **{k: {**v, "data_offsets": [0, v["data_offsets"][1] - v["data_offsets"][0]]}
                for k, v in h.items() if k == "1.weight"}}), r"overlaps the previous tensor|leaves bytes"),
    "unknown dtype": (lambda raw, h: _with_header(raw, {**h, "0.bias": {**h["0.bias"], "dtype": "F7"}}), r"at `0.bias`: unknown dtype 'F7'"),
    "shape and offsets disagree": (lambda raw, h: _with_header(raw, {**h, "0.bias": {**h["0.bias"], "shape": [4]}}), r"at `0.bias`: F32 of shape \(4,\) needs 16 bytes; its offsets give 12"),
    "bad metadata": (lambda raw, h: _with_header(raw, {**h, "__metadata__": {"format": 1}}), r"__metadata__ is not a map of strings"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_every_malformed_file_is_a_checkpoint_error_naming_it(case, tmp_path):
    path, raw, header = _good(tmp_path)
    make, message = MALFORMED[case]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(make(raw, header))
    with pytest.raises(ls.CheckpointError, match=message) as e:
        ls.load(bad)
    assert isinstance(e.value, ValueError) and e.value.path == str(bad)
    assert str(bad) in str(e.value)
    assert e.value.__class__.__module__ == "lazyshape"


def test_a_file_that_is_not_there_is_a_checkpoint_error(tmp_path):
    with pytest.raises(ls.CheckpointError, match=r"cannot be read"):
        ls.load(tmp_path / "missing.safetensors")


MISMATCHES = {
    "a different model": (lambda: ls.Sequential(ls.Linear(5), ls.BatchNorm1d()), r"at `0.weight`: does not fit the model: .*`0.weight` of shape \(5, 4\); got shape \(3, 4\)"),
    "a missing key": (lambda: ls.Sequential(ls.Linear(3), ls.BatchNorm1d(), ls.Linear(2)), r"missing \['2.weight', '2.bias'\]"),
    "an extra key": (lambda: ls.Sequential(ls.Linear(3)), r"missing \[\], unexpected \[.*'1.weight'"),
}


#: a state of the right names and shapes, one value of another kind of dtype
WRONG_KIND = {
    "an int weight": ("0.weight", np.int32, r"at `0.weight`: does not fit the model: Linear at "
                      r"'0': `0.weight` of a floating dtype \(float32\); got dtype int32"),
    "a bool bias": ("0.bias", np.bool_, r"at `0.bias`: .*`0.bias` of a floating dtype \(float32\); "
                    r"got dtype bool"),
    "a float counter": ("1.num_batches_tracked", np.float32,
                        r"at `1.num_batches_tracked`: .*BatchNorm1d at '1': `1.num_batches_tracked`"
                        r" of an integer dtype \(int64\); got dtype float32"),
}


@pytest.mark.parametrize("case", sorted(WRONG_KIND))
def test_a_value_of_another_kind_of_dtype_is_a_checkpoint_error_and_changes_nothing(case, tmp_path):
    from safetensors.numpy import save_file

    key, dtype, message = WRONG_KIND[case]
    m = ls.build(ls.Sequential(ls.Linear(3), ls.BatchNorm1d()), "numpy", seed=1).materialize((2, 4))
    before = {k: v.copy() for k, v in m.state_dict().items()}
    state = {k: np.array(v.astype(dtype) if k == key else v) for k, v in before.items()}
    save_file(state, str(tmp_path / "kind.safetensors"))
    with pytest.raises(ls.CheckpointError, match=message):
        ls.load(tmp_path / "kind.safetensors", into=m)
    for k, v in before.items():
        np.testing.assert_array_equal(m.state_dict()[k], v)
        assert m.state_dict()[k].dtype == v.dtype


def test_a_value_of_the_same_kind_is_cast_like_load_state_dict(tmp_path):
    from safetensors.numpy import save_file

    m = ls.build(ls.Sequential(ls.Linear(3), ls.BatchNorm1d()), "numpy", seed=1).materialize((2, 4))
    state = {k: v.astype(np.float64) if v.dtype == np.float32 else v
             for k, v in m.state_dict().items()}
    state["0.weight"] = state["0.weight"] + 1.0
    save_file(state, str(tmp_path / "f64.safetensors"))
    ls.load(tmp_path / "f64.safetensors", into=m)
    assert m.state_dict()["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(m.state_dict()["0.weight"], state["0.weight"].astype(np.float32))


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_a_file_for_another_model_is_a_checkpoint_error_and_changes_nothing(case, tmp_path):
    path, _, _ = _good(tmp_path)
    make, message = MISMATCHES[case]
    m = ls.build(make(), "numpy", seed=1).materialize((2, 4))
    before = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(ls.CheckpointError, match=message) as e:
        ls.load(path, into=m)
    assert e.value.path == str(path)
    after = m.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v)
    # the matching model loads it, all of it
    good = ls.build(ls.Sequential(ls.Linear(3), ls.BatchNorm1d()), "numpy")
    state = ls.load(path, into=good)
    assert good.initialized and sorted(good.state_dict()) == sorted(state)


def test_save_is_atomic_a_failure_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    import safetensors.numpy

    path, raw, _ = _good(tmp_path)
    real = safetensors.numpy.save_file

    def dies_midway(arrays, filename, metadata=None):
        real(arrays, filename, metadata=metadata)
        with open(filename, "r+b") as f:  # half written when the machine goes away
            f.truncate(40)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", dies_midway)
    m = ls.build(ls.Sequential(ls.Linear(3), ls.BatchNorm1d()), "numpy", seed=7).materialize((2, 4))
    with pytest.raises(OSError, match="disk full"):
        ls.save(m, path)
    assert path.read_bytes() == raw  # the previous checkpoint, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.safetensors"]  # no temporary left
    monkeypatch.setattr(safetensors.numpy, "save_file", real)
    ls.save(m, path)
    np.testing.assert_array_equal(ls.load(path)["0.weight"], m.state_dict()["0.weight"])
