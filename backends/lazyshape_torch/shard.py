"""Sharded materialization on torch: DTensor placements from partition rules,
and shard-local initialization from the portable streams.

``ls.shard(m, mesh, partition=rules)`` turns each tensor of a model built on
the ``meta`` device and materialized (shapes known, no storage) into a
``DTensor`` on ``mesh`` whose placements follow the rules, allocating only
this rank's shard; ``ls.init_(m)`` (re)draws every tensor in place, each rank
writing only its local shard (after FSDP2's ``fully_shard`` and
``to_empty``, or after `shard`). Values come from the portable streams (one
Philox stream per parameter path), so the gathered tensors equal the
unsharded ``rng="portable"`` build bit for bit, whatever the sharding.

A shard is drawn by streaming its parameter's values block by block of whole
leading-dim rows and keeping the rows and columns that fall in the shard: the
memory is the shard and one block, never the full tensor (truncated normal
and orthogonal draws, whose streams depend on the whole tensor, draw it whole).

The forward after `shard` takes and returns ordinary tensors: Llama-style
attention and MLP blocks run Megatron's tensor parallelism
(``ColwiseParallel`` / ``RowwiseParallel`` of ``torch.distributed.tensor.
parallel``, local heads), other ``nn.Linear`` / ``nn.Embedding`` modules the
same styles with replicated inputs and outputs, and any other module holding
DTensors computes on DTensors (replicated inputs, outputs gathered).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Placement, Replicate, Shard, distribute_module
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    RowwiseParallel,
    parallelize_module,
)
from torch.utils._pytree import tree_map_only

from lazyshape import Partition, ShardSpec
from lazyshape.backend import (
    Constant,
    Initializer,
    Normal,
    ParamSpec,
    Uniform,
    normalize_dtype,
    numpy_dtype,
    portable_generator,
    sample_numpy,
)

from . import attention, native

__all__ = ["shard", "init_", "placements", "draw_local"]

#: elements drawn at a time when streaming a shard (the stream is the same
#: whatever the block size)
BLOCK = 1 << 16


# -- where each tensor lives ----------------------------------------------------


def _slots(model: nn.Module) -> dict[str, tuple[nn.Module, str, bool]]:
    """``{canonical name: (owning module, attribute, is a parameter)}``."""
    out: dict[str, tuple[nn.Module, str, bool]] = {}
    for prefix, mod in model.named_modules(remove_duplicate=False):
        bare = mod.__dict__.get("_ls_bare", False)
        for table, is_param in ((mod._parameters, True), (mod._buffers, False)):
            for leaf, t in table.items():
                if t is None:
                    continue
                if bare and leaf == native.BARE_NAME and prefix:
                    name = prefix
                else:
                    name = f"{prefix}.{leaf}" if prefix else leaf
                out.setdefault(name, (mod, leaf, is_param))
    return out


def _tensor(slots: dict[str, tuple[nn.Module, str, bool]], name: str
            ) -> tuple[tuple[nn.Module, str, bool], torch.Tensor]:
    """The slot of canonical tensor ``name`` and the tensor in it."""
    slot = slots.get(name)
    if slot is None:
        raise KeyError(f"the model has no tensor `{name}`")
    mod, leaf, is_param = slot
    t = (mod._parameters if is_param else mod._buffers)[leaf]
    assert t is not None
    return slot, t


def _set(model: nn.Module, slot: tuple[nn.Module, str, bool], value: torch.Tensor) -> None:
    mod, leaf, is_param = slot
    mods = [mod]
    root = model.__dict__.get("_root")
    if mod is model and root is not None:  # a layer built alone: its tables are aliased
        mods.append(root)
    for m in mods:
        if is_param:
            m._parameters[leaf] = value  # type: ignore[assignment]
        else:
            m._buffers[leaf] = value


def _specs(model: nn.Module) -> dict[str, ParamSpec]:
    rt = getattr(model, "_rt", None)
    if rt is None or not rt.initialized or rt.specs is None:
        raise RuntimeError(
            "the model is not materialized: call m.materialize(...) (on device='meta' "
            "it allocates nothing) before sharding or initializing it"
        )
    return dict(rt.specs)


# -- placements -------------------------------------------------------------------


def placements(shard_spec: ShardSpec, mesh_dims: tuple[str, ...], name: str) -> list[Placement]:
    """The DTensor placements (one per mesh dim, in ``mesh_dims`` order) of a
    parameter partitioned as ``shard_spec``: ``Shard(d)`` on each mesh dim
    that splits tensor dim ``d``, ``Replicate()`` elsewhere."""
    out: list[Placement] = [Replicate() for _ in mesh_dims]
    for d, axes in enumerate(shard_spec.axes):
        idx = [mesh_dims.index(a) for a in axes]
        if idx != sorted(idx):
            raise ValueError(
                f"`{name}`: dim {d} is split over mesh axes {axes} in an order other than "
                f"the mesh's {mesh_dims}; DTensor splits a dim over several mesh axes in "
                "mesh order: list them in that order in the rule"
            )
        for i in idx:
            out[i] = Shard(d)
    return out


# -- drawing a shard ---------------------------------------------------------------


def draw_local(
    prim: Initializer,
    shape: tuple[int, ...],
    dtype: str,
    rng: np.random.Generator,
    offset: tuple[int, ...],
    local_shape: tuple[int, ...],
    out: np.ndarray[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """The block ``[offset, offset + local_shape)`` of the tensor of ``shape``
    that ``sample_numpy(prim, shape, dtype, rng)`` draws, as a NumPy array of
    ``local_shape`` and ``dtype``, bit for bit. Uniform and normal draws stream
    the values in blocks of whole rows of dim 0 and stop after the block's
    last row: the memory is the block and one stream block. With ``out`` (a
    C-contiguous array of ``local_shape`` and ``dtype``, e.g. a CPU tensor's
    NumPy view) the values are written there and ``out`` returned."""
    if tuple(local_shape) == tuple(shape):
        return sample_numpy(prim, shape, dtype, rng, out)
    if out is None:
        out = np.empty(local_shape, dtype=numpy_dtype(dtype))
    if isinstance(prim, Constant):
        out.fill(prim.val)
        return out
    box = tuple(slice(o, o + n) for o, n in zip(offset, local_shape, strict=True))
    if not isinstance(prim, (Uniform, Normal)):  # the stream depends on the whole tensor
        out[...] = sample_numpy(prim, shape, dtype, rng)[box]
        return out
    row = math.prod(shape[1:])
    step = max(1, BLOCK // max(row, 1))
    lo, hi = offset[0], offset[0] + local_shape[0]
    for r in range(0, hi, step):
        b = min(step, shape[0] - r)
        k = b * row
        if isinstance(prim, Uniform):
            vals = prim.a + (prim.b - prim.a) * rng.random(k)
        else:
            vals = prim.mean + prim.std * rng.standard_normal(k)
        s, e = max(r, lo), min(r + b, hi)
        if s < e:
            out[s - lo : e - lo] = vals.reshape(b, *shape[1:])[(slice(s - r, e - r), *box[1:])]
    return out


def _fill(
    t: torch.Tensor, spec: ParamSpec, name: str, seed: int, dtype: str, owned: bool
) -> None:
    """Write the portable values of ``name`` into ``t`` (a DTensor: its local
    shard only). ``owned``: the storage is ours (made by `shard`), so NumPy may
    view it (which makes it non-resizable: never done to FSDP2's)."""
    shape = tuple(int(d) for d in spec.shape)
    if tuple(t.shape) != shape:
        raise ValueError(f"`{name}` has shape {tuple(t.shape)}; its spec says {shape}")
    if isinstance(t, DTensor):
        local = t.to_local()
        want, offset = compute_local_shape_and_global_offset(
            t.shape, t.device_mesh, t.placements
        )
        if tuple(local.shape) != tuple(want):
            raise ValueError(
                f"`{name}`: the local shard has shape {tuple(local.shape)}, its placements "
                f"{t.placements} give {tuple(want)}"
            )
    else:
        local, offset, want = t, tuple(0 for _ in shape), shape
    if local.is_meta:
        raise RuntimeError(
            f"`{name}` is on the meta device (no storage): call m.to_empty(device=...) first"
        )
    prim = spec.init.primitive(shape)
    rng = portable_generator(seed, name)
    dt = spec.dtype or dtype
    direct = (owned and local.device.type == "cpu" and local.is_contiguous()
              and local.dtype != torch.bfloat16 and normalize_dtype(local.dtype) == dt)
    # straight into the shard's memory when NumPy can view it: no copy
    out = local.numpy() if direct else None
    value = draw_local(prim, shape, dt, rng, tuple(offset), tuple(want), out)
    if not direct:
        if value.dtype.name == "bfloat16":  # torch can't wrap ml_dtypes' (float32 is exact)
            value = value.astype(np.float32)
        local.copy_(torch.from_numpy(value))


def init_(model: nn.Module, *, seed: int | None = None, _owned: bool = False) -> nn.Module:
    """Draw every parameter and buffer of a built, materialized model in place
    from the portable streams of ``seed`` (default: the build's), each DTensor
    writing only its local shard. FSDP2 modules are resharded first (their
    registered parameters are then the sharded DTensors)."""
    from torch.distributed.fsdp import FSDPModule

    for mod in model.modules():
        if isinstance(mod, FSDPModule):
            mod.reshard()
    specs = _specs(model)
    config: Any = getattr(model, "_rt").config  # noqa: B009 - a TorchModel's
    seed = config.portable_seed if seed is None else seed
    if type(seed) is not int or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    slots = _slots(model)
    with torch.no_grad():
        for name, spec in specs.items():
            _, t = _tensor(slots, name)
            _fill(t, spec, name, seed, config.dtype, _owned)
    return model


# -- shard --------------------------------------------------------------------------


def shard(
    model: nn.Module, mesh: DeviceMesh, partition: Partition, *, seed: int | None = None
) -> nn.Module:
    """Replace each tensor of a meta-materialized model by a DTensor on ``mesh``
    placed by ``partition``, allocate this rank's shards, draw them (portable
    streams of ``seed``), and make the forward run on the shards."""
    if not isinstance(mesh, DeviceMesh):
        raise TypeError(f"shard takes a torch DeviceMesh; got {type(mesh).__name__}")
    names = mesh.mesh_dim_names
    if names is None:
        raise ValueError("the mesh needs named dims: init_device_mesh(..., mesh_dim_names=(...))")
    specs = _specs(model)
    mesh_shape = dict(zip(names, mesh.shape, strict=True))
    built: Any = model  # a TorchModel
    inf = built.inference
    assert inf is not None
    shards = inf.partitioned(partition, mesh_shape).shards
    slots = _slots(model)
    device = torch.device(mesh.device_type)
    made: dict[str, list[Placement]] = {}
    for name, spec in specs.items():
        slot, old = _tensor(slots, name)
        is_param = slot[2]
        if isinstance(old, DTensor):
            raise ValueError(f"`{name}` is already a DTensor: the model is sharded already")
        places = placements(shards[name], names, name)
        shape = tuple(int(d) for d in spec.shape)
        local_shape, _ = compute_local_shape_and_global_offset(shape, mesh, places)
        local = torch.empty(local_shape, dtype=old.dtype, device=device)
        dt = DTensor.from_local(
            local, mesh, places, run_check=False, shape=torch.Size(shape),
            stride=_contiguous_strides(shape),
        )
        new: torch.Tensor = nn.Parameter(dt, old.requires_grad) if is_param else dt
        _set(model, slot, new)
        made[name] = places
    init_(model, seed=seed, _owned=True)
    _parallelize(model, mesh)
    built._ready1.clear()  # input signatures checked against the old tensors
    built._ready.clear()
    return model


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(strides))


