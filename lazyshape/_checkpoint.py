"""``ls.save`` / ``ls.load``: checkpoints in the safetensors format, never pickle.

A state is a flat ``{canonical name: array}`` mapping (PyTorch layouts on every
backend), so a checkpoint written from one backend loads into another.

Files are untrusted input. Before safetensors reads a file, its header is
checked against the file itself: a length that fits, JSON that is a
safetensors header, known dtypes, shapes and offsets that agree, tensors that
tile the data exactly. Nothing is allocated beyond what the file holds, and
every fault is a `CheckpointError` naming the file (and the key). ``ls.save``
writes a temporary file in the same directory and renames it over the target
once it is complete and on disk: a failure midway leaves the previous file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._backends import backend_for, to_numpy
from ._errors import ShapeError
from ._specs import Placeholder, normalize_dtype

__all__ = ["save", "load", "CheckpointError"]

#: safetensors' dtype names -> bytes per element
_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4,
    "F32": 4, "F64": 8, "I64": 8, "U64": 8, "C64": 8,
}
#: a header larger than this is not a checkpoint's (safetensors' own limit)
_MAX_HEADER = 100_000_000


class CheckpointError(ValueError):
    """A checkpoint file that is malformed, or that does not fit the model it
    is loaded into. ``path`` is the file; ``key`` the tensor concerned, if any."""

    __module__ = "lazyshape"

    def __init__(self, path: str | os.PathLike[str], problem: str, key: str | None = None) -> None:
        self.path = os.fspath(path)
        self.key = key
        self.problem = problem
        where = f" at `{key}`" if key is not None else ""
        super().__init__(f"checkpoint {self.path!r}{where}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep exceptions copyable
        return (CheckpointError, (self.path, self.problem, self.key))


def save(model_or_state: Any, path: str | os.PathLike[str]) -> None:
    """Write a built model's ``state_dict()`` (or a state mapping) to ``path``,
    atomically: the file is either the previous one or the complete new one."""
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

    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=os.path.dirname(target) or "."
    )
    os.close(fd)
    try:
        save_file(arrays, tmp, metadata={"format": "lazyshape"})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(os.path.dirname(target) or ".")


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (where the platform allows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_placeholder(value: Any) -> bool:
    if isinstance(value, Placeholder):
        return True
    if isinstance(value, (np.ndarray, np.generic)):
        return False
    return backend_for(value).is_placeholder(value)


def load(path: str | os.PathLike[str], into: Any = None) -> dict[str, np.ndarray[Any, Any]]:
    """Read a checkpoint: ``{name: numpy array}``, ready for ``load_state_dict``.

    With ``into=model`` (a built model) the state is also loaded into it; a
    state that does not fit the model (missing or extra keys, other shapes,
    another kind of dtype: an integer for a float weight) is a
    `CheckpointError` naming the file and the key, and the model is left as
    it was. A value of the same kind is cast (float64 into a float32 model),
    as ``load_state_dict`` casts. Any malformed file is a `CheckpointError`
    too, before anything is allocated beyond the file's size; nothing is ever
    unpickled."""
    file = os.fspath(path)
    header = _check_file(file)
    from safetensors.numpy import load_file

    try:
        state = dict(load_file(file))
    except Exception as e:  # what the header check could not see: still the file's fault
        raise CheckpointError(file, f"safetensors cannot read it ({e})") from e
    if set(state) != header.keys() - {"__metadata__"}:
        raise CheckpointError(file, "its tensors differ from its header")
    if into is not None:
        _load_into(into, state, file)
    return state


def _load_into(model: Any, state: dict[str, np.ndarray[Any, Any]], file: str) -> None:
    rt = getattr(model, "_rt", None)  # a built model's runtime: names, shapes, dtype kinds
    try:
        if rt is not None:
            rt.check_state({k: v.shape for k, v in state.items()},
                           {k: normalize_dtype(v.dtype) for k, v in state.items()})
        model.load_state_dict(state)
    except ShapeError as e:
        key = None
        for name in state:
            if f"`{name}`" in str(e):
                key = name
                break
        raise CheckpointError(file, f"does not fit the model: {e}", key) from e


def _check_file(file: str) -> dict[str, Any]:
    """The header of the safetensors file ``file``, checked against the file:
    raises `CheckpointError` for anything that is not a well-formed checkpoint."""
    try:
        size = os.path.getsize(file)
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(file, f"{size} bytes: too short for a safetensors header")
            n = int.from_bytes(head, "little")
            if n > size - 8 or n > _MAX_HEADER:
                raise CheckpointError(
                    file, f"its header claims {n} bytes, more than the file's {size - 8} after "
                    "the length (truncated, or not a safetensors file)"
                )
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(file, f"cannot be read ({e.strerror or e})") from e
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(file, f"its header is not JSON ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(file, "its header is not a JSON object of tensors")
    data = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entry.items()
            ):
                raise CheckpointError(file, "its __metadata__ is not a map of strings")
            continue
        spans.append(_check_entry(file, key, entry, data))
    spans.sort()
    end = 0
    for start, stop, key in spans:
        if start != end:
            problem = ("overlaps the previous tensor" if start < end
                       else f"leaves bytes {end}-{start} of the data unused")
            raise CheckpointError(file, problem, key)
        end = stop
    if end != data:
        raise CheckpointError(file, f"the tensors cover {end} bytes of the {data}-byte data")
    return header


def _check_entry(file: str, key: str, entry: object, data: int) -> tuple[int, int, str]:
    """``(start, stop, key)`` of one tensor's header entry, checked."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(file, "not a tensor entry (dtype, shape, data_offsets)", key)
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _ITEMSIZE:
        raise CheckpointError(file, f"unknown dtype {dtype!r}", key)
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError(file, f"shape {shape!r} is not a list of non-negative ints", key)
    if (
        not isinstance(offsets, list) or len(offsets) != 2
        or not all(type(o) is int for o in offsets)
    ):
        raise CheckpointError(file, f"data_offsets {offsets!r} are not two ints", key)
    start, stop = offsets
    if not 0 <= start <= stop <= data:
        raise CheckpointError(
            file, f"data_offsets [{start}, {stop}] outside the {data}-byte data", key
        )
    need = math.prod(shape) * _ITEMSIZE[dtype]
    if stop - start != need:
        raise CheckpointError(
            file, f"{dtype} of shape {tuple(shape)} needs {need} bytes; its offsets give "
            f"{stop - start}", key,
        )
    return start, stop, key
