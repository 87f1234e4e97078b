"""Sharded materialization on torch: ``ls.shard`` (DTensor placements from
partition rules) and ``ls.init_`` (the FSDP2 path), on 2 and 4 CPU processes
over gloo. The checks run in each rank of ``tests/torch_sharded_probe.py``;
this file runs it and reads what rank 0 measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _distributed import LLAMA

import lazyshape as ls
from lazyshape import zoo

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

PROBE = Path(__file__).with_name("torch_sharded_probe.py")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
@pytest.mark.parametrize("world", [2, 4])
def test_sharded_init_on_gloo_ranks(world: int, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world),
         "--standalone", str(PROBE), str(out)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    report = json.loads(out.read_text())
    assert report["world"] == world
    # every tensor was checked (placements, local numel, bits) on every rank
    assert report["llama_tp_checked"] == 21
    assert report["cnn_fsdp_checked"] == report["cnn_replicated_checked"] == 9
    spec = ls.TensorSpec((2, 16), "int64")
    inf = ls.infer(zoo.llama(LLAMA), spec, partition=ls.Partition.megatron({"model": "tp"}),
                   mesh_shape={"tp": world})
    assert report["llama_tp_local_bytes"] == inf.param_bytes_per_device < inf.param_bytes
    # replicated: every rank holds everything; FSDP2: about a world-th of it
    assert report["cnn_fsdp_local_bytes"] < report["cnn_replicated_local_bytes"] / world * 1.2
    assert report["llama_tp_forward_max_err"] < 1e-5
    assert report["cnn_fsdp_forward_max_err"] < 1e-6
    assert len(report["peak_rss_per_rank"]) == world


def _sample(prim: ls.backend.Initializer, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return ls.backend.sample_numpy(prim, shape, "float32",
                                   ls.backend.portable_generator(seed, "w"))


@pytest.mark.parametrize("prim", [
    ls.backend.Uniform(-0.5, 0.5), ls.backend.Normal(0.0, 0.02), ls.backend.TruncNormal(0.0, 1.0, -1, 1),
    ls.backend.Constant(3.0),
])
@pytest.mark.parametrize(("shape", "offset", "local"), [
    ((300, 700), (100, 0), (100, 700)),     # rows: Shard(0), streamed
    ((300, 700), (0, 350), (300, 350)),     # columns: Shard(1)
    ((96, 3, 5, 5), (48, 1, 0, 0), (24, 2, 5, 5)),
    ((1 << 17,), (1 << 16,), (1 << 15,)),   # a long vector: several stream blocks
    ((6, 4), (0, 0), (6, 4)),               # whole
])
def test_draw_local_is_the_slice_of_the_full_draw(prim, shape, offset, local) -> None:
    from lazyshape_torch.shard import draw_local

    full = _sample(prim, shape, 7)
    box = tuple(slice(o, o + n) for o, n in zip(offset, local, strict=True))
    got = draw_local(prim, shape, "float32", ls.backend.portable_generator(7, "w"),
                     offset, local)
    assert got.shape == local and got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), full[box].view(np.uint32))
    out = np.empty(local, np.float32)
    assert draw_local(prim, shape, "float32", ls.backend.portable_generator(7, "w"),
                      offset, local, out) is out
    assert np.array_equal(out, full[box])


def test_init_needs_the_portable_streams_and_a_built_model() -> None:
    net = ls.Sequential(ls.Linear(4))
    m = ls.build(net, "torch", device="meta")
    with pytest.raises(ValueError, match="rng='portable'"):
        ls.init_(m, rng="native")
    with pytest.raises(RuntimeError, match="not materialized"):
        ls.init_(m)
    with pytest.raises(TypeError, match="built with ls.build"):
        ls.init_(torch.nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match="'numpy' backend has no shard"):
        ls.shard(ls.build(net, "numpy"), None)
    m.materialize((2, 3))
    with pytest.raises(RuntimeError, match="meta device"):
        ls.init_(m)
    m.to_empty(device="cpu")  # unsharded: init_ fills the whole tensors
    ls.init_(m, seed=5)
    ref = ls.build(net, "torch", rng="portable", seed=5)
    ref.materialize((2, 3))
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
