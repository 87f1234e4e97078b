"""``ls.save`` / ``ls.load``: checkpoints in the safetensors format, never pickle.

A state is a flat ``{canonical name: array}`` mapping (PyTorch layouts on every
backend), so a checkpoint written from one backend loads into another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._backends import backend_for, to_numpy
from ._errors import ShapeError
from ._specs import Placeholder

__all__ = ["save", "load"]


def save(model_or_state: Any, path: str | os.PathLike[str]) -> None:
    """Write a built model's ``state_dict()`` (or a state mapping) to ``path``."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    if not isinstance(state, Mapping):
        raise TypeError(f"save takes a built model or a state mapping, got {type(state).__name__}")
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for name, value in state.items():
        if _is_placeholder(value):
            raise ShapeError(
                "materialized parameters to save", f"`{name}` is {value!r}; call materialize first"
            )
        arr = to_numpy(value)
        if not arr.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
            arr = np.ascontiguousarray(arr)
        arrays[name] = arr
    from safetensors.numpy import save_file  # imported on use: keeps `import lazyshape` fast

    save_file(arrays, os.fspath(path), metadata={"format": "lazyshape"})


def _is_placeholder(value: Any) -> bool:
    if isinstance(value, Placeholder):
        return True
    if isinstance(value, (np.ndarray, np.generic)):
        return False
    return backend_for(value).is_placeholder(value)


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray[Any, Any]]:
    """Read a checkpoint: ``{name: numpy array}``, ready for ``load_state_dict``."""
    from safetensors.numpy import load_file

    return dict(load_file(os.fspath(path)))
