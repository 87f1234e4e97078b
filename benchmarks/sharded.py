"""Materializing a model already sharded: host memory and wall time.

Model: GPT-2 medium's shapes, ``zoo.gpt2(num_layers=24, embed_dim=1024,
num_heads=16, mlp_dim=4096)`` (354.8M parameters, float32), on token ids
``(1, 128)``. ``--quick`` (a smoke run, ~20 s): ``zoo.gpt2(num_layers=2,
embed_dim=256, num_heads=4, mlp_dim=1024)``, the 2x4 mesh and the torch ranks
with ``megatron+wte`` only, one process each; it judges only the wall-time
target, since at 56 MiB the frameworks' fixed scratch (80-300 MiB) swamps the
memory ratios. Two rule sets:

- ``megatron``: ``ls.Partition.megatron({"model": "tp"})``. GPT-2's token
  embedding (50,257 x 1,024, 14.5% of the model) divides by no usual
  tensor-parallel size and stays whole, i.e. replicated on every device;
- ``megatron+wte``: the same rules after ``("wte.weight", (None, "model"))``,
  which splits the embedding over its embed dim, so every weight matrix is split.

**JAX** on 8 simulated CPU devices (``XLA_FLAGS=
--xla_force_host_platform_device_count=8``, set before JAX is imported, a
fresh process per measurement), meshes ``("dp", "tp")`` = 2x4 (both rule
sets) and 1x8 (``megatron+wte``: the devices hold one copy of every split
weight):

- ``lazyshape``: ``m = ls.build(model, "jax", mesh=mesh, partition=rules)``,
  then ``m.init(key, x)`` (``rng="native"``: one jitted program per kind of
  parameter with ``out_shardings``);
- ``jax.jit``, the peer, written by hand: a pure-JAX ``init(key)`` drawing the
  same tree of parameters (weights ``normal * 0.02``, biases zeros, norm
  scales ones, one ``jax.random.split`` key each), run as
  ``jax.jit(init, out_shardings=m.shardings(x))`` — one program for the model.

Model definition, ``ls.build`` and the peer's ``jax.jit`` wrapper are made
before the measurement. Each process reports the first call (compile
included: what a user waits for, and what the wall-time target uses), the
median of the calls after it (compile excluded, information), and the resident
set's high-water mark during the first call above the resident set just before
it (the high-water mark reset through ``/proc/self/clear_refs``; JAX's devices
created before). Processes of the two contenders alternate, ``rounds`` of
each; ratios are of medians.

Simulated CPU devices keep their buffers in host memory, so on this machine
the host's peak necessarily holds what the 8 devices hold: the sum of every
shard (``addressable_shards``), measured. With dp=2 that is two copies of each
split parameter, and every replicated parameter is held 8 times, so the peak
over the full parameter bytes cannot reach 1.3 whatever the code does. The
target ("no device-sized duplicate": host peak <= 1.3 x the full parameter
bytes, written for devices with their own memory) is therefore checked as
what init adds *beyond the devices' own bytes*: ``(peak - device bytes) /
param bytes + 1 <= 1.3``, i.e. the host never holds more than 0.3 of a model
besides the shards. The plain ratios to the full parameter bytes and to the
devices' bytes are reported beside it. On the 1x8 mesh with every weight
split (``megatron+wte``) the devices hold one copy plus the replicated norms,
biases and position embedding, so there the plain ratio is close to the
target's meaning too.

**torch** on 4 gloo ranks (``python -m torch.distributed.run --standalone
--nproc-per-node 4``), a 1-D ``("tp",)`` mesh: on every rank
``ls.build(model, "torch", device="meta", rng="portable")``,
``m.materialize(x)``, ``ls.shard(m, mesh, partition=rules)``. Baseline: the
resident set after importing torch and lazyshape, initializing the process
group and the device mesh and defining the model; the peak is the high-water
mark during build + materialize + shard. Target per rank: ``peak - baseline
<= 1.3 x (param bytes / 4)``, reported as ``(peak - baseline) / (param bytes /
4)``, worst rank. Bytes each rank holds (``to_local()``) are reported beside
it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._report import Comparison, RatioCell
from ._timing import Stats

__all__ = ["run", "HOST_TARGET", "TIME_TARGET", "RANK_TARGET", "MODEL", "QUICK_MODEL"]

#: host peak over the full parameter bytes (beyond what the devices hold)
HOST_TARGET = 1.3
#: lazyshape's sharded init over the hand-written jax.jit, first call
TIME_TARGET = 1.5
#: per-rank peak above the baseline over param bytes / world size
RANK_TARGET = 1.3

MODEL = {"num_layers": 24, "embed_dim": 1024, "num_heads": 16, "mlp_dim": 4096}
QUICK_MODEL = {"num_layers": 2, "embed_dim": 256, "num_heads": 4, "mlp_dim": 1024}
INPUT = (1, 128)
DEVICES = 8
WORLD = 4
RULES = ("megatron", "megatron+wte")

ROOT = Path(__file__).resolve().parent.parent


# -- in the worker process ---------------------------------------------------------------

def _rules(name: str) -> Any:
    import lazyshape as ls

    mega = ls.Partition.megatron({"model": "tp"})
    if name == "megatron":
        return mega
    if name == "megatron+wte":
        return ls.Partition([("wte.weight", (None, "model")), *mega.rules], {"model": "tp"},
                            allow_unused=True)
    raise ValueError(f"rules: expected one of {RULES}, got {name!r}")


def _planned(model: Any, rules: Any, mesh_shape: dict[str, int]) -> dict[str, int]:
    import lazyshape as ls

    spec = ls.TensorSpec(INPUT, "int64")
    inf = ls.infer(model, spec, partition=rules, mesh_shape=mesh_shape)
    return {"param_bytes": int(inf.param_bytes), "num_params": int(inf.num_params),
            "param_bytes_per_device": int(inf.param_bytes_per_device)}


def _hand_written_init(shapes: Any) -> Any:
    """A pure-JAX init of the tree ``shapes`` (ShapeDtypeStructs): weights
    ``normal * 0.02``, biases zeros, norm scales ones."""
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)

    def init(key: Any) -> Any:
        keys = jax.random.split(key, len(leaves))
        out = []
        for k, (path, s) in zip(keys, leaves, strict=True):
            name = str(path[-1])
            if len(s.shape) >= 2:
                out.append(jax.random.normal(k, s.shape, s.dtype) * 0.02)
            elif "weight" in name and len(s.shape) == 1:  # norm scales
                out.append(jnp.ones(s.shape, s.dtype))
            else:
                out.append(jnp.zeros(s.shape, s.dtype))
        return jax.tree_util.tree_unflatten(treedef, out)

    return init


def _device_bytes(tree: Any) -> int:
    import jax

    return sum(sh.data.nbytes for a in jax.tree_util.tree_leaves(tree)
               for sh in a.addressable_shards)


def task_jax(contender: str, config: dict[str, int], mesh: list[int], rules: str,
             repeats: int) -> dict[str, Any]:
    """One contender's sharded init in this (fresh) process."""
    import gc

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh

    import lazyshape as ls
    from lazyshape import zoo

    from ._worker import peak, reset_peak, rss

    devices = jax.devices()
    if len(devices) != DEVICES:
        raise RuntimeError(f"expected {DEVICES} devices, got {len(devices)}")
    jmesh = Mesh(np.array(devices).reshape(mesh), ("dp", "tp"))
    model = zoo.gpt2(**config)
    partition = _rules(rules)
    out: dict[str, Any] = _planned(model, partition, {"dp": mesh[0], "tp": mesh[1]})
    m = ls.build(model, "jax", mesh=jmesh, partition=partition)
    x = jax.ShapeDtypeStruct(INPUT, jnp.int32)
    key = jax.random.key(0)
    if contender == "lazyshape":
        def call() -> Any:
            return m.init(key, x)
    elif contender == "jax_jit":
        shardings = m.shardings(x)
        shapes = jax.eval_shape(m.init, key, x)
        fn = jax.jit(_hand_written_init(shapes), out_shardings=shardings)

        def call() -> Any:
            return fn(key)
        del m
    else:
        raise ValueError(f"contender: expected lazyshape or jax_jit, got {contender!r}")

    gc.collect()
    base = rss()
    out["peak_reset"] = reset_peak()
    t0 = time.perf_counter()
    variables = jax.block_until_ready(call())
    out["first_call_s"] = time.perf_counter() - t0
    out["peak_increase_bytes"] = max(0, peak() - base)
    out["baseline_bytes"] = base
    out["device_bytes"] = _device_bytes(variables)
    out["num_arrays"] = len(jax.tree_util.tree_leaves(variables))
    times, peaks = [], []
    for _ in range(repeats):
        del variables  # the next call's arrays replace these
        gc.collect()
        base = rss()
        reset_peak()
        t0 = time.perf_counter()
        variables = jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
        peaks.append(max(0, peak() - base))
    del variables
    out["later_calls_s"] = times
    out["later_peak_increase_bytes"] = peaks
    return out