# -- the forward on shards -------------------------------------------------------------


def _own_dtensors(mod: nn.Module) -> dict[str, DTensor]:
    out = {}
    for table in (mod._parameters, mod._buffers):
        for k, t in table.items():
            if isinstance(t, DTensor):
                out[k] = t
    return out


def _is(t: Any, *places: Placement) -> bool:
    return t is None or tuple(t.placements) == places


def _linear_style(mod: nn.Module, local_output: bool) -> ParallelStyle | None:
    """Colwise / rowwise for an ``nn.Linear`` or ``nn.Embedding`` sharded as
    Megatron shards them on a 1-D mesh; None otherwise. ``local_output``:
    leave the output sharded (the block's next module takes it so)."""
    w = mod._parameters.get("weight")
    if not isinstance(w, DTensor) or w.device_mesh.ndim != 1:
        return None
    b = mod._parameters.get("bias")
    if isinstance(mod, nn.Linear):
        if _is(w, Shard(0)) and _is(b, Shard(0)):
            return ColwiseParallel() if local_output else ColwiseParallel(
                output_layouts=Replicate())
        if _is(w, Shard(1)) and _is(b, Replicate()):
            return RowwiseParallel() if local_output else RowwiseParallel(
                input_layouts=Replicate())
    elif isinstance(mod, nn.Embedding) and not local_output:
        if _is(w, Shard(0)):
            return RowwiseParallel(input_layouts=Replicate(), output_layouts=Replicate())
        if _is(w, Shard(1)):
            return ColwiseParallel(output_layouts=Replicate())
    return None


