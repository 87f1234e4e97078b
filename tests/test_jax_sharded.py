"""``ls.build(model, "jax", mesh=, partition=)``: parameters created already
sharded. The 8-device checks run `jax_sharded_probe.py` in a fresh process
(JAX reads the simulated device count once, at import); the argument checks
run here on whatever devices exist."""

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

try:
    import jax
    from jax.sharding import Mesh
except ModuleNotFoundError as e:  # the tests skip without JAX (tests/conftest.py)
    if e.name not in ("jax", "jaxlib"):
        raise
    jax = Mesh = None

pytestmark = pytest.mark.jax

PROBE = Path(__file__).with_name("jax_sharded_probe.py")
RULES = ls.Partition([("0.weight", ("tp", None))])


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    return out


@pytest.mark.parametrize("model", ["llama", "cnn"])
@pytest.mark.parametrize("rng", ["native", "portable"])
def test_each_parameter_has_its_rules_sharding_and_the_unsharded_value(probe, model, rng):
    entry = probe[model][rng]
    assert entry["wrong_shardings"] == []
    assert entry["unequal"] == []  # bit for bit, parameters and buffers


@pytest.mark.parametrize("model", ["llama", "cnn"])
def test_the_compiled_init_outputs_the_planned_bytes_per_device(probe, model):
    entry = probe[model]["native"]
    # XLA's output size also counts the output tuple: one 8-byte pointer per
    # array; and JAX (without x64) holds BatchNorm's int64 counter in 32 bits
    assert entry["output_bytes"] - 8 * entry["outputs"] == (
        entry["shard_bytes"] - entry["narrowed_bytes"])
    assert entry["narrowed_bytes"] == (4 if model == "cnn" else 0)


@pytest.mark.parametrize("model", ["llama", "cnn"])
def test_no_device_computes_a_whole_parameter(probe, model):
    entry = probe[model]["native"]
    assert entry["largest_shard"] < entry["largest_param"]
    assert entry["largest_in_program"] == entry["largest_shard"]
    # the per-parameter draws split a parameter over every mesh axis, also the
    # ones it is replicated over, before it is put onto its replicas
    assert entry["largest_in_samplers"] == entry["largest_param"] // 8


@pytest.mark.parametrize("model", ["llama", "cnn"])
@pytest.mark.parametrize("rng", ["native", "portable"])
def test_jitted_apply_on_sharded_variables_and_batch(probe, model, rng):
    entry = probe[model][rng]
    assert entry["apply_max_diff"] < 1e-5
    assert entry["apply_output_sharding"].startswith("P('dp'")
    if model == "cnn":  # a training forward's new BatchNorm statistics
        assert entry["train_stats_max_diff"] < 1e-5


def test_the_stateful_call_materializes_on_the_shards(probe):
    assert probe["stateful"]["conv_weight_spec"] == "P('tp', None, None, None)"
    assert probe["stateful"]["conv_weight_local"] == [4, 3, 3, 3]


def test_a_loaded_state_lands_on_the_shards(probe):
    assert probe["stateful"]["loaded_head_spec"] == "P(None, ('dp', 'tp'))"
    assert probe["stateful"]["loaded_equal"] is True


def test_a_rule_that_does_not_fit_fails_before_allocating(probe):
    refused = probe["refused"]
    assert refused["path"] == "0.weight"
    assert "divisible by 4 (tp=4" in refused["error"] and "(6, 3, 3, 3)" in refused["error"]
    assert refused["new_arrays"] == 0


def mesh1() -> Any:
    return Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("dp", "tp"))


def test_partition_and_mesh_go_together():
    model = ls.Sequential(ls.Linear(4))
    with pytest.raises(ValueError, match=r"partition= needs mesh="):
        ls.build(model, "jax", partition=RULES)
    with pytest.raises(ValueError, match=r"mesh= needs partition="):
        ls.build(model, "jax", mesh=mesh1())
    with pytest.raises(TypeError, match=r"partition= takes an ls.Partition, got dict"):
        ls.build(model, "jax", mesh=mesh1(), partition={"0.weight": ("tp", None)})
    with pytest.raises(TypeError, match=r"mesh= takes a jax.sharding.Mesh, got dict"):
        ls.build(model, "jax", mesh={"tp": 1}, partition=RULES)
    with pytest.raises(ValueError, match=r"device= \(='cpu'\) and mesh= both given"):
        ls.build(model, "jax", mesh=mesh1(), partition=RULES, device="cpu")
    with pytest.raises(ValueError, match=r"the numpy backend does not build on a mesh"):
        ls.build(model, "numpy", mesh=mesh1(), partition=RULES)


def test_a_mesh_axis_the_mesh_lacks_is_a_shape_error():
    m = ls.build(ls.Sequential(ls.Linear(4)), "jax", mesh=mesh1(),
                 partition=ls.Partition([("0.weight", ("model", None))]))
    with pytest.raises(ls.ShapeError, match=r"mesh axes among dp, tp .*got mesh axis 'model'"):
        m.init(0, (2, 3))
    with pytest.raises(ls.ShapeError, match=r"mesh axis 'model'"):
        m.shardings((2, 3))


@pytest.mark.parametrize("rng", ["native", "portable"])
def test_one_device_mesh_gives_the_unsharded_values(rng):
    model = ls.Sequential(ls.Linear(8), ls.ReLU(), ls.Linear(2))
    plain = ls.build(model, "jax", rng=rng, seed=5).init(jax.random.key(1), (3, 4))
    m = ls.build(model, "jax", rng=rng, seed=5, mesh=mesh1(), partition=RULES)
    got = m.init(jax.random.key(1), (3, 4))
    shardings = m.shardings((3, 4))
    assert jax.tree.structure(shardings) == jax.tree.structure(got)
    for value, want, sharding in zip(jax.tree.leaves(got), jax.tree.leaves(plain),
                                     jax.tree.leaves(shardings), strict=True):
        assert value.sharding == sharding
        assert np.array_equal(np.asarray(value), np.asarray(want))
    assert shardings["params"]["0"]["weight"].spec == jax.sharding.PartitionSpec("tp", None)


def test_init_fn_is_the_native_init_program():
    model = ls.Sequential(ls.Linear(8))
    m = ls.build(model, "jax", mesh=mesh1(), partition=RULES)
    key = jax.random.key(2)
    fn = m.init_fn((3, 4))
    assert np.array_equal(np.asarray(fn(key)["params"]["0"]["weight"]),
                          np.asarray(m.init(key, (3, 4))["params"]["0"]["weight"]))
    portable = ls.build(model, "jax", rng="portable", mesh=mesh1(), partition=RULES)
    with pytest.raises(ValueError, match=r"rng='portable' draws initial values with NumPy"):
        portable.init_fn((3, 4))
    with pytest.raises(ValueError, match=r"shardings need a sharded build"):
        ls.build(model, "jax").shardings((3, 4))
