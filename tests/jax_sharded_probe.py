"""Sharded materialization on 8 simulated CPU devices; run in a fresh process by
`test_jax_sharded.py` (JAX reads the device count once, when it is imported).

``python tests/jax_sharded_probe.py`` prints one JSON line: for each model
(a small Llama under `Partition.megatron` on a 2 x 4 ``("dp", "tp")`` mesh, a
small CNN with BatchNorm under rules of its own) and each rng mode, what the
test asserts:

- ``wrong_shardings``: parameters whose ``.sharding`` is not the rule's
  ``NamedSharding`` (or whose local shard has not the planned shard shape);
- ``unequal``: parameters whose values differ from the unsharded build's;
- ``output_bytes`` / ``shard_bytes``: the compiled init's per-device output
  bytes (``memory_analysis``) and ``Inference.param_bytes_per_device``;
  ``narrowed_bytes``: what the 64-bit buffers JAX holds in 32 bits save;
  ``outputs``: how many arrays the program returns (XLA counts the 8-byte
  pointer of each in the output tuple);
- ``largest_in_program`` / ``largest_in_samplers``: the most elements of any
  array in one device's compiled init (``init_fn``'s whole-model program /
  the per-parameter draws ``init`` runs), against ``largest_shard`` and
  ``largest_param``;
- ``apply_max_diff``: the largest difference between the jitted forward on
  sharded variables and a batch-sharded input, and the unsharded forward.
"""

from __future__ import annotations

from _distributed import LLAMA, force_host_devices

force_host_devices(8)  # before JAX is imported

import functools  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import lazyshape as ls  # noqa: E402
from lazyshape import zoo  # noqa: E402


def cnn() -> ls.Sequential:
    return ls.Sequential(
        ls.Conv2d(16, 3, padding=1), ls.BatchNorm2d(), ls.ReLU(),
        ls.Flatten(), ls.Linear(8),
    )


#: conv filters over "tp", a buffer split too, the head's columns over both axes
CNN_RULES = ls.Partition([
    ("0.weight", ("model", None, None, None)),
    ("0.bias", ("model",)),
    ("1.running_mean", ("model",)),
    ("4.weight", (None, ("batch", "model"))),
], {"model": "tp", "batch": "dp"})


def flat(variables: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(tree: Any, prefix: str) -> None:
        for k, v in tree.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                walk(v, name)
            else:
                out[name] = v

    for collection in variables.values():
        walk(collection, "")
    return out


def expected_sharding(mesh: Mesh, shard: ls.ShardSpec) -> NamedSharding:
    axes = [None if not a else a[0] if len(a) == 1 else a for a in shard.axes]
    return NamedSharding(mesh, PartitionSpec(*axes))


def largest_array(hlo: str) -> int:
    """The most elements of any array in a compiled program's text."""
    return max(int(np.prod([int(d) for d in dims.split(",") if d]))
               for dims in re.findall(r"\b[a-z]+[0-9]*\[([0-9,]*)\]", hlo))


def check(name: str, model: ls.Layer, rules: ls.Partition, mesh: Mesh, spec: ls.TensorSpec,
          x: np.ndarray[Any, Any]) -> dict[str, Any]:
    mesh_shape = {str(a): int(n) for a, n in mesh.shape.items()}
    inf = ls.infer(model, spec, partition=rules, mesh_shape=mesh_shape)
    key = jax.random.key(3)
    x_sharded = jax.device_put(jnp.asarray(x), NamedSharding(mesh, PartitionSpec("dp")))
    report: dict[str, Any] = {}
    for rng in ("native", "portable"):
        plain = ls.build(model, "jax", rng=rng, seed=7)
        sharded = ls.build(model, "jax", rng=rng, seed=7, mesh=mesh, partition=rules)
        want = plain.init(key, spec)
        got = sharded.init(key, spec)
        got_flat, want_flat = flat(got), flat(want)
        assert got_flat.keys() == want_flat.keys() == inf.shards.keys()
        wrong = []
        for n, value in got_flat.items():
            shard = inf.shards[n]
            target = expected_sharding(mesh, shard)
            local = value.addressable_shards[0].data.shape
            if not value.sharding.is_equivalent_to(target, value.ndim) or local != shard.shard_shape:
                wrong.append(f"{n}: {value.sharding} {local}, want {target} {shard.shard_shape}")
        unequal = [n for n, v in got_flat.items()
                   if not np.array_equal(jax.device_get(v), jax.device_get(want_flat[n]))]
        entry: dict[str, Any] = {"wrong_shardings": wrong, "unequal": unequal,
                                 "shard_bytes": int(inf.param_bytes_per_device)}
        # 64-bit buffers (BatchNorm's num_batches_tracked) are 32-bit without x64
        entry["narrowed_bytes"] = sum(
            int(s.shard_bytes) // 2 for n, s in inf.shards.items()
            if got_flat[n].dtype.itemsize * 2 == np.dtype(inf.params[n].dtype or "float32").itemsize
        )
        if rng == "native":
            compiled = sharded.init_fn(spec).lower(key).compile()
            analysis = compiled.memory_analysis()
            entry["output_bytes"] = int(analysis.output_size_in_bytes)
            entry["temp_bytes"] = int(analysis.temp_size_in_bytes)
            entry["outputs"] = len(got_flat)
            # the largest array anywhere in one device's program, in elements:
            # the whole-model program, and the per-parameter draws init runs
            entry["largest_in_program"] = largest_array(compiled.as_text())
            entry["largest_in_samplers"] = max(
                largest_array(fn.lower(key).compile().as_text())
                for fn in sharded._samplers.values())
            entry["largest_shard"] = max(int(np.prod(s.shard_shape)) for s in inf.shards.values())
            entry["largest_param"] = max(int(np.prod(s.shape)) for s in inf.shards.values())
        y = jax.jit(sharded.apply)(got, x_sharded)
        y_plain = plain.apply(want, jnp.asarray(x))
        entry["apply_max_diff"] = float(jnp.max(jnp.abs(y - y_plain)))
        entry["apply_output_sharding"] = str(y.sharding.spec)
        if "batch_stats" in got:
            train = functools.partial(sharded.apply, training=True, mutable=["batch_stats"])
            (_, upd) = jax.jit(train)(got, x_sharded)
            (_, upd_plain) = plain.apply(want, jnp.asarray(x), training=True,
                                         mutable=["batch_stats"])
            entry["train_stats_max_diff"] = max(
                float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))
                for a, b in zip(jax.tree.leaves(upd), jax.tree.leaves(upd_plain), strict=True))
        report[rng] = entry
    return report


