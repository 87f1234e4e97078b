"""Linear ops for NumPy arrays: ``linear``."""

from __future__ import annotations

from typing import Any

__all__ = ["linear"]


def linear(x: Any, weight: Any, bias: Any | None) -> Any:
    """``x @ weight.T + bias``."""
    y = x @ weight.T
    return y if bias is None else y + bias

