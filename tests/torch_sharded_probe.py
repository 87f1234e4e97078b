"""Run by tests/test_torch_sharded.py under ``torch.distributed.run`` (gloo, CPU):
sharded materialization on torch, checked on every rank.

``python -m torch.distributed.run --nproc-per-node N --standalone
tests/torch_sharded_probe.py OUT.json [big]``: each rank checks, for a small
Llama under Megatron tensor parallelism (``ls.shard``), a CNN under FSDP2
(``fully_shard``, ``to_empty``, ``ls.init_``) and the same CNN replicated
(``ls.shard`` with no rules):

- each tensor's placements are the rules';
- each rank's local storage holds exactly its shard's elements;
- the gathered tensors equal the unsharded portable build bit for bit;
- the forward matches the unsharded model's.

Rank 0 writes what it measured to ``OUT.json``. With ``big``, it instead
measures the peak RSS growth of ``ls.shard`` for a 115M-parameter Llama.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys

import torch
import torch.distributed as dist
from _distributed import LLAMA, same_bits
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard

import lazyshape as ls
from lazyshape import zoo

SEED = 1234


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB




def tensors(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(m.state_dict(keep_vars=True))


def expected_placements(spec: ls.ShardSpec, mesh_dims: tuple[str, ...]) -> list[object]:
    out: list[object] = [Replicate() for _ in mesh_dims]
    for d, axes in enumerate(spec.axes):
        for a in axes:
            out[mesh_dims.index(a)] = Shard(d)
    return out


def check_sharded(name: str, m: torch.nn.Module, ref: torch.nn.Module,
                  shards: dict[str, ls.ShardSpec], mesh_dims: tuple[str, ...],
                  report: dict[str, object]) -> None:
    got, want = tensors(m), tensors(ref)
    assert set(got) == set(want), (name, set(got) ^ set(want))
    local = 0
    for k, t in got.items():
        s = shards[k]
        if isinstance(t, DTensor):
            assert list(t.placements) == expected_placements(s, mesh_dims), (name, k, t.placements)
            n = t.to_local().numel()
            full = t.full_tensor()
        else:  # a buffer FSDP2 leaves whole
            assert all(not a for a in s.axes), (name, k, "not a DTensor but split by the rules")
            n = t.numel()
            full = t
        assert n == math.prod(s.shard_shape), (name, k, n, s.shard_shape)
        local += n * t.element_size()
        assert same_bits(full, want[k].detach()), (name, k, "differs from the unsharded init")
    report[f"{name}_local_bytes"] = local
    report[f"{name}_checked"] = len(got)


def llama_tp(mesh: object, world: int, report: dict[str, object]) -> None:
    net = zoo.llama(LLAMA)
    spec = ls.TensorSpec((2, 16), "int64")
    rules = ls.Partition.megatron({"model": "tp"})
    m = ls.build(net, "torch", device="meta", rng="portable", seed=SEED)
    m.materialize(spec)
    ls.shard(m, mesh, partition=rules)
    ref = ls.build(net, "torch", rng="portable", seed=SEED)
    ref.materialize(spec)
    inf = ls.infer(net, spec, partition=rules, mesh_shape={"tp": world})
    check_sharded("llama_tp", m, ref, inf.shards, ("tp",), report)
    assert report["llama_tp_local_bytes"] == inf.param_bytes_per_device
    attn = m.model.layers[0].self_attn  # Megatron: each rank runs its own heads
    assert attn.num_heads == LLAMA["num_attention_heads"] // world, attn.num_heads
    torch.manual_seed(0)  # the same tokens on every rank
    x = torch.randint(0, LLAMA["vocab_size"], (2, 16))
    with torch.no_grad():
        y, y_ref = m(x), ref(x)
    assert not isinstance(y, DTensor) and y.shape == y_ref.shape == (2, 16, 256)
    err = (y - y_ref).abs().max().item()
    assert torch.allclose(y, y_ref, rtol=1e-4, atol=1e-5), err
    report["llama_tp_forward_max_err"] = err


def cnn() -> ls.Sequential:
    return ls.Sequential(ls.Conv2d(8, 3, padding=1), ls.BatchNorm2d(), ls.ReLU(),
                         ls.Flatten(), ls.Linear(16))


CNN_RULES = ls.Partition([
    ("0.weight", ("dp", None, None, None)), ("0.bias", ("dp",)),
    ("1.weight", ("dp",)), ("1.bias", ("dp",)),
    ("4.weight", ("dp", None)), ("4.bias", ("dp",)),
])


def cnn_fsdp(mesh: object, world: int, report: dict[str, object]) -> None:
    from torch.distributed.fsdp import fully_shard

    net = cnn()
    spec = (2, 3, 6, 6)
    m = ls.build(net, "torch", device="meta", rng="portable", seed=SEED)
    m.materialize(spec)
    fully_shard(m[0], mesh=mesh)
    fully_shard(m[4], mesh=mesh)
    fully_shard(m, mesh=mesh)
    m.to_empty(device="cpu")
    ls.init_(m)  # the build's seed
    ref = ls.build(net, "torch", rng="portable", seed=SEED)
    ref.materialize(spec)
    inf = ls.infer(net, spec, partition=CNN_RULES, mesh_shape={"dp": world})
    check_sharded("cnn_fsdp", m, ref, inf.shards, ("dp",), report)
    y, y_ref = forwards(m, ref, spec)
    err = (y - y_ref).abs().max().item()
    assert torch.allclose(y, y_ref, rtol=1e-5, atol=1e-6), err
    report["cnn_fsdp_forward_max_err"] = err
    # re-initializing with another seed changes every random tensor, shard-locally
    ls.init_(m, seed=SEED + 1)
    other = ls.build(net, "torch", rng="portable", seed=SEED + 1)
    other.materialize(spec)
    for k, t in tensors(m).items():
        full = t.full_tensor() if isinstance(t, DTensor) else t
        assert same_bits(full, tensors(other)[k].detach()), ("cnn_fsdp reinit", k)


def forwards(m: torch.nn.Module, ref: torch.nn.Module, spec: tuple[int, ...]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs of ``m`` and ``ref`` in evaluation mode on one random input."""
    torch.manual_seed(1)
    x = torch.randn(spec)
    m.eval()
    ref.eval()
    with torch.no_grad():
        return m(x), ref(x)


