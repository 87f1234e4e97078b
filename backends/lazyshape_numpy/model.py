"""The NumPy built model: a callable holding a ``params`` dict of ndarrays."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from lazyshape._checkpoint import to_numpy
from lazyshape._layer import Context, Layer
from lazyshape._propagate import Inference
from lazyshape._runtime import BuildConfig, Runtime, pack_outputs, render_model, run_program

from . import init

__all__ = ["NumpyModel"]


class NumpyModel:
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
        self._chain: list[tuple[Any, Any]] | None = None
        self._ctx = Context(training=False, rng=self._rng)  # inference only

    @property
    def initialized(self) -> bool:
        """True once parameters exist."""
        return self._rt.initialized

    @property
    def inference(self) -> Inference | None:
        """The inference of the last resolved inputs."""
        return self._inference

    def _prepare(self, xs: tuple[Any, ...]) -> Inference:
        inf, todo = self._rt.resolve(xs)
        if todo or not self._rt.initialized:
            self._allocate(inf, todo)
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
        self._set(values, inf.params)

    def _set(self, values: dict[str, Any], specs: Mapping[str, Any]) -> None:
        self.params = values
        self._rt.commit(specs)
        self._node_params = self._rt.node_params(values)
        self._ready.clear()
        self._chain = self._compile_chain()

    def _compile_chain(self) -> list[tuple[Any, Any]] | None:
        """For a straight chain of single-input, single-output nodes, the
        ``(forward, params)`` steps, so a call is one loop with no slot table."""
        program = self._rt.program
        slot = 0
        steps = []
        for node, params in zip(program.nodes, self._node_params, strict=True):
            if node.ins != (slot,) or len(node.outs) != 1:
                return None
            slot = node.outs[0]
            fwd = node.layer.forward
            if node.layer.needs_context:
                fwd = functools.partial(fwd, ctx=self._ctx)
            steps.append((fwd, params))
        if program.n_inputs != 1 or tuple(program.outputs) != (slot,):
            return None
        return steps

    def materialize(self, *inputs: Any) -> NumpyModel:
        """Resolve from shapes, specs or arrays and allocate, computing nothing."""
        self._prepare(inputs)
        return self

    def __call__(self, *xs: Any) -> Any:
        """Forward: ``m(x)``; several inputs for a multi-input model."""
        chain = self._chain
        if chain is not None and len(xs) == 1:  # the hot path: one array through a chain
            x = xs[0]
            if type(x) is not np.ndarray:
                x = np.asarray(x)
            if (x.shape, x.dtype) not in self._ready:  # checked against the params?
                self._prepare((x,))
                self._ready.add((x.shape, x.dtype))
                chain = self._chain
            if chain is not None:
                for fwd, params in chain:
                    x = fwd(params, x)
                return x
            xs = (x,)
        arrays = tuple([x if type(x) is np.ndarray else np.asarray(x) for x in xs])
        key = tuple([(a.shape, a.dtype) for a in arrays])
        if key not in self._ready:
            self._prepare(arrays)
            self._ready.add(key)
        outs = run_program(self._rt.program, self._node_params, arrays, self._ctx)
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
        specs = self._rt.check_state({n: a.shape for n, a in arrays.items()})
        values = {
            n: init.from_numpy(arrays[n], s.dtype or self.config.dtype, None)
            for n, s in specs.items()
        }
        self._set(values, specs)

    def __repr__(self) -> str:
        return render_model(self.model, self._inference)
