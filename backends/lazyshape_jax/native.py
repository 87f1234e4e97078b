"""JAX's own steps for layer types: `BINDERS`, a registry by layer type.

A binder ``(layer, params, ctx) -> step | None`` returns a callable computing
exactly what the layer's ``forward`` computes on JAX arrays where that forward
can't run as written, e.g. on JAX's symbolic dims under ``jax.export``; None
keeps the layer's ``forward``. Exact types only. Each layer family registers
its binders in the module of the family's name (``embedding.py``).
"""

from __future__ import annotations

from lazyshape.backend import Binder, NativeRegistry

__all__ = ["BINDERS", "register"]

BINDERS: NativeRegistry[Binder] = NativeRegistry()
register = BINDERS.register
