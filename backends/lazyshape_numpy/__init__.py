"""The NumPy backend of lazyshape: always installed; inference only.

Registered in the ``lazyshape.backends`` entry-point group like any
third-party backend. Importing this package imports nothing but NumPy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BACKEND"]


class NumpyBackend:
    """The entry-point object: names the framework, builds models."""

    name = "numpy"
    array_modules = ("numpy",)
    order = 0

    def available(self) -> bool:
        return True

    def ops(self) -> Any:
        from . import ops

        return ops

    def build(self, model: Any, config: Any) -> Any:
        from .model import NumpyModel

        return NumpyModel(model, config)

    def export(self, model: Any, plan: Any) -> Any:
        raise NotImplementedError("NumPy has no format for exported programs")

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        import numpy as np

        from lazyshape.backend import numpy_dtype

        return np.asarray(value, dtype=None if dtype is None else numpy_dtype(dtype))

    def to_numpy(self, x: Any) -> Any:
        import numpy as np

        return np.array(x, copy=True)

    def is_placeholder(self, x: Any) -> bool:
        from lazyshape.backend import Placeholder

        return isinstance(x, Placeholder)

    def forward(self, model: Any, *xs: Any) -> Any:
        return model(*xs)  # inference only: always evaluation mode, no gradients

    def native_dtype(self, dtype: str) -> str:
        return dtype


BACKEND = NumpyBackend()