def task_torch_rank(config: dict[str, int], rules: str, out_dir: str) -> dict[str, Any]:
    """One rank of the torch measurement (under torch.distributed.run)."""
    import gc

    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    import lazyshape as ls
    from lazyshape import zoo

    from ._worker import peak, reset_peak, rss

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))
    model = zoo.gpt2(**config)
    partition = _rules(rules)
    out: dict[str, Any] = {"rank": rank, "world": world,
                           **_planned(model, partition, {"tp": world})}
    x = ls.TensorSpec(INPUT, "int64")
    dist.barrier()
    gc.collect()
    base = rss()
    out["peak_reset"] = reset_peak()
    t0 = time.perf_counter()
    m = ls.build(model, "torch", device="meta", rng="portable", seed=0)
    m.materialize(x)
    ls.shard(m, mesh, partition=partition)
    out["seconds"] = time.perf_counter() - t0
    out["peak_increase_bytes"] = max(0, peak() - base)
    out["baseline_bytes"] = base
    local = 0
    for t in (*m.parameters(), *m.buffers()):
        t = t.to_local() if hasattr(t, "to_local") else t
        local += t.numel() * t.element_size()
    out["local_bytes"] = local
    dist.barrier()
    dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(out))
    return out


TASKS: dict[str, Callable[..., dict[str, Any]]] = {"jax": task_jax,
                                                   "torch_rank": task_torch_rank}


