"""``ls.save_sharded`` / ``ls.load_sharded``: checkpoints of sharded models,
written and read shard by shard, loadable onto another mesh.

The core imports no framework: these functions find the backend that owns
the model or its arrays and call its ``save_sharded`` / ``load_sharded``.
torch's uses ``torch.distributed.checkpoint``. Backends without a sharded
format of their own (JAX, unless orbax is installed) write the format of this
module, framework-free:

- a directory holding one safetensors file per device, ``device-00003.
  safetensors``, with that device's shard of each tensor, under the tensor's
  name; a shard replicated on several devices is written once;
- ``index.json``, written last: ``{"format": "lazyshape-sharded", "version":
  1, "tensors": {name: {"shape": [...], "dtype": "float32", "shards":
  [{"file": ..., "offset": [...], "shape": [...]}, ...]}}}``, each shard's
  global offset and shape.

A reader assembles any box of a tensor from the shards it overlaps, reading
only the slices it needs (`ShardedReader.read`). Every file is checked before
it is read (as ``ls.load`` checks one): every fault is a `CheckpointError`
naming the file and the tensor; nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._backends import backend_for, get_backend
from ._checkpoint import CheckpointError, _check_file, _fsync_dir

__all__ = ["save_sharded", "load_sharded", "write_shards", "ShardedReader"]

INDEX = "index.json"
FORMAT = "lazyshape-sharded"
VERSION = 1


# -- dispatch -------------------------------------------------------------------


def _first_leaf(x: Any) -> Any:
    while isinstance(x, Mapping):
        if not x:
            return None
        x = next(iter(x.values()))
    return x


def _backend_of(x: Any, what: str) -> Any:
    rt = getattr(x, "_rt", None)
    name = getattr(getattr(rt, "config", None), "backend", "")
    if name:
        backend = get_backend(name)
    else:
        leaf = _first_leaf(x) if isinstance(x, Mapping) else None
        if leaf is None:
            raise TypeError(
                f"{what} takes a model built with ls.build(...) or a non-empty mapping of a "
                f"backend's arrays; got {type(x).__name__}"
            )
        backend = backend_for(leaf)
        name = backend.name
    if not hasattr(backend, what):
        raise NotImplementedError(
            f"the {name!r} backend has no {what}(...); ls.save / ls.load write and read "
            f"whole tensors"
        )
    return backend


def save_sharded(model_or_state: Any, path: str | os.PathLike[str]) -> None:
    """Write a sharded model's parameters and buffers to the directory ``path``,
    each device or rank writing only its own shards.

    ``model_or_state``: a built model, or its state (torch: a ``state_dict``
    of tensors and ``DTensor``\\ s; JAX: ``init``'s variables, or a mapping of
    canonical names to ``jax.Array``\\ s). torch writes with
    ``torch.distributed.checkpoint`` (call it on every rank); JAX writes one
    safetensors file per device and an ``index.json`` of each shard's offset,
    a replicated shard once. The checkpoint loads onto any mesh with
    `load_sharded`; a complete directory replaces an existing one only once
    written (JAX)."""
    _backend_of(model_or_state, "save_sharded").save_sharded(model_or_state, path)


def load_sharded(path: str | os.PathLike[str], into: Any) -> Any:
    """Read a checkpoint of `save_sharded` onto ``into``'s shardings, whatever
    the mesh it was saved from: each device or rank reads only the slices of
    its own shards, and the values are the saved ones bit for bit.

    ``into``: torch: a built model sharded by ``ls.shard`` or FSDP2 (or not
    sharded), loaded in place on every rank and returned. JAX: the shardings
    of ``m.shardings(*inputs)`` (``{"params": {...}, "batch_stats": ...}``)
    or a mapping of names to ``jax.sharding.Sharding``\\ s: returns the arrays
    in the same layout, each on its sharding; or a built, materialized JAX
    model, loaded on its arrays' shardings and returned. A checkpoint with
    other names or shapes is a `CheckpointError` naming the tensor."""
    return _backend_of(into, "load_sharded").load_sharded(path, into)


# -- the per-shard format (framework-free) ----------------------------------------

#: one shard of one tensor: (global offset per dim, its values)
Shard = tuple[Sequence[int], "np.ndarray[Any, Any]"]


def write_shards(
    path: str | os.PathLike[str],
    tensors: Mapping[str, tuple[Sequence[int], str]],
    files: Iterable[tuple[str, Mapping[str, Shard]]],
) -> None:
    """Write a checkpoint directory: ``tensors`` is ``{name: (global shape,
    dtype name)}``; ``files`` yields ``(file name, {name: (offset, values)})``,
    one safetensors file each (consumed one at a time: the caller may produce
    each device's shards lazily). The shards of each tensor must tile it
    exactly. Written into a temporary directory beside ``path`` that replaces
    ``path`` once complete."""
    from safetensors.numpy import save_file

    target = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=parent)
    try:
        index: dict[str, Any] = {
            name: {"shape": [int(d) for d in shape], "dtype": dtype, "shards": []}
            for name, (shape, dtype) in tensors.items()
        }
        for file, shards in files:
            arrays: dict[str, np.ndarray[Any, Any]] = {}
            for name, (offset, values) in shards.items():
                arr = np.ascontiguousarray(values) if values.ndim else np.asarray(values)
                arrays[name] = arr
                index[name]["shards"].append(
                    {"file": file, "offset": [int(o) for o in offset],
                     "shape": [int(d) for d in arr.shape]}
                )
            if arrays:
                save_file(arrays, os.path.join(tmp, file), metadata={"format": FORMAT})
        for name, entry in index.items():  # a writer's bug, not a file's fault
            covered = sum(math.prod(s["shape"]) for s in entry["shards"])
            if covered != math.prod(entry["shape"]):
                raise ValueError(
                    f"the shards of `{name}` cover {covered} of its "
                    f"{math.prod(entry['shape'])} elements"
                )
        with open(os.path.join(tmp, INDEX), "w") as f:
            json.dump({"format": FORMAT, "version": VERSION, "tensors": index}, f)
        for file in os.listdir(tmp):
            with open(os.path.join(tmp, file), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        old = None
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".old",
                                   dir=parent)
            os.replace(target, os.path.join(old, "x"))
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    _fsync_dir(parent)


def _int_list(value: object, n: int | None = None) -> bool:
    return (isinstance(value, list) and (n is None or len(value) == n)
            and all(type(v) is int and v >= 0 for v in value))


class ShardedReader:
    """A checkpoint directory of `write_shards`, its index checked on opening.

    ``tensors``: ``{name: (global shape, dtype name)}``. ``read(name, box)``:
    the values of ``box`` (a tuple of slices, one per dim, steps of 1) of
    tensor ``name``, a NumPy array of the box's shape, read from only the
    slices of the shards it overlaps."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        file = os.path.join(self.path, INDEX)
        try:
            with open(file, "rb") as f:
                raw = json.loads(f.read().decode("utf-8"))
        except OSError as e:
            raise CheckpointError(
                file, f"cannot be read ({e.strerror or e}); not a sharded checkpoint "
                "directory?") from e
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(file, f"is not JSON ({e})") from e
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise CheckpointError(file, f"is not a {FORMAT} index")
        if raw.get("version") != VERSION:
            raise CheckpointError(file, f"version {raw.get('version')!r}; this reads {VERSION}")
        tensors = raw.get("tensors")
        if not isinstance(tensors, dict):
            raise CheckpointError(file, "its `tensors` is not a JSON object")
        self._index = file
        self.tensors: dict[str, tuple[tuple[int, ...], str]] = {}
        self._shards: dict[str, list[tuple[str, tuple[int, ...], tuple[int, ...]]]] = {}
        for name, entry in tensors.items():
            self._check_entry(name, entry)
            self.tensors[name] = (tuple(entry["shape"]), entry["dtype"])
            self._shards[name] = [
                (s["file"], tuple(s["offset"]), tuple(s["shape"])) for s in entry["shards"]
            ]
        self._headers: dict[str, dict[str, Any]] = {}

    def _check_entry(self, name: str, entry: object) -> None:
        file = self._index
        if not isinstance(entry, dict) or not {"shape", "dtype", "shards"} <= set(entry):
            raise CheckpointError(file, "not a tensor entry (shape, dtype, shards)", name)
        shape, shards = entry["shape"], entry["shards"]
        if not _int_list(shape) or not isinstance(entry["dtype"], str):
            raise CheckpointError(file, f"shape {shape!r} or dtype {entry['dtype']!r} is "
                                  "malformed", name)
        if not isinstance(shards, list):
            raise CheckpointError(file, "its shards are not a list", name)
        covered = 0
        for s in shards:
            ok = (isinstance(s, dict) and isinstance(s.get("file"), str)
                  and _int_list(s.get("offset"), len(shape))
                  and _int_list(s.get("shape"), len(shape)))
            if not ok or os.path.basename(s["file"]) != s["file"] or s["file"] == INDEX:
                raise CheckpointError(file, f"malformed shard entry {s!r}", name)
            if any(o + n > d for o, n, d in zip(s["offset"], s["shape"], shape, strict=True)):
                raise CheckpointError(
                    file, f"shard at {s['offset']} of shape {s['shape']} lies outside the "
                    f"tensor's shape {shape}", name)
            covered += math.prod(s["shape"])
        boxes = [(s["offset"], s["shape"]) for s in shards if math.prod(s["shape"])]
        for i, (o1, n1) in enumerate(boxes):
            for o2, n2 in boxes[:i]:
                if all(a < c + m and c < a + n for a, n, c, m in zip(o1, n1, o2, n2, strict=True)):
                    raise CheckpointError(
                        file, f"its shards at {o2} and {o1} overlap", name)
        if covered != math.prod(shape):
            raise CheckpointError(
                file, f"its shards hold {covered} elements; the tensor has {math.prod(shape)}",
                name)

    def _header(self, file: str) -> dict[str, Any]:
        header = self._headers.get(file)
        if header is None:
            header = self._headers[file] = _check_file(os.path.join(self.path, file))
        return header

    def read(self, name: str, box: Sequence[slice]) -> np.ndarray[Any, Any]:
        """The values of ``box`` of tensor ``name`` (see the class)."""
        from safetensors import safe_open

        shape, dtype = self.tensors[name]
        lo = [b.indices(d)[0] for b, d in zip(box, shape, strict=True)]
        hi = [b.indices(d)[1] for b, d in zip(box, shape, strict=True)]
        out: np.ndarray[Any, Any] | None = None
        filled = 0
        for file, offset, sshape in self._shards[name]:
            start = [max(a, o) for a, o in zip(lo, offset, strict=True)]
            stop = [min(b, o + n) for b, o, n in zip(hi, offset, sshape, strict=True)]
            if any(a >= b for a, b in zip(start, stop, strict=True)) and 0 not in sshape:
                continue
            where = os.path.join(self.path, file)
            entry = self._header(file).get(name)
            if not isinstance(entry, dict) or tuple(entry["shape"]) != sshape:
                raise CheckpointError(
                    where, f"holds no tensor of shape {sshape} under this name "
                    f"(the index's shard at {list(offset)})", name)
            src = tuple(slice(a - o, b - o) for a, b, o in zip(start, stop, offset, strict=True))
            dst = tuple(slice(a - x, b - x) for a, b, x in zip(start, stop, lo, strict=True))
            try:
                with safe_open(where, framework="numpy") as f:
                    part = f.get_slice(name)[src] if src else f.get_tensor(name)
            except Exception as e:  # what the header check could not see: the file's fault
                raise CheckpointError(where, f"safetensors cannot read it ({e})", name) from e
            if np.dtype(part.dtype).name != dtype:
                raise CheckpointError(
                    where, f"dtype {np.dtype(part.dtype).name}; the index says {dtype}", name)
            if out is None:
                out = np.empty([b - a for a, b in zip(lo, hi, strict=True)], part.dtype)
            out[dst] = part
            filled += part.size
        if out is None or filled != out.size:
            raise CheckpointError(
                self._index, f"its shards do not cover the box {lo}-{hi}", name)
        return out