def stateful(mesh: Mesh) -> dict[str, Any]:
    """The stateful ``m(x)``: its first call materializes on the shards too."""
    m = ls.build(cnn(), "jax", seed=1, mesh=mesh, partition=CNN_RULES)
    x = jax.device_put(jnp.ones((8, 3, 8, 8)), NamedSharding(mesh, PartitionSpec("dp")))
    m(x)
    w = m.state_dict()["0.weight"]
    # a checkpoint (host arrays) loads onto the same shards
    loaded = ls.build(cnn(), "jax", mesh=mesh, partition=CNN_RULES)
    loaded.load_state_dict({n: np.asarray(v) for n, v in m.state_dict().items()})
    head = loaded.state_dict()["4.weight"]
    return {"conv_weight_spec": str(w.sharding.spec), "conv_weight_local": list(
        w.addressable_shards[0].data.shape), "loaded_head_spec": str(head.sharding.spec),
        "loaded_equal": all(np.array_equal(np.asarray(v), np.asarray(m.state_dict()[n]))
                            for n, v in loaded.state_dict().items())}


def refused(mesh: Mesh) -> dict[str, Any]:
    """A rule that does not fit: `ShapeError` before any array exists."""
    bad = ls.Partition([("0.weight", ("tp", None, None, None))])
    m = ls.build(ls.Sequential(ls.Conv2d(6, 3), ls.ReLU()), "jax", mesh=mesh, partition=bad)
    key = jax.random.key(0)
    before = len(jax.live_arrays())
    try:
        m.init(key, (2, 3, 8, 8))
    except ls.ShapeError as e:
        return {"error": str(e), "path": e.path, "new_arrays": len(jax.live_arrays()) - before}
    return {"error": None}


def main() -> None:
    devices = np.array(jax.devices()[:8]).reshape(2, 4)
    mesh = Mesh(devices, ("dp", "tp"))
    rng = np.random.default_rng(0)
    out = {
        "devices": len(jax.devices()),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "llama": check("llama", zoo.llama(LLAMA), ls.Partition.megatron({"model": "tp",
                                                                        "batch": "dp"}),
                       mesh, ls.TensorSpec((4, 16), "int32"),
                       rng.integers(0, 256, (4, 16)).astype(np.int32)),
        "cnn": check("cnn", cnn(), CNN_RULES, mesh, ls.TensorSpec((4, 3, 8, 8)),
                     rng.standard_normal((4, 3, 8, 8)).astype(np.float32)),
        "stateful": stateful(mesh),
        "refused": refused(mesh),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
