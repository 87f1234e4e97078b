"""Embedding ops for NumPy arrays: ``embedding``."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["embedding"]


def embedding(ids: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of ``weight`` ``(num, dim)`` for integer ``ids`` of any shape:
    ``(*) -> (*, dim)``. ``padding_idx`` only matters for gradients (none here)."""
    return np.take(weight, ids, axis=0)

