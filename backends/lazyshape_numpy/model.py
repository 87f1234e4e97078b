"""The NumPy built model: a callable holding a ``params`` dict of ndarrays."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from lazyshape._checkpoint import to_numpy
from lazyshape._layer import Context, Layer
from lazyshape._propagate import Inference
from lazyshape._runtime import (
    Binder,
    BuildConfig,
    Runtime,
    Step,
    bind_program,
    chain_steps,
    pack_outputs,
    passthrough,
    render_model,
    run_steps,
)
from lazyshape.layers import activation, linear

from . import init, ops

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
        #: each node bound to its params (`bind_program`), and the same steps as a
        #: straight chain when the program is one (the hot path of ``m(x)``)
        self._steps: list[Step] = []
        self._chain: list[Step] | None = None
        self._bound: Any = None  # the program the steps were bound for
        #: the last single input's shape and dtype object, known to be in ``_ready``
        self._shape: Any = None
        self._dtype: Any = None
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
        self._shape = self._dtype = None
        self._bind()

    def _bind(self) -> None:
        program = self._bound = self._rt.program
        self._steps = bind_program(program, self._node_params, self._ctx, BINDERS)
        chain = chain_steps(program, self._steps)
        self._chain = None if chain is None else _fuse(chain)

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
            if x.shape != self._shape or x.dtype is not self._dtype:  # not the last signature
                key = (x.shape, x.dtype)
                if key not in self._ready:  # checked against the params?
                    self._prepare((x,))
                    self._ready.add(key)
                    chain = self._chain
                self._shape, self._dtype = key
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

    def __repr__(self) -> str:
        return render_model(self.model, self._inference)


# -- NumPy's own steps for built-in layers (see `bind_program`) ----------------------
# Each computes exactly what the layer's ``forward`` computes on NumPy arrays, with
# the op resolved once here instead of dispatched through ``ls.ops`` on every call
# (and a Linear's weight transposed once). Exact types only: a subclass, or a
# layer of another type, runs its own ``forward``. Hyperparameters are read when
# the model binds (at materialization), as the torch backend's native modules do.


def _affine(w_t: Any, b: Any, x: Any) -> Any:
    return x @ w_t + b


def _matmul(w_t: Any, x: Any) -> Any:
    return x @ w_t


def _affine_relu(w_t: Any, b: Any, x: Any) -> Any:
    return np.maximum(x @ w_t + b, 0)  # ops.relu(_affine(w_t, b, x)), one call fewer


def _linear(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    w_t = params["weight"].T
    b = params.get("bias")
    if b is None:
        return functools.partial(_matmul, w_t)
    return functools.partial(_affine, w_t, b)


def _relu(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return ops.relu


def _gelu(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return functools.partial(ops.gelu, approximate=layer.approximate)


def _leaky_relu(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return functools.partial(ops.leaky_relu, negative_slope=layer.negative_slope)


def _softmax(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return functools.partial(ops.softmax, axis=layer.dim)


def _identity(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step:
    return passthrough


def _dropout(layer: Any, params: Mapping[str, Any], ctx: Context) -> Step | None:
    return passthrough if not ctx.training else None


def _fuse(chain: list[Step]) -> list[Step]:
    """A chain with each ``Linear`` step followed by a ``ReLU`` step made one
    step (the same operations, one Python call fewer)."""
    out: list[Step] = []
    for step in chain:
        prev = out[-1] if out else None
        if step is ops.relu and isinstance(prev, functools.partial) and prev.func is _affine:
            out[-1] = functools.partial(_affine_relu, *prev.args)
        else:
            out.append(step)
    return out


def _fixed(fn: Step) -> Binder:
    return lambda layer, params, ctx: fn


BINDERS: dict[type, Binder] = {
    linear.Linear: _linear,
    activation.ReLU: _relu,
    activation.GELU: _gelu,
    activation.Tanh: _fixed(np.tanh),
    activation.Sigmoid: _fixed(ops.sigmoid),
    activation.SiLU: _fixed(ops.silu),
    activation.LeakyReLU: _leaky_relu,
    activation.Softmax: _softmax,
    activation.Identity: _identity,
    activation.Dropout: _dropout,
}
