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

    def available(self) -> bool:
        return True

    def ops(self) -> Any:
        from . import ops

        return ops

    def build(self, model: Any, config: Any) -> Any:
        from .model import NumpyModel

        return NumpyModel(model, config)

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        import numpy as np

        return np.asarray(value, dtype=dtype)


BACKEND = NumpyBackend()
