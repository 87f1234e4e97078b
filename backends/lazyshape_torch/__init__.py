"""The PyTorch backend of lazyshape: the built model is a real ``torch.nn.Module``.

Registered in the ``lazyshape.backends`` entry-point group like any
third-party backend. Importing this package does not import torch: `ops` and
`build` import it on first use.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["BACKEND"]


class TorchBackend:
    """The entry-point object: names the framework, builds models."""

    name = "torch"
    array_modules = ("torch",)

    def available(self) -> bool:
        return importlib.util.find_spec("torch") is not None

    def ops(self) -> Any:
        from . import ops

        return ops

    def build(self, model: Any, config: Any) -> Any:
        from .model import TorchModel

        return TorchModel(model, config)

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        """A torch tensor (a copy) from a NumPy array or anything array-like."""
        import numpy as np

        from lazyshape._specs import normalize_dtype

        from .init import from_numpy

        arr = np.asarray(value)
        return from_numpy(arr, normalize_dtype(dtype or arr.dtype), None)


BACKEND = TorchBackend()