def main(argv: list[str]) -> int:
    task, args = argv[0], json.loads(argv[1])
    print(json.dumps(TASKS[task](**args)), flush=True)
    return 0


# -- in the benchmark process ------------------------------------------------------------

def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra or {})
    return env


def _last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"exit {proc.returncode}: " + " | ".join(tail)[:400])
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def _jax_process(timeout: float, **args: Any) -> dict[str, Any]:
    flags = os.environ.get("XLA_FLAGS", "")
    env = _env({"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={DEVICES}".strip(),
                "JAX_PLATFORMS": "cpu"})
    cmd = [sys.executable, "-m", "benchmarks.sharded", "jax", json.dumps(args)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return _last_json(proc)


def _torch_processes(timeout: float, **args: Any) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={WORLD}", "-m", "benchmarks.sharded", "torch_rank",
               json.dumps({**args, "out_dir": d})]
        proc = subprocess.run(cmd, cwd=ROOT, env=_env({"OMP_NUM_THREADS": "1"}),
                              capture_output=True, text=True, timeout=timeout, check=False)
        ranks = sorted(Path(d).glob("rank*.json"))
        if proc.returncode != 0 or len(ranks) != WORLD:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"exit {proc.returncode}, {len(ranks)} ranks reported: "
                               + " | ".join(tail)[:400])
        return [json.loads(p.read_text()) for p in ranks]


