"""The NumPy built model: a callable holding a ``params`` dict of ndarrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lazyshape.backend import (
    BuildConfig,
    BuiltModel,
    Context,
    Inference,
    Layer,
    Runtime,
    Step,
    bind_program,
    chain_steps,
    pack_outputs,
    run_steps,
    to_numpy,
)

from . import init
from . import ops as ops  # importing the ops registers every family's steps
from .linear import fuse
from .native import BINDERS

__all__ = ["NumpyModel"]


class NumpyModel(BuiltModel):
    """A model built on NumPy (inference only).

    ``m(x)`` runs the forward (the first call resolves and materializes);
    ``m.params`` is ``{canonical name: ndarray}``."""

    def __init__(self, model: Layer, config: BuildConfig) -> None:
        self.model = model
        self.config = config
        self._rt = Runtime(model, config)
        self._rng = init.make_rng(config.seed)
        self.params: dict[str, np.ndarray[Any, Any]] = {}
        self._node_params: list[dict[str, Any]] = []
        self._inference: Inference | None = None
        self._ready: set[Any] = set()
        #: each node bound to its params (`bind_program`), and the same steps as a
        #: straight chain when the program is one (the hot path of ``m(x)``)
        self._steps: list[Step] = []
        self._chain: list[Step] | None = None
        self._bound: Any = None  # the program the steps were bound for
        #: the last single input's (shape, dtype object), known to be in ``_ready``
        #: (one tuple, replaced whole, so that threads never see half of one)
        self._last: tuple[Any, Any] = (None, None)
        self._ctx = Context(training=False, rng=self._rng)  # inference only

    def _prepare(self, xs: tuple[Any, ...]) -> Inference:
        with self._rt.lock:  # threads making the first call at once: one initialization
            inf, todo = self._rt.resolve(xs)
            if todo or not self._rt.initialized:
                self._allocate(inf, todo)
            elif self._bound is not self._rt.program:  # recompiled for another input count
                self._node_params = self._rt.node_params(self.params)
                self._bind()
            self._inference = inf
            return inf

    def _allocate(self, inf: Inference, todo: list[str]) -> None:
        rt = self._rt
        if self.config.rng == "portable":
            new = dict(rt.portable_values(inf.params, todo))
        else:
            new = {
                name: init.sample(prim, shape, dtype, self._rng, name)
                for name, shape, dtype, prim in rt.primitives(inf.params, todo)
            }
        values = {n: new[n] if n in new else self.params[n] for n in inf.params}
        self._set(values, inf)

    def _set(self, values: dict[str, Any], inf: Inference) -> None:
        self.params = values
        self._rt.commit(inf)
        self._node_params = self._rt.node_params(values)
        self._ready.clear()
        self._last = (None, None)
        self._bind()

    def _bind(self) -> None:
        program = self._bound = self._rt.program
        self._steps = bind_program(program, self._node_params, self._ctx, BINDERS)
        chain = chain_steps(program, self._steps)
        self._chain = None if chain is None else fuse(chain)

    def __call__(self, *xs: Any) -> Any:
        """Forward: ``m(x)``; several inputs for a multi-input model."""
        chain = self._chain
        if chain is not None and len(xs) == 1:  # the hot path: one array through a chain
            x = xs[0]
            if type(x) is not np.ndarray:
                x = np.asarray(x)
            last = self._last
            if x.shape != last[0] or x.dtype is not last[1]:  # not the last signature
                key = (x.shape, x.dtype)
                if key not in self._ready:  # checked against the params?
                    self._prepare((x,))
                    self._ready.add(key)
                    chain = self._chain
                self._last = key
            if chain is not None:
                for step in chain:
                    x = step(x)
                return x
            xs = (x,)
        arrays = tuple([x if type(x) is np.ndarray else np.asarray(x) for x in xs])
        sig = tuple([(a.shape, a.dtype) for a in arrays])
        if sig not in self._ready or len(arrays) != self._rt.program.n_inputs:
            self._prepare(arrays)
            self._ready.add(sig)
        outs = run_steps(self._rt.program, self._steps, arrays)
        return pack_outputs(self._rt.program, outs)

    def state_dict(self) -> dict[str, Any]:
        """``{name: ndarray}``; before materialization, placeholders with partial shapes."""
        if not self._rt.initialized:
            return dict(self._rt.placeholders())
        return dict(self.params)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load arrays of any backend; materializes an uninitialized model from the
        state's shapes. A mismatch raises `ShapeError` and changes nothing."""
        arrays = {n: to_numpy(v) for n, v in state.items()}
        inf = self._rt.check_state({n: a.shape for n, a in arrays.items()})
        values = {
            n: init.from_numpy(arrays[n], s.dtype or self.config.dtype, None)
            for n, s in inf.params.items()
        }
        self._set(values, inf)
