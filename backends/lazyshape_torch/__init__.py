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
    order = 10

    def available(self) -> bool:
        return importlib.util.find_spec("torch") is not None

    def ops(self) -> Any:
        from . import ops

        return ops

    def base_native_shapes(self, rec: Any) -> dict[str, tuple[int, ...]] | None:
        """For a node whose layer subclasses a built-in kind without being one:
        ``{local name: shape}`` of the torch module the built-in kind becomes
        for the same resolved hyperparameters (what a subclass's parameter
        rule must agree with); None otherwise. Used by `check_layer`."""
        from . import native
        from . import ops as _ops  # noqa: F401 - registers every family's native modules

        cls = type(rec.layer)
        base = next((b for b in cls.__mro__[1:] if b in native.NATIVE), None)
        if base is None or cls in native.NATIVE:
            return None
        try:
            module = native.NATIVE[base](rec, dtype=None, device=None)
        except Exception:  # noqa: BLE001 - hyperparameters its factory can't take
            return None
        if module is None:
            return None
        return {k: tuple(v.shape) for k, v in module.state_dict().items()}

    def build(self, model: Any, config: Any) -> Any:
        from .model import build_model

        return build_model(model, config)

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

    def shard(self, model: Any, mesh: Any, partition: Any, *, seed: int | None = None) -> Any:
        """``ls.shard``: the model's tensors as DTensors on ``mesh`` (see `shard`)."""
        from .shard import shard

        return shard(model, mesh, partition, seed=seed)

    def init_(self, model: Any, *, seed: int | None = None) -> Any:
        """``ls.init_``: redraw every tensor in place, shard-locally (see `shard`)."""
        from .shard import init_

        return init_(model, seed=seed)

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        """A torch tensor (a copy) from a NumPy array or anything array-like."""
        import numpy as np

        from lazyshape.backend import normalize_dtype

        from .init import from_numpy

        arr = np.asarray(value)
        return from_numpy(arr, normalize_dtype(dtype or arr.dtype), None)

    def to_numpy(self, x: Any) -> Any:
        import torch

        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:  # NumPy has no bfloat16: ml_dtypes' (a dependency)
            import ml_dtypes

            return x.float().numpy().astype(ml_dtypes.bfloat16)
        return x.numpy().copy()

    def is_placeholder(self, x: Any) -> bool:
        from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

        return isinstance(x, (UninitializedParameter, UninitializedBuffer))

    def forward(self, model: Any, *xs: Any) -> Any:
        import torch

        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model(*xs)
        finally:
            model.train(training)

    def native_dtype(self, dtype: str) -> str:
        return dtype


BACKEND = TorchBackend()
