"""NumPy's own steps for built-in layers: `BINDERS`, a registry by layer type.

A binder ``(layer, params, ctx) -> step | None`` returns a callable computing
exactly what the layer's ``forward`` computes on NumPy arrays, with its op
resolved once, at materialization, instead of dispatched through ``ls.ops``
on every call (a `Linear`'s weight transposed once); None keeps the layer's
``forward``. Exact types only: a subclass, or a layer of another type, runs
its own ``forward``. Each layer family registers its binders in the module of
the family's name (``linear.py``, ``activation.py``).
"""

from __future__ import annotations

from lazyshape.backend import Binder, NativeRegistry

__all__ = ["BINDERS", "register"]

BINDERS: NativeRegistry[Binder] = NativeRegistry()
register = BINDERS.register
