"""Sharded checkpoints on 8 simulated CPU devices; run in a fresh process by
`test_jax_sharded_checkpoint.py` (JAX reads the device count once, when imported).

``python tests/jax_checkpoint_probe.py DIR`` saves, with ``ls.save_sharded``,
a small Llama under ``Partition.megatron`` and a CNN with BatchNorm under
rules of its own (a dim split over both axes, a buffer split), initialized on
a 2 x 4 ``("dp", "tp")`` mesh, and loads each back with ``ls.load_sharded``
onto other meshes and shardings. It prints one JSON line, for each model:

- ``files`` / ``stored_elements`` / ``elements``: the shard files written and
  the elements their index lists, against the model's (a replicated shard
  is stored once);
- for each target (a 4 x 2 mesh under the same rules, a 1 x 8 mesh under
  other rules, every array replicated, and a built model on the 4 x 2 mesh
  loaded in place): ``wrong_shardings`` (arrays not on the target's
  sharding) and ``unequal`` (arrays whose values differ from the saved ones,
  bit for bit); ``largest_read`` / ``largest_split``: the most elements one
  device's read asked for, against the largest split parameter.
"""

from __future__ import annotations

from _distributed import LLAMA, force_host_devices

force_host_devices(8)  # before JAX is imported

import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import lazyshape as ls  # noqa: E402
from lazyshape import zoo  # noqa: E402
from lazyshape._sharded_checkpoint import ShardedReader  # noqa: E402

LLAMA_RULES = ls.Partition.megatron({"model": "tp", "batch": "dp"})
#: the load side's other rules: matrices by columns over both axes at once
LLAMA_COLUMNS = ls.Partition([
    ("*_proj.weight", (None, ("dp", "tp"))), ("*.embed_tokens.weight", (None, ("dp", "tp"))),
    ("lm_head.weight", (None, ("dp", "tp"))),
])


def cnn() -> ls.Sequential:
    return ls.Sequential(ls.Conv2d(16, 3, padding=1), ls.BatchNorm2d(), ls.ReLU(),
                         ls.Flatten(), ls.Linear(8))


CNN_RULES = ls.Partition([
    ("0.weight", ("model", None, None, None)), ("0.bias", ("model",)),
    ("1.running_mean", ("model",)), ("4.weight", (None, ("batch", "model"))),
], {"model": "tp", "batch": "dp"})
CNN_COLUMNS = ls.Partition([("0.weight", (None, None, None, "dp")),
                            ("4.weight", ("tp", None))], allow_unused=True)


def flat(tree: Any) -> dict[str, Any]:
    return {".".join(str(k.key) for k in p[1:]): v
            for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def same_bits(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def compare(got: Any, want: dict[str, np.ndarray], shardings: Any) -> dict[str, Any]:
    got, shardings = flat(got), flat(shardings)
    assert set(got) == set(want) == set(shardings), set(got) ^ set(want)
    return {
        "wrong_shardings": [n for n, v in got.items() if v.sharding != shardings[n]],
        "unequal": [n for n, v in got.items() if not same_bits(v, want[n])],
        "checked": len(got),
    }


def run(name: str, model: ls.Layer, spec: Any, rules: ls.Partition, other: ls.Partition,
        root: Path, devices: np.ndarray, reads: list[int]) -> dict[str, Any]:
    mesh24 = Mesh(devices.reshape(2, 4), ("dp", "tp"))
    mesh42 = Mesh(devices.reshape(4, 2), ("dp", "tp"))
    mesh18 = Mesh(devices.reshape(1, 8), ("dp", "tp"))
    m = ls.build(model, "jax", mesh=mesh24, partition=rules)
    # a state no init gives (floats * 1.5 + 0.25, integers + 3), on the same shardings
    variables = jax.tree.map(
        lambda a: a * 1.5 + 0.25 if jax.numpy.issubdtype(a.dtype, jax.numpy.floating) else a + 3,
        m.init(jax.random.key(0), spec))
    saved = {n: np.asarray(v) for n, v in flat(variables).items()}
    path = root / name
    ls.save_sharded(variables, path)
    reader = ShardedReader(path)
    out: dict[str, Any] = {
        "files": len(list(path.glob("*.safetensors"))),
        "stored_elements": sum(math.prod(s[2]) for shards in reader._shards.values()
                               for s in shards),
        "elements": sum(a.size for a in saved.values()),
        "largest_split": max(a.size for n, a in saved.items()
                             if not flat(m.shardings(spec))[n].is_fully_replicated),
    }
    for target, shardings in {
        "mesh_4x2": ls.build(model, "jax", mesh=mesh42, partition=rules).shardings(spec),
        "mesh_1x8_other_rules": ls.build(model, "jax", mesh=mesh18,
                                         partition=other).shardings(spec),
        "replicated": jax.tree.map(lambda _: NamedSharding(mesh42, PartitionSpec()),
                                   m.shardings(spec)),
    }.items():
        reads.clear()
        out[target] = compare(ls.load_sharded(path, shardings), saved, shardings)
        out[target]["largest_read"] = max(reads)
    # a built, materialized model on another mesh, loaded in place
    into = ls.build(model, "jax", seed=9, mesh=mesh42, partition=rules)
    into.materialize(spec)
    before = [n for n, v in into.state_dict().items() if not same_bits(v, saved[n])]
    assert ls.load_sharded(path, into) is into
    out["into_model"] = compare(into.variables, saved, into.shardings(spec))
    out["into_model"]["differed_before"] = len(before)
    return out


def main() -> None:
    root = Path(sys.argv[1])
    devices = np.array(jax.devices())
    reads: list[int] = []
    plain_read = ShardedReader.read

    def counted(self: ShardedReader, name: str, box: Any) -> np.ndarray:
        got = plain_read(self, name, box)
        reads.append(got.size)
        return got

    ShardedReader.read = counted  # type: ignore[method-assign]
    report = {
        "devices": len(devices),
        "llama": run("llama", zoo.llama(LLAMA), ls.TensorSpec((4, 16), "int32"), LLAMA_RULES,
                     LLAMA_COLUMNS, root, devices, reads),
        "cnn": run("cnn", cnn(), ls.TensorSpec((4, 3, 8, 8)), CNN_RULES, CNN_COLUMNS, root,
                   devices, reads),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
