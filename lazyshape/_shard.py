"""``ls.shard`` and ``ls.init_``: sharded materialization, handed to the backend.

The core imports no framework: these functions find the backend a model was
built on (``ls.build(model, backend)``) and call its ``shard`` / ``init_``.
"""

from __future__ import annotations

from typing import Any

from ._backends import get_backend
from ._partition import Partition

__all__ = ["shard", "init_"]


def _backend_of(model: Any, what: str) -> Any:
    rt = getattr(model, "_rt", None)
    name = getattr(getattr(rt, "config", None), "backend", "")
    if not name:
        raise TypeError(
            f"{what} takes a model built with ls.build(...); got {type(model).__name__}"
        )
    backend = get_backend(name)
    if not hasattr(backend, what):
        raise NotImplementedError(f"the {name!r} backend has no {what}(...)")
    return backend


def shard(model: Any, mesh: Any, partition: Partition | None = None, *,
          seed: int | None = None) -> Any:
    """Materialize a built, resolved model as shards over a device mesh.

    ``model``: built on torch with ``device="meta"`` and materialized (shapes
    known, no storage). ``mesh``: a ``torch.distributed.device_mesh.DeviceMesh``
    with named dims. Each parameter and buffer becomes a DTensor whose
    placements follow ``partition`` (a dim split over mesh axis ``a`` is
    ``Shard(dim)`` on ``a``; every other mesh dim ``Replicate()``; no
    partition: replicated), holding only this rank's shard, drawn from the
    portable streams of ``seed`` (default: the build's seed): the gathered
    tensors equal ``ls.build(model, rng="portable", seed=seed)``'s, bit for
    bit. Returns the model, whose forward takes and returns ordinary
    (replicated) tensors.
    """
    if partition is None:
        partition = Partition([])
    if not isinstance(partition, Partition):
        raise TypeError(f"partition= takes a ls.Partition; got {type(partition).__name__}")
    return _backend_of(model, "shard").shard(model, mesh, partition, seed=seed)


def init_(model: Any, *, seed: int | None = None, rng: str = "portable") -> Any:
    """(Re)initialize every parameter and buffer of a built, materialized model
    in place from its initializers, each rank writing only its local shard of
    a sharded tensor (a DTensor, e.g. after ``fully_shard`` and ``to_empty``).
    With ``rng="portable"`` (the only mode sharded tensors support) the full
    tensors equal ``ls.build(model, rng="portable", seed=seed)``'s bit for bit
    whatever the sharding. ``seed`` defaults to the build's seed. Returns the
    model."""
    if rng != "portable":
        raise ValueError(
            f"init_ draws shard-locally from the portable streams only: rng='portable'; "
            f"got rng={rng!r}"
        )
    return _backend_of(model, "init_").init_(model, seed=seed)
