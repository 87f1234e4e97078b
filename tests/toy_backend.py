"""A backend written outside the project, the way a third-party package would:
it uses nothing of lazyshape but ``lazyshape.backend`` and the public
namespace, and is registered with ``register_backend`` (an installed package
would use the ``lazyshape.backends`` entry-point group).

It runs every layer's own ``forward`` (written with ``ls.ops``) on NumPy
arrays, with no fast path, initialized from the portable streams: a reference
backend. It owns no array type (``array_modules`` is empty), so ``ls.ops``
dispatches its arrays to the NumPy backend's ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import lazyshape as ls
from lazyshape.backend import (
    BuildConfig,
    BuiltModel,
    Context,
    Inference,
    Placeholder,
    Runtime,
    get_backend,
    node_values,
    pack_outputs,
    run_program,
)


class ToyModel(BuiltModel):
    """Inference only; ``params`` is ``{canonical name: ndarray}``."""

    def __init__(self, model: ls.Layer, config: BuildConfig) -> None:
        self._rt = Runtime(model, config)
        self._inference: Inference | None = None
        self.params: dict[str, np.ndarray] = {}

    def _prepare(self, xs: tuple[Any, ...]) -> Inference:
        inf, todo = self._rt.resolve(xs)
        if todo or not self._rt.initialized:
            new = dict(self._rt.portable_values(inf.params, todo))
            self.params = {n: new.get(n, self.params.get(n)) for n in inf.params}
            self._rt.commit(inf)
        self._inference = inf
        return inf

    def __call__(self, *xs: Any) -> Any:
        arrays = tuple(np.asarray(x) for x in xs)
        inf = self._prepare(arrays)
        outs = run_program(self._rt.program, node_values(inf, self.params), arrays, Context())
        return pack_outputs(self._rt.program, outs)

    def state_dict(self) -> dict[str, Any]:
        if not self._rt.initialized:
            return dict(self._rt.placeholders())
        return dict(self.params)


class ToyBackend:
    name = "toy"
    array_modules: tuple[str, ...] = ()
    order = 50

    def available(self) -> bool:
        return True

    def ops(self) -> Any:
        return get_backend("numpy").ops()

    def build(self, model: Any, config: Any) -> Any:
        return ToyModel(model, config)

    def export(self, model: Any, plan: Any) -> Any:
        raise NotImplementedError("the toy backend has no export format")

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        return np.asarray(value, dtype=dtype)

    def to_numpy(self, x: Any) -> Any:
        return np.array(x, copy=True)

    def is_placeholder(self, x: Any) -> bool:
        return isinstance(x, Placeholder)

    def forward(self, model: Any, *xs: Any) -> Any:
        return model(*xs)

    def native_dtype(self, dtype: str) -> str:
        return dtype


BACKEND = ToyBackend()
