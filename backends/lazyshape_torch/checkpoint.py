"""Sharded checkpoints on torch: ``ls.save_sharded`` / ``ls.load_sharded``
through ``torch.distributed.checkpoint`` (DCP).

DCP writes each rank's local shards of the ``DTensor``\\ s of a state dict
(a replicated tensor once) with a metadata file of every chunk's global
offset, and loads into whatever placements the target state dict has,
each rank reading the chunks its own shards overlap: a checkpoint saved on 4
ranks under tensor parallelism loads onto 2 ranks under other rules. What
these functions add: the model's own state dict, a check of the checkpoint's
names, shapes and dtype kinds against the model before anything is read
(`CheckpointError` naming the tensor), and a refusal to save tensors that
have no storage (the ``meta`` device). Call both on every rank; with no
process group they run in one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.distributed.tensor import DTensor

from lazyshape import CheckpointError, ShapeError

__all__ = ["save_sharded", "load_sharded"]


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def _state(model_or_state: Any, what: str) -> dict[str, Any]:
    if isinstance(model_or_state, nn.Module):
        return dict(model_or_state.state_dict())
    if isinstance(model_or_state, Mapping):
        return dict(model_or_state)
    raise TypeError(f"{what} takes a torch model or a state dict; got "
                    f"{type(model_or_state).__name__}")


def save_sharded(model_or_state: Any, path: str | os.PathLike[str]) -> None:
    """See ``ls.save_sharded``: ``dcp.save`` of the model's state dict."""
    state = _state(model_or_state, "save_sharded")
    for name, t in state.items():
        if isinstance(t, nn.parameter.UninitializedParameter) or (
            isinstance(t, torch.Tensor) and _local(t).is_meta
        ):
            raise ShapeError(
                "tensors with storage to save",
                f"`{name}` has none (the meta device or uninitialized); materialize it "
                "with ls.shard, or to_empty and ls.init_, first",
            )
    dcp_save(state, checkpoint_id=os.fspath(path))


def load_sharded(path: str | os.PathLike[str], into: Any) -> Any:
    """See ``ls.load_sharded``: ``dcp.load`` into the model's state dict, in
    place, after checking the checkpoint's metadata against it."""
    if not isinstance(into, nn.Module):
        raise TypeError(f"load_sharded on torch loads into a model; got {type(into).__name__}")
    where = os.fspath(path)
    try:
        metadata = FileSystemReader(where).read_metadata()
    except Exception as e:  # noqa: BLE001 - a missing or unreadable file: the checkpoint's
        raise CheckpointError(where, f"is not a torch.distributed.checkpoint directory "
                              f"({type(e).__name__}: {e})") from e
    saved = metadata.state_dict_metadata
    state = dict(into.state_dict())
    missing = [n for n in state if n not in saved]
    extra = [n for n in saved if n not in state]
    if missing or extra:
        raise CheckpointError(
            where, f"its tensors differ from the model's: missing {missing}, unexpected "
            f"{extra}", (missing or extra)[0])
    for name, t in state.items():
        md = saved[name]
        if not isinstance(md, TensorStorageMetadata):
            raise CheckpointError(where, "holds an object, not a tensor", name)
        if tuple(md.size) != tuple(t.shape):
            raise CheckpointError(
                where, f"shape {tuple(md.size)}; the model's is {tuple(t.shape)}", name)
        if md.properties.dtype.is_floating_point != t.dtype.is_floating_point:
            raise CheckpointError(
                where, f"dtype {md.properties.dtype}; the model's is {t.dtype}", name)
        if _local(t).is_meta:
            raise ValueError(f"load_sharded needs storage for `{name}`: materialize the model "
                             "(ls.shard, or to_empty) first")
    dcp_load(state, checkpoint_id=where)
    into.load_state_dict(state)
    return into
