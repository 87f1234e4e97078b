"""norm ops for the numpy backend (see lazyshape_numpy/ops.py for the protocol).

The normalization layers need no NN op: their forwards (lazyshape/layers/norm.py)
are written with array-API functions (mean, sqrt, reshape), which
run unchanged on every backend; torch builds its native modules instead.
"""

from __future__ import annotations

__all__: list[str] = []
