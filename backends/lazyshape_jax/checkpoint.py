"""Sharded checkpoints on JAX: ``ls.save_sharded`` / ``ls.load_sharded``.

Written in lazyshape's per-shard format (one safetensors file per device and
an ``index.json`` of each shard's global offset; see
``lazyshape._sharded_checkpoint``): orbax and tensorstore are not
dependencies of JAX. Saving copies one device's shards to the host at a time,
and only the first replica of a replicated shard
(``shard.replica_id == 0``). Loading builds each array with
``jax.make_array_from_callback`` on the target sharding: each device's
callback reads only the slices of the saved shards its own shard overlaps,
so the saving and loading meshes need not agree. One process (JAX's single
controller); several processes are not supported yet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np

from lazyshape import CheckpointError
from lazyshape._sharded_checkpoint import Shard, ShardedReader, write_shards

from .model import COLLECTIONS, JaxModel, flatten_variables

__all__ = ["save_sharded", "load_sharded"]


def _is_variables(tree: Mapping[str, Any]) -> bool:
    """``init``'s layout: ``{"params": {...}, "batch_stats": {...}}``."""
    return bool(tree) and all(
        c in COLLECTIONS and isinstance(v, Mapping) for c, v in tree.items()
    )


def _flat(tree: Any, what: str) -> dict[str, Any]:
    """A built model's state, ``init``'s variables or a flat mapping, as
    ``{canonical name: leaf}``."""
    if isinstance(tree, JaxModel):
        return tree.state_dict()
    if not isinstance(tree, Mapping):
        raise TypeError(f"{what} takes a built JAX model, variables or a mapping; got "
                        f"{type(tree).__name__}")
    if _is_variables(tree):
        return flatten_variables(tree)
    return dict(tree)


def _single_process() -> None:
    if jax.process_count() > 1:
        raise NotImplementedError(
            "sharded checkpoints on JAX run in one process; got "
            f"jax.process_count()={jax.process_count()}"
        )


def save_sharded(model_or_state: Any, path: str | os.PathLike[str]) -> None:
    """See ``ls.save_sharded``: ``model_or_state`` is a built model, ``init``'s
    variables or ``{name: jax.Array}``."""
    _single_process()
    flat = _flat(model_or_state, "save_sharded")
    for name, value in flat.items():
        if not isinstance(value, jax.Array):
            raise TypeError(f"save_sharded takes jax.Arrays; `{name}` is "
                            f"{type(value).__name__}")
    devices = sorted({d for a in flat.values() for d in a.sharding.device_set},
                     key=lambda d: d.id)

    def files() -> Iterator[tuple[str, dict[str, Shard]]]:
        for device in devices:  # one device's shards on the host at a time
            shards: dict[str, Shard] = {}
            for name, value in flat.items():
                for s in value.addressable_shards:
                    if s.device == device and s.replica_id == 0:
                        offset = [sl.indices(d)[0] for sl, d in zip(s.index, value.shape,
                                                                    strict=True)]
                        shards[name] = (offset, np.asarray(s.data))
            yield f"device-{device.id:05d}.safetensors", shards

    tensors = {n: (tuple(a.shape), np.dtype(a.dtype).name) for n, a in flat.items()}
    write_shards(path, tensors, files())


def load_sharded(path: str | os.PathLike[str], into: Any) -> Any:
    """See ``ls.load_sharded``: ``into`` is ``init``-layout shardings, a
    mapping of names to shardings, or a built, materialized model."""
    _single_process()
    reader = ShardedReader(path)
    if isinstance(into, JaxModel):
        state = into.state_dict()
        if not state or not all(isinstance(v, jax.Array) for v in state.values()):
            raise ValueError("load_sharded into a JAX model needs it materialized (its "
                             "arrays' shardings are the targets); or pass m.shardings(x)")
        targets = {n: v.sharding for n, v in state.items()}
    else:
        targets = _flat(into, "load_sharded")
    index = os.path.join(os.fspath(path), "index.json")
    missing = [n for n in targets if n not in reader.tensors]
    extra = [n for n in reader.tensors if n not in targets]
    if missing or extra:
        key = (missing or extra)[0]
        raise CheckpointError(
            index, f"its tensors differ from the target's: missing {missing}, unexpected "
            f"{extra}", key)
    arrays: dict[str, Any] = {}
    for name, sharding in targets.items():
        if not isinstance(sharding, jax.sharding.Sharding):
            raise TypeError(f"load_sharded takes jax.sharding.Shardings; `{name}` is "
                            f"{type(sharding).__name__}")
        shape, _ = reader.tensors[name]
        if isinstance(into, JaxModel) and tuple(into.state_dict()[name].shape) != shape:
            raise CheckpointError(
                index, f"shape {shape}; the model's is {tuple(into.state_dict()[name].shape)}",
                name)

        def read(box: Any, name: str = name) -> np.ndarray[Any, Any]:
            return reader.read(name, box)

        try:
            arrays[name] = jax.make_array_from_callback(shape, sharding, read)
        except CheckpointError:
            raise
        except ValueError as e:  # a sharding that does not fit the saved shape
            raise CheckpointError(index, f"shape {shape} does not fit the target sharding "
                                  f"{sharding} ({e})", name) from e
    if isinstance(into, JaxModel):
        into.load_state_dict(arrays)
        return into
    if isinstance(into, Mapping) and _is_variables(into):
        return jax.tree_util.tree_map_with_path(
            lambda p, _: arrays[".".join(str(k.key) for k in p[1:])], dict(into))
    return arrays
