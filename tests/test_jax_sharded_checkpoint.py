"""``ls.save_sharded`` / ``ls.load_sharded`` on JAX, and the per-shard format
they write. The 8-device round trips (a 2 x 4 mesh saved, loaded onto 4 x 2,
1 x 8 and replicated) run `jax_checkpoint_probe.py` in a fresh process (JAX
reads the simulated device count once, at import); the format's checks run
here with NumPy alone, the argument checks on whatever devices exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lazyshape as ls
from lazyshape._sharded_checkpoint import ShardedReader, write_shards

PROBE = Path(__file__).with_name("jax_checkpoint_probe.py")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    root = tmp_path_factory.mktemp("jax_ckpt")
    proc = subprocess.run([sys.executable, str(PROBE), str(root)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    return out


TARGETS = ["mesh_4x2", "mesh_1x8_other_rules", "replicated", "into_model"]


@pytest.mark.jax
@pytest.mark.parametrize("model", ["llama", "cnn"])
@pytest.mark.parametrize("target", TARGETS)
def test_a_2x4_checkpoint_loads_bit_exact_onto_other_shardings(probe, model, target):
    entry = probe[model][target]
    assert entry["checked"] == (21 if model == "llama" else 9)
    assert entry["wrong_shardings"] == []
    assert entry["unequal"] == []


@pytest.mark.jax
def test_loading_into_a_model_replaces_its_values(probe):
    assert probe["llama"]["into_model"]["differed_before"] == 21
    assert probe["cnn"]["into_model"]["differed_before"] == 9


@pytest.mark.jax
@pytest.mark.parametrize("model", ["llama", "cnn"])
def test_each_shard_is_stored_once(probe, model):
    entry = probe[model]
    assert entry["stored_elements"] == entry["elements"]
    # Megatron splits over "tp" only: the dp replicas (4 of the 8 devices) write nothing
    assert entry["files"] == (4 if model == "llama" else 8)


@pytest.mark.jax
@pytest.mark.parametrize("model", ["llama", "cnn"])
def test_a_device_reads_only_its_shard(probe, model):
    entry = probe[model]
    assert entry["mesh_4x2"]["largest_read"] < entry["largest_split"]
    assert entry["mesh_1x8_other_rules"]["largest_read"] < entry["largest_split"]
    assert entry["replicated"]["largest_read"] == entry["largest_split"]


# -- on one device -----------------------------------------------------------------


def _mesh1() -> Any:
    import jax
    from jax.sharding import Mesh

    return Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("dp", "tp"))


@pytest.mark.jax
def test_round_trip_on_one_device_keeps_dtypes_and_layout(tmp_path):
    import jax

    model = ls.Sequential(ls.Conv2d(4, 3), ls.BatchNorm2d(), ls.Flatten(), ls.Linear(2))
    rules = ls.Partition([("3.weight", (None, "tp"))])
    m = ls.build(model, "jax", dtype="bfloat16", mesh=_mesh1(), partition=rules)
    variables = m.init(jax.random.key(3), (2, 3, 5, 5))
    ls.save_sharded(variables, tmp_path / "ck")
    ls.save_sharded(variables, tmp_path / "ck")  # over an existing checkpoint
    got = ls.load_sharded(tmp_path / "ck", m.shardings((2, 3, 5, 5)))
    assert jax.tree.structure(got) == jax.tree.structure(variables)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(variables), strict=True):
        assert a.dtype == b.dtype and a.sharding == b.sharding
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert got["params"]["3"]["weight"].dtype == jax.numpy.bfloat16
    # a flat mapping of names to shardings gives a flat mapping of arrays
    targets = {n: a.sharding for n, a in m.materialize((2, 3, 5, 5)).state_dict().items()}
    flat = ls.load_sharded(tmp_path / "ck", targets)
    assert set(flat) == set(targets)
    assert np.asarray(flat["3.weight"]).tobytes() == np.asarray(
        variables["params"]["3"]["weight"]).tobytes()


@pytest.mark.jax
def test_a_checkpoint_that_does_not_fit_the_target_is_a_checkpoint_error(tmp_path):
    import jax

    m = ls.build(ls.Sequential(ls.Linear(4)), "jax", mesh=_mesh1(),
                 partition=ls.Partition([("0.weight", ("tp", None))]))
    variables = m.init(jax.random.key(0), (2, 3))
    ls.save_sharded(variables, tmp_path / "ck")
    other = ls.build(ls.Sequential(ls.Linear(4, bias=False)), "jax", mesh=_mesh1(),
                     partition=ls.Partition([("0.weight", ("tp", None))]))
    with pytest.raises(ls.CheckpointError, match=r"unexpected \['0.bias'\]") as e:
        ls.load_sharded(tmp_path / "ck", other.shardings((2, 3)))
    assert e.value.key == "0.bias"
    wider = ls.build(ls.Sequential(ls.Linear(4)), "jax", mesh=_mesh1(),
                     partition=ls.Partition([("0.weight", ("tp", None))]))
    wider.materialize((2, 5))
    with pytest.raises(ls.CheckpointError, match=r"at `0.weight`: shape \(4, 3\); the model's "
                       r"is \(4, 5\)"):
        ls.load_sharded(tmp_path / "ck", wider)
    with pytest.raises(ValueError, match=r"needs it materialized"):
        ls.load_sharded(tmp_path / "ck", m)
    with pytest.raises(TypeError, match=r"takes jax.Arrays; `v` is ndarray"):
        ls.save_sharded({"w": jax.numpy.ones(2), "v": np.ones(2)}, tmp_path / "x")


def test_numpy_has_no_sharded_checkpoint(tmp_path):
    m = ls.build(ls.Sequential(ls.Linear(4)), "numpy")
    m.materialize((2, 3))
    with pytest.raises(NotImplementedError, match=r"'numpy' backend has no save_sharded"):
        ls.save_sharded(m, tmp_path / "ck")
    with pytest.raises(TypeError, match=r"takes a model built with ls.build"):
        ls.load_sharded(tmp_path / "ck", object())


# -- the format, with NumPy alone -------------------------------------------------


def _write(path: Path) -> np.ndarray:
    full = np.arange(24, dtype=np.float32).reshape(4, 6)
    write_shards(path, {"w": ((4, 6), "float32")}, [
        ("a.safetensors", {"w": ((0, 0), full[:2])}),
        ("b.safetensors", {"w": ((2, 0), full[2:])}),
    ])
    return full


def test_a_box_is_assembled_from_the_shards_it_overlaps(tmp_path):
    full = _write(tmp_path / "ck")
    reader = ShardedReader(tmp_path / "ck")
    assert reader.tensors == {"w": ((4, 6), "float32")}
    for box in [(slice(1, 3), slice(2, 5)), (slice(None), slice(None)), (slice(2, 4), slice(0, 1))]:
        assert np.array_equal(reader.read("w", box), full[box])


def _index(path: Path) -> dict[str, Any]:
    return json.loads((path / "index.json").read_text())


@pytest.mark.parametrize(("edit", "message"), [
    (lambda ix: ix.update(format="other"), r"is not a lazyshape-sharded index"),
    (lambda ix: ix.update(version=9), r"version 9; this reads 1"),
    (lambda ix: ix["tensors"]["w"]["shards"].pop(), r"at `w`: its shards hold 12 elements; "
     r"the tensor has 24"),
    (lambda ix: ix["tensors"]["w"]["shards"][1].update(offset=[1, 0]),
     r"at `w`: its shards at \[0, 0\] and \[1, 0\] overlap"),
    (lambda ix: ix["tensors"]["w"]["shards"][1].update(offset=[3, 0]),
     r"at `w`: shard at \[3, 0\] of shape \[2, 6\] lies outside"),
    (lambda ix: ix["tensors"]["w"]["shards"][0].update(file="../a.safetensors"),
     r"at `w`: malformed shard entry"),
    (lambda ix: ix["tensors"]["w"].update(dtype="int32"), r"at `w`: dtype float32; the index "
     r"says int32"),
])
def test_a_malformed_index_is_a_checkpoint_error(tmp_path, edit, message):
    _write(tmp_path / "ck")
    index = _index(tmp_path / "ck")
    edit(index)
    (tmp_path / "ck" / "index.json").write_text(json.dumps(index))
    with pytest.raises(ls.CheckpointError, match=message):
        ShardedReader(tmp_path / "ck").read("w", (slice(None), slice(None)))


def test_a_truncated_shard_file_is_a_checkpoint_error(tmp_path):
    _write(tmp_path / "ck")
    data = (tmp_path / "ck" / "b.safetensors").read_bytes()
    (tmp_path / "ck" / "b.safetensors").write_bytes(data[:-8])
    reader = ShardedReader(tmp_path / "ck")
    assert reader.read("w", (slice(0, 2), slice(None))).shape == (2, 6)  # a.safetensors only
    with pytest.raises(ls.CheckpointError,
                       match=r"b.safetensors' at `w`: data_offsets \[0, 48\] outside the 40-byte"):
        reader.read("w", (slice(1, 3), slice(None)))
    with pytest.raises(ls.CheckpointError, match=r"index.json'.*cannot be read"):
        ShardedReader(tmp_path / "nothing")
