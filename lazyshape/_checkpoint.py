"""``ls.save`` / ``ls.load``: checkpoints in the safetensors format, never pickle.

A state is a flat ``{canonical name: array}`` mapping (PyTorch layouts on every
backend), so a checkpoint written from one backend loads into another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._errors import ShapeError

__all__ = ["save", "load", "to_numpy"]


def to_numpy(x: Any) -> np.ndarray[Any, Any]:
    """A NumPy copy of a NumPy, torch or JAX array."""
    if hasattr(x, "detach"):  # torch, without importing it
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            import ml_dtypes

            bf: np.ndarray[Any, Any] = x.float().numpy().astype(ml_dtypes.bfloat16)
            return bf
        out: np.ndarray[Any, Any] = np.asarray(x.numpy())
        return out
    return np.asarray(x)


def save(model_or_state: Any, path: str | os.PathLike[str]) -> None:
    """Write a built model's ``state_dict()`` (or a state mapping) to ``path``."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    if not isinstance(state, Mapping):
        raise TypeError(f"save takes a built model or a state mapping, got {type(state).__name__}")
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for name, value in state.items():
        if not hasattr(value, "dtype") or type(value).__name__ in (
            "Placeholder", "UninitializedParameter", "UninitializedBuffer"
        ):
            raise ShapeError(
                "materialized parameters to save", f"`{name}` is {value!r}; call materialize first"
            )
        arr = to_numpy(value)
        if not arr.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
            arr = np.ascontiguousarray(arr)
        arrays[name] = arr
    from safetensors.numpy import save_file  # imported on use: keeps `import lazyshape` fast

    save_file(arrays, os.fspath(path), metadata={"format": "lazyshape"})


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray[Any, Any]]:
    """Read a checkpoint: ``{name: numpy array}``, ready for ``load_state_dict``."""
    from safetensors.numpy import load_file

    return dict(load_file(os.fspath(path)))
