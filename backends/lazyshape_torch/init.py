"""Allocation for the torch backend (the init protocol: same names in every backend).

Primitives are drawn with ``torch.nn.init``'s own functions on an empty
tensor, so a custom layer's parameters consume torch's RNG exactly as a
hand-written torch module calling the same functions would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lazyshape.backend import Constant, Initializer, Normal, Orthogonal, TruncNormal, Uniform

__all__ = ["make_rng", "sample", "from_numpy"]


_DTYPES: dict[str, torch.dtype] = {}


def torch_dtype(dtype: str) -> torch.dtype:
    """The torch dtype of a canonical dtype name (``"float32"`` -> ``torch.float32``)."""
    out = _DTYPES.get(dtype)
    if out is None:
        out = getattr(torch, dtype, None)
        if not isinstance(out, torch.dtype):
            raise TypeError(f"torch has no dtype {dtype!r}")
        _DTYPES[dtype] = out
    return out


def make_rng(seed: int | None) -> Any:
    """The native source of randomness: None (torch's global RNG) without a
    seed, else a ``torch.Generator`` seeded with it."""
    if seed is None:
        return None
    return torch.Generator().manual_seed(seed)


def sample(prim: Initializer, shape: tuple[int, ...], dtype: str, rng: Any, name: str) -> Any:
    """A new tensor of ``shape`` drawn from a primitive initializer with
    ``torch.nn.init``; ``rng`` None draws from the global RNG. The tensor is
    created on the default device (honours ``with torch.device(...)``), or on
    the generator's device."""
    device = rng.device if rng is not None else None
    t = torch.empty(shape, dtype=torch_dtype(dtype), device=device)
    init = torch.nn.init
    with torch.no_grad():
        if isinstance(prim, Constant):
            init.constant_(t, prim.val)
        elif isinstance(prim, Uniform):
            init.uniform_(t, prim.a, prim.b, generator=rng)
        elif isinstance(prim, Normal):
            init.normal_(t, prim.mean, prim.std, generator=rng)
        elif isinstance(prim, TruncNormal):
            init.trunc_normal_(t, prim.mean, prim.std, prim.a, prim.b, generator=rng)
        elif isinstance(prim, Orthogonal):
            init.orthogonal_(t, prim.gain, generator=rng)
        else:
            raise TypeError(f"not a primitive initializer: {prim!r} (for `{name}`)")
    return t


def from_numpy(value: Any, dtype: str, device: Any) -> Any:
    """A torch tensor from a NumPy array (a copy in ``dtype`` on ``device``)."""
    arr = np.asarray(value)
    if arr.dtype.name == "bfloat16":  # ml_dtypes: torch can't wrap it; float32 is exact
        arr = arr.astype(np.float32)
    t = torch.from_numpy(np.array(arr, copy=True))
    return t.to(dtype=torch_dtype(dtype), device=device)
