"""The JAX backend of lazyshape: pure ``init``/``apply`` over flax-style
variables (``{"params": ..., "batch_stats": ...}``, nested-dict pytrees;
jit/grad/vmap/export-able), plus a stateful ``m(x)`` convenience.

Registered in the ``lazyshape.backends`` entry-point group like any
third-party backend. Importing this package does not import JAX: `available`
only looks for it, and `ops` / `build` import it on first use.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["BACKEND"]


class JaxBackend:
    """The entry-point object: names the framework, builds models."""

    name = "jax"
    # jax.Array's concrete type lives in jaxlib (``jaxlib._jax.ArrayImpl``);
    # tracers under jit/grad/vmap live in ``jax._src.interpreters.*``.
    array_modules = ("jax", "jaxlib")
    order = 20
    #: ``ls.build(model, "jax", mesh=, partition=)`` creates parameters sharded
    builds_sharded = True

    def available(self) -> bool:
        return (
            importlib.util.find_spec("jax") is not None
            and importlib.util.find_spec("jaxlib") is not None
        )

    def ops(self) -> Any:
        from . import ops

        return ops

    def build(self, model: Any, config: Any) -> Any:
        from .model import JaxModel

        return JaxModel(model, config)

    def export(self, model: Any, plan: Any) -> Any:
        from .export import export

        return export(model, plan)

    def save_sharded(self, state: Any, path: Any) -> None:
        """``ls.save_sharded``: each device's or rank's shards (see `checkpoint`)."""
        from .checkpoint import save_sharded

        save_sharded(state, path)

    def load_sharded(self, path: Any, into: Any) -> Any:
        """``ls.load_sharded``: onto ``into``'s shardings (see `checkpoint`)."""
        from .checkpoint import load_sharded

        return load_sharded(path, into)

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        import jax.numpy as jnp

        from .init import jax_dtype

        return jnp.asarray(value, dtype=None if dtype is None else jax_dtype(dtype))

    def to_numpy(self, x: Any) -> Any:
        import numpy as np

        return np.array(x, copy=True)

    def is_placeholder(self, x: Any) -> bool:
        from lazyshape.backend import Placeholder

        return isinstance(x, Placeholder)

    def forward(self, model: Any, *xs: Any) -> Any:
        return model.apply(model.params, *xs)  # the stored variables: eager, evaluation mode

    def native_dtype(self, dtype: str) -> str:
        import jax

        if jax.config.read("jax_enable_x64"):  # type: ignore[no-untyped-call]
            return dtype
        return {"float64": "float32", "int64": "int32", "uint64": "uint32",
                "complex128": "complex64"}.get(dtype, dtype)


BACKEND = JaxBackend()