def _block_plan(mod: nn.Module) -> dict[str, ParallelStyle] | None:
    """Megatron's plan for a Llama attention or MLP block whose projections are
    sharded column- then row-wise: the intermediate stays sharded (local heads)."""
    cols: tuple[str, ...]
    if isinstance(mod, attention.Attention):
        cols, rows = ("q_proj", "k_proj", "v_proj"), ("o_proj",)
    elif isinstance(mod, attention.SwiGLU):
        cols, rows = ("gate_proj", "up_proj"), ("down_proj",)
    else:
        return None
    first = next(iter(_own_dtensors(getattr(mod, cols[0])).values()), None)
    ways = first.device_mesh.size() if first is not None else 0
    heads = (mod.num_heads, mod.num_kv_heads) if isinstance(mod, attention.Attention) else ()
    if not ways or any(h % ways for h in heads):
        return None
    plan: dict[str, ParallelStyle] = {}
    groups: tuple[tuple[tuple[str, ...], type[ParallelStyle]], ...] = (
        (cols, ColwiseParallel), (rows, RowwiseParallel))
    for names, style in groups:
        for k in names:
            s = _linear_style(getattr(mod, k), local_output=True)
            if not isinstance(s, style) or _own_dtensors(mod) or _has_other(mod, cols + rows):
                return None
            plan[k] = s
    return plan


