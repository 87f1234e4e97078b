"""Allocation for the NumPy backend (the init protocol: same names in every backend)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lazyshape.backend import Initializer, numpy_dtype, sample_numpy

__all__ = ["make_rng", "sample", "from_numpy"]


def make_rng(seed: int | None) -> Any:
    """The native source of randomness: one ``Generator`` drawn in model order."""
    return np.random.default_rng(seed)


def sample(prim: Initializer, shape: tuple[int, ...], dtype: str, rng: Any, name: str) -> Any:
    """A new array of ``shape`` drawn from a primitive initializer."""
    return sample_numpy(prim, shape, dtype, rng)


def from_numpy(value: Any, dtype: str, device: Any) -> Any:
    """A backend array from a NumPy array (a copy in ``dtype``)."""
    return np.array(value, dtype=numpy_dtype(dtype), copy=True)
