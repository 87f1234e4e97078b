"""``lazyshape plan``: what one device of a mesh holds in a training step of a
model, from its shapes alone (no allocation, no framework).

The model is resolved on a batch and sequence (or any input shape), its
parameters split by a `Partition` over the mesh, and the training step's
memory (`Inference.memory_per_device`) printed per device, with whether it
fits a device's memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._dims import Dim, format_dim
from ._layer import Layer
from ._memory import format_bytes, parse_bytes
from ._partition import Partition
from ._propagate import Inference, infer

__all__ = ["parse_mesh", "load_config", "plan", "format_plan"]


def parse_mesh(text: str) -> dict[str, int]:
    """``"dp=8,tp=8"`` → ``{"dp": 8, "tp": 8}``."""
    mesh: dict[str, int] = {}
    for part in text.split(","):
        name, sep, size = part.strip().partition("=")
        if not sep or not name.strip() or not size.strip().isdigit() or int(size) < 1:
            raise ValueError(f"a mesh like 'dp=8,tp=8' (axis=size, sizes >= 1); got {text!r}")
        mesh[name.strip()] = int(size)
    return mesh


def load_config(text: str, presets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A config by preset name (``"70b"``), as inline JSON (``'{"hidden_size":
    512}'``) or as the path of a JSON file (a transformers ``config.json``)."""
    if text in presets:
        return dict(presets[text])
    if text.lstrip().startswith("{"):
        loaded = json.loads(text)
    else:
        path = Path(text)
        if not path.is_file():
            names = ", ".join(presets) or "none"
            raise ValueError(f"a preset ({names}), inline JSON or a JSON file; got {text!r}")
        loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"a config is a JSON object; got {type(loaded).__name__}")
    return loaded


def default_partition(mesh: Mapping[str, int]) -> Partition:
    """Megatron tensor parallelism over the mesh axis ``tp`` (when the mesh has
    one), the batch over ``dp``."""
    axes: dict[str, str] = {}
    if "tp" in mesh:
        axes["model"] = "tp"
    if "dp" in mesh:
        axes["batch"] = "dp"
    return Partition.megatron(axes)


def plan(
    model: Layer,
    inputs: tuple[Any, ...],
    mesh: Mapping[str, int],
    partition: Partition | None = None,
    *,
    dtype: str = "float32",
    optimizer: str = "adam",
) -> tuple[Inference, float]:
    """The partitioned inference of ``model`` on ``inputs`` (global batch), and
    the seconds it took."""
    start = time.perf_counter()
    inf = infer(model, *inputs, dtype=dtype, partition=partition or default_partition(mesh),
                mesh_shape=mesh)
    inf.memory_per_device(optimizer)  # resolve every figure inside the timing
    return inf, time.perf_counter() - start


def _size(d: Dim) -> str:
    return format_bytes(d) if type(d) is int else f"{format_dim(d)} B"


def format_plan(
    inf: Inference,
    seconds: float,
    *,
    title: str,
    optimizer: str = "adam",
    device_memory: str | int | None = None,
) -> str:
    """The plan as text: the per-device bytes of each part, their total, and
    whether it fits ``device_memory``."""
    mesh = inf._mesh
    devices = 1
    for n in mesh.values():
        devices *= n
    mem = inf.memory_per_device(optimizer)
    count = inf.num_params
    lines = [
        f"{title}: {format_dim(count) if type(count) is not int else f'{count:,}'} "
        f"parameters, {inf.dtype}, {optimizer}",
        "mesh " + " x ".join(f"{k}={v}" for k, v in mesh.items()) + f" ({devices} devices)",
        "input " + ", ".join(str(tuple(s.shape)) for s in inf.inputs) + " (global batch)",
        "",
        "per device",
    ]
    rows = [
        ("parameters", mem.params),
        ("buffers", mem.buffers),
        ("gradients", mem.gradients),
        ("optimizer state", mem.optimizer_state),
        ("activations kept for backward", mem.saved_activations),
        ("outputs and their gradients", mem.outputs),
        ("total", mem.total),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        lines.append(f"  {name.ljust(width)}  {_size(value).rjust(12)}")
    if device_memory is not None:
        limit = parse_bytes(device_memory)
        total = mem.total
        if type(total) is int:
            verdict = (f"fits ({100 * total / limit:.0f}% used)" if total <= limit
                       else f"does not fit ({format_bytes(total - limit)} over)")
            lines.append(f"device memory {format_bytes(limit)}: {verdict}")
    lines.append(f"resolved in {seconds * 1e3:.1f} ms")
    return "\n".join(lines)