def _has_other(mod: nn.Module, children: tuple[str, ...]) -> bool:
    return any(k not in children for k in mod._modules)


def _replicated_in(mod: nn.Module, inputs: Any, mesh: DeviceMesh) -> Any:
    return tree_map_only(
        torch.Tensor,
        lambda x: x if isinstance(x, DTensor)
        else DTensor.from_local(x, mesh, [Replicate()] * mesh.ndim, run_check=False),
        inputs,
    )


def _gathered_out(mod: nn.Module, outputs: Any, mesh: DeviceMesh) -> Any:
    return tree_map_only(DTensor, lambda y: y.full_tensor(), outputs)


def _parallelize(model: nn.Module, mesh: DeviceMesh) -> None:
    """Make the forward take and return ordinary tensors around the DTensors."""
    done: set[int] = set()
    for _, mod in list(model.named_modules()):
        if id(mod) in done:
            continue
        plan = _block_plan(mod) if mesh.ndim == 1 else None
        if plan is not None:
            parallelize_module(mod, mesh, plan)
            if isinstance(mod, attention.Attention):  # local heads, as Megatron's
                mod.num_heads //= mesh.size()
                mod.num_kv_heads //= mesh.size()
            done.update(id(m) for m in mod.modules())
            continue
        if not _own_dtensors(mod) or mod is model:
            continue
        style = _linear_style(mod, local_output=False)
        if style is not None:
            parallelize_module(mod, mesh, style)
        else:
            distribute_module(mod, mesh, input_fn=_replicated_in, output_fn=_gathered_out)
        done.add(id(mod))
    if _own_dtensors(model):  # a layer built alone
        distribute_module(model, mesh, input_fn=_replicated_in, output_fn=_gathered_out)


def shard_sizes(model: nn.Module) -> Iterator[tuple[str, int]]:
    """``(name, local element count)`` of each DTensor of ``model``."""
    for name, (mod, leaf, is_param) in _slots(model).items():
        t = (mod._parameters if is_param else mod._buffers)[leaf]
        if isinstance(t, DTensor):
            yield name, t.to_local().numel()

