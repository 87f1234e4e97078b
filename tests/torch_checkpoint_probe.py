"""Run by tests/test_torch_sharded_checkpoint.py under ``torch.distributed.run`` (gloo,
CPU): ``ls.save_sharded`` on one mesh, ``ls.load_sharded`` on another.

``python -m torch.distributed.run --nproc-per-node N --standalone
tests/torch_checkpoint_probe.py save|load DIR OUT.json``:

- ``save`` (4 ranks): a small Llama under Megatron tensor parallelism
  (``ls.shard`` on a 1-D ``tp`` mesh) and a CNN under FSDP2 (``fully_shard``,
  ``to_empty``, ``ls.init_``), their tensors then changed in place (a
  "trained" state no init gives: floats ``* 1.5 + 0.25``, integers ``+ 3``),
  saved with ``ls.save_sharded`` into
  ``DIR/llama`` and ``DIR/cnn``; rank 0 also writes the gathered full tensors
  with ``ls.save`` (``DIR/llama.safetensors``, ``DIR/cnn.safetensors``).
- ``load`` (2 ranks): the same models built with another seed and sharded
  by other rules (the Llama's matrices split by columns over ``dp``, the
  CNN's head by columns, the rest replicated), then ``ls.load_sharded``;
  each rank checks every gathered tensor equals the saved full tensor bit
  for bit, and that it differed before loading.

Rank 0 writes what it measured to ``OUT.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from _distributed import LLAMA, same_bits
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

import lazyshape as ls
from lazyshape import zoo

SEED = 1234
LLAMA_SPEC = ls.TensorSpec((2, 16), "int64")
CNN_SPEC = (2, 3, 6, 6)
#: the load side's rules: columns where Megatron splits rows, over "dp"
LLAMA_COLUMNS = ls.Partition([
    ("*_proj.weight", (None, "dp")), ("*.embed_tokens.weight", (None, "dp")),
    ("lm_head.weight", (None, "dp")),
])
CNN_COLUMNS = ls.Partition([("4.weight", (None, "dp"))])


def cnn() -> ls.Sequential:
    return ls.Sequential(ls.Conv2d(8, 3, padding=1), ls.BatchNorm2d(), ls.ReLU(),
                         ls.Flatten(), ls.Linear(16))


def full(t: torch.Tensor) -> torch.Tensor:
    return (t.full_tensor() if isinstance(t, DTensor) else t).detach()




def save(root: Path, report: dict[str, object]) -> None:
    from torch.distributed.fsdp import fully_shard

    world = dist.get_world_size()
    tp = init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))
    llama = ls.build(zoo.llama(LLAMA), "torch", device="meta", rng="portable", seed=SEED)
    llama.materialize(LLAMA_SPEC)
    ls.shard(llama, tp, partition=ls.Partition.megatron({"model": "tp"}))

    dp = init_device_mesh("cpu", (world,), mesh_dim_names=("dp",))
    net = ls.build(cnn(), "torch", device="meta", rng="portable", seed=SEED)
    net.materialize(CNN_SPEC)
    fully_shard(net[0], mesh=dp)
    fully_shard(net[4], mesh=dp)
    fully_shard(net, mesh=dp)
    net.to_empty(device="cpu")
    ls.init_(net)
    for name, m in (("llama", llama), ("cnn", net)):
        with torch.no_grad():  # a state no init gives, buffers included
            for t in m.state_dict().values():
                t.mul_(1.5).add_(0.25) if t.is_floating_point() else t.add_(3)
        ls.save_sharded(m, root / name)
        whole = {k: full(v) for k, v in m.state_dict().items()}
        if dist.get_rank() == 0:
            ls.save(whole, root / f"{name}.safetensors")
        report[f"{name}_saved"] = len(whole)
        report[f"{name}_dtensors"] = sum(isinstance(v, DTensor) for v in m.state_dict().values())


def load(root: Path, report: dict[str, object]) -> None:
    dp = init_device_mesh("cpu", (dist.get_world_size(),), mesh_dim_names=("dp",))
    llama = ls.build(zoo.llama(LLAMA), "torch", device="meta", rng="portable", seed=SEED + 1)
    llama.materialize(LLAMA_SPEC)
    ls.shard(llama, dp, partition=LLAMA_COLUMNS)
    net = ls.build(cnn(), "torch", device="meta", rng="portable", seed=SEED + 1)
    net.materialize(CNN_SPEC)
    ls.shard(net, dp, partition=CNN_COLUMNS)
    for name, m in (("llama", llama), ("cnn", net)):
        want = {k: torch.from_numpy(v) for k, v in ls.load(root / f"{name}.safetensors").items()}
        state = m.state_dict()
        assert set(state) == set(want), set(state) ^ set(want)
        report[f"{name}_differed_before"] = sum(
            not same_bits(full(v), want[k]) for k, v in state.items())
        assert ls.load_sharded(root / name, m) is m
        state = m.state_dict()
        unequal = [k for k, v in state.items() if not same_bits(full(v), want[k])]
        assert unequal == [], (name, unequal)
        report[f"{name}_checked"] = len(state)
        report[f"{name}_placements"] = {
            k: [str(p) for p in v.placements] for k, v in state.items() if isinstance(v, DTensor)}


def main() -> None:
    mode, root, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    dist.init_process_group("gloo")
    report: dict[str, object] = {"world": dist.get_world_size(), "mode": mode}
    try:
        {"save": save, "load": load}[mode](root, report)
        dist.barrier()
        if dist.get_rank() == 0:
            out.write_text(json.dumps(report))
        dist.barrier()  # no rank leaves while another still talks to it
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    # every check has passed: leave without the interpreter's teardown, where
    # gloo's threads can abort a rank after its work is done
    os._exit(0)


if __name__ == "__main__":
    main()