#: why --quick judges no memory target
_QUICK_NOTE = ("--quick: no target, the model is too small (56 MiB): the frameworks' fixed "
               "~80-300 MiB of scratch dominates; ")


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def _mib(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def _jax(quick: bool, config: dict[str, int]
         ) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    rounds = 1 if quick else 2
    repeats = 1 if quick else 2
    cases = ([((2, 4), "megatron+wte")] if quick else
             [((2, 4), "megatron"), ((2, 4), "megatron+wte"), ((1, 8), "megatron+wte")])
    section: dict[str, Any] = {}
    rows: list[Comparison] = []
    cells: list[RatioCell] = []
    for mesh, rules in cases:
        tag = f"sharded jax {mesh[0]}x{mesh[1]} {rules}"
        runs: dict[str, list[dict[str, Any]]] = {"lazyshape": [], "jax_jit": []}
        try:
            for r in range(rounds):
                order = ("lazyshape", "jax_jit") if r % 2 == 0 else ("jax_jit", "lazyshape")
                for c in order:
                    runs[c].append(_jax_process(900, contender=c, config=config,
                                                mesh=list(mesh), rules=rules,
                                                repeats=repeats))
        except Exception as e:
            section[tag] = {"error": traceback.format_exc(), "runs": runs}
            rows.append(Comparison(f"{tag}: host peak", "x", target=HOST_TARGET,
                                   error=_first_line(e)))
            continue
        section[tag] = {"mesh": {"dp": mesh[0], "tp": mesh[1]}, "rules": rules, "runs": runs}
        lz, pj = runs["lazyshape"], runs["jax_jit"]
        pb, dev = lz[0]["param_bytes"], lz[0]["device_bytes"]
        per_dev = lz[0]["param_bytes_per_device"]
        lz_peak = Stats.of([o["peak_increase_bytes"] for o in lz])
        pj_peak = Stats.of([o["peak_increase_bytes"] for o in pj])
        beyond = Stats.of([(o["peak_increase_bytes"] - o["device_bytes"]) / pb + 1 for o in lz])
        rows.append(Comparison(
            f"{tag}: lazyshape (host peak - device bytes) / param bytes + 1", "x", beyond,
            None if quick else HOST_TARGET, "<=",
            (_QUICK_NOTE if quick else "")
            + f"peak {_mib(lz_peak.median)} above baseline; the 8 simulated devices hold "
            f"{_mib(dev)} (planned {DEVICES} x {_mib(per_dev)} = {_mib(DEVICES * per_dev)}); "
            f"param bytes {_mib(pb)}"))
        rows.append(Comparison(f"{tag}: lazyshape host peak / param bytes", "x",
                               lz_peak.scaled(1 / pb),
                               note="devices are host memory here: includes the devices' "
                                    f"{dev / pb:.2f} x"))
        rows.append(Comparison(f"{tag}: lazyshape host peak / device bytes", "x",
                               lz_peak.scaled(1 / dev)))
        rows.append(Comparison(f"{tag}: jax.jit host peak / param bytes", "x",
                               pj_peak.scaled(1 / pb),
                               note=f"the hand-written peer; {_mib(pj_peak.median)}"))
        mem_ratio = Stats.of([lz_peak.median / pj_peak.median])
        cells.append(RatioCell("sharded init peak", f"gpt2-{config['num_layers']}L "
                               f"{mesh[0]}x{mesh[1]} {rules}", "jax.jit", mem_ratio))
        lz_first = Stats.of([o["first_call_s"] for o in lz])
        pj_first = Stats.of([o["first_call_s"] for o in pj])
        first = Stats.of([lz_first.median / pj_first.median])
        rows.append(Comparison(
            f"{tag}: lazyshape / jax.jit init, first call (compile included)", "x", first,
            TIME_TARGET, "<=",
            f"{lz_first.median:.2f} s vs {pj_first.median:.2f} s, medians of {rounds} fresh "
            "processes each"))
        cells.append(RatioCell("sharded init", f"gpt2-{config['num_layers']}L "
                               f"{mesh[0]}x{mesh[1]} {rules}", "jax.jit", first))
        lz_later = Stats.of([t for o in lz for t in o["later_calls_s"]])
        pj_later = Stats.of([t for o in pj for t in o["later_calls_s"]])
        rows.append(Comparison(
            f"{tag}: lazyshape / jax.jit init, later calls (compiled)", "x",
            Stats.of([lz_later.median / pj_later.median]),
            note=f"{lz_later.median:.2f} s vs {pj_later.median:.2f} s"))
    return section, rows, cells


def _torch(quick: bool, config: dict[str, int]
           ) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    section: dict[str, Any] = {}
    rows: list[Comparison] = []
    for rules in (RULES[1:] if quick else RULES):
        tag = f"sharded torch {WORLD} gloo ranks tp={WORLD} {rules}"
        try:
            ranks = _torch_processes(1800, config=config, rules=rules)
        except Exception as e:
            section[tag] = {"error": traceback.format_exc()}
            rows.append(Comparison(f"{tag}: per-rank peak", "x", target=RANK_TARGET,
                                   error=_first_line(e)))
            continue
        section[tag] = {"rules": rules, "ranks": ranks}
        share = ranks[0]["param_bytes"] / WORLD
        worst = max(ranks, key=lambda o: o["peak_increase_bytes"])
        ratios = [o["peak_increase_bytes"] / share for o in ranks]
        rows.append(Comparison(
            f"{tag}: worst rank (peak - baseline) / (param bytes / {WORLD})", "x",
            Stats.of([max(ratios)]), None if quick else RANK_TARGET, "<=",
            (_QUICK_NOTE if quick else "")
            + f"peak {_mib(worst['peak_increase_bytes'])} above a baseline of "
            f"{_mib(worst['baseline_bytes'])}; the rank holds {_mib(worst['local_bytes'])} "
            f"(planned {_mib(worst['param_bytes_per_device'])}); param bytes / {WORLD} = "
            f"{_mib(share)}; ranks {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"{max(o['seconds'] for o in ranks):.1f} s"))
        rows.append(Comparison(
            f"{tag}: worst rank (peak - baseline) / bytes it holds", "x",
            Stats.of([max(o["peak_increase_bytes"] / o["local_bytes"] for o in ranks)])))
    return section, rows, []


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    config = QUICK_MODEL if quick else MODEL
    jax_section, jax_rows, cells = _jax(quick, config)
    torch_section, torch_rows, _ = _torch(quick, config)
    section = {"model": f"zoo.gpt2(**{config})", "input": INPUT, "jax": jax_section,
               "torch": torch_section,
               "targets": {"host_peak_over_param_bytes": HOST_TARGET,
                           "init_time_over_jax_jit": TIME_TARGET,
                           "rank_peak_over_share": RANK_TARGET}}
    return section, jax_rows + torch_rows, cells


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