def cnn_replicated(mesh: object, world: int, report: dict[str, object]) -> None:
    net = cnn()
    spec = (2, 3, 6, 6)
    m = ls.build(net, "torch", device="meta", rng="portable", seed=SEED)
    m.materialize(spec)
    ls.shard(m, mesh)
    ref = ls.build(net, "torch", rng="portable", seed=SEED)
    ref.materialize(spec)
    inf = ls.infer(net, spec, partition=ls.Partition([]), mesh_shape={"dp": world})
    check_sharded("cnn_replicated", m, ref, inf.shards, ("dp",), report)
    y, y_ref = forwards(m, ref, spec)
    assert not isinstance(y, DTensor)
    assert torch.allclose(y, y_ref, rtol=1e-5, atol=1e-6), (y - y_ref).abs().max().item()


def big(mesh: object, world: int, report: dict[str, object]) -> None:
    config = {"hidden_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 16,
              "num_key_value_heads": 8, "intermediate_size": 2816, "vocab_size": 32000}
    net = zoo.llama(config)
    spec = ls.TensorSpec((1, 8), "int64")
    rules = ls.Partition.megatron({"model": "tp"})
    m = ls.build(net, "torch", device="meta", rng="portable", seed=SEED)
    m.materialize(spec)
    inf = ls.infer(net, spec, partition=rules, mesh_shape={"tp": world})
    before = rss_bytes()
    ls.shard(m, mesh, partition=rules)
    report.update(
        big_full_bytes=inf.param_bytes, big_bytes_per_rank=inf.param_bytes_per_device,
        big_peak_rss_growth=rss_bytes() - before, big_rss_before=before,
        big_largest_param_bytes=max(math.prod(p.shape) * 4 for p in inf.params.values()),
    )


def main() -> None:
    out_path = sys.argv[1]
    dist.init_process_group("gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    report: dict[str, object] = {"world": world}
    try:
        if len(sys.argv) > 2 and sys.argv[2] == "big":
            big(init_device_mesh("cpu", (world,), mesh_dim_names=("tp",)), world, report)
        else:
            llama_tp(init_device_mesh("cpu", (world,), mesh_dim_names=("tp",)), world, report)
            dp = init_device_mesh("cpu", (world,), mesh_dim_names=("dp",))
            cnn_fsdp(dp, world, report)
            cnn_replicated(dp, world, report)
        report["peak_rss"] = rss_bytes()
        rss = [0] * world
        dist.all_gather_object(rss, report["peak_rss"])
        report["peak_rss_per_rank"] = rss
        dist.barrier()  # no rank leaves while another still talks to it
    finally:
        dist.destroy_process_group()
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump(report, f)
    print(f"rank {rank}/{world} ok", os.getpid(), flush=True)
    # every check has passed: leave without the interpreter's teardown, where
    # gloo's threads can abort a rank after its work is done ("terminate called
    # without an active exception")
    os._exit(0)


if __name__ == "__main__":
    main()
