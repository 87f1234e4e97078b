"""norm ops for the jax backend (see lazyshape_numpy/ops.py for the protocol)."""

from __future__ import annotations

__all__: list[str] = []
