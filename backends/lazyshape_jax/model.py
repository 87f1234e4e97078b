"""The JAX built model: pure ``init`` / ``apply`` over a nested-dict params
pytree, and a stateful ``m(x)`` that initializes on first use.

Params are nested by path segment (``{"0": {"weight": w, "bias": b}}``); the
canonical flat names (``"0.weight"``) are the ``state_dict`` keys. Shapes are
resolved at trace time, so every shape problem is a `ShapeError` raised while
tracing, before XLA computes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazyshape.backend import (
    BuildConfig,
    BuiltModel,
    Context,
    Inference,
    Layer,
    Runtime,
    ShapeError,
    format_shape,
    node_values,
    pack_outputs,
    run_program,
    to_numpy,
)

from . import init

__all__ = ["JaxModel", "flatten_params", "nest_params"]

Params = dict[str, Any]


def nest_params(flat: Mapping[str, Any]) -> Params:
    """``{"0.weight": w}`` -> ``{"0": {"weight": w}}`` (order kept)."""
    out: Params = {}
    for name, value in flat.items():
        *prefix, leaf = name.split(".")
        d = out
        for seg in prefix:
            d = d.setdefault(seg, {})
        d[leaf] = value
    return out


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"0": {"weight": w}}`` -> ``{"0.weight": w}``; a flat dict stays as it is."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_params(value, name))
        else:
            out[name] = value
    return out


class _Rematerialize(Exception):
    """Raised while tracing the stateful forward when the inputs need new
    parameters; `JaxModel.__call__` allocates them outside the trace and retries."""

    def __init__(self, inf: Inference, todo: list[str]) -> None:
        super().__init__("parameters to (re)materialize")
        self.inf = inf
        self.todo = todo


class JaxModel(BuiltModel):
    """A model built on JAX.

    Pure API (jit/grad/vmap-able):

    - ``params = m.init(key, *inputs)``: inputs are arrays, shape tuples or specs;
      params are a nested dict (``params["0"]["weight"]`` of shape ``(out, in)``);
    - ``y = m.apply(params, *inputs, training=False, key=None)``; in training,
      ``key`` feeds dropout (each layer folds in its own path).

    Stateful convenience: ``m(x)`` (the first call initializes with the key of
    ``seed``; each input signature is compiled once with ``jax.jit``),
    ``m.params``, ``m.materialize``, ``m.state_dict`` / ``m.load_state_dict``.
    """

    def __init__(self, model: Layer, config: BuildConfig) -> None:
        self.model = model
        self.config = config
        #: the stateful runtime: the specs of ``self._flat`` and the shape-change policy
        self._rt = Runtime(model, config)
        self._key: Any = None
        self._flat: dict[str, Any] = {}
        self._params: Params = {}
        self._inference: Inference | None = None
        self._node_hash = [init.path_hash(node.path) for node in self._rt.program.nodes]
        self._jit_forward = jax.jit(self._forward)

    # -- pure API -----------------------------------------------------------

    def init(self, key: Any, *inputs: Any) -> Params:
        """Fresh params for inputs (arrays, shape tuples or `TensorSpec`s), as a
        nested dict. Each parameter is drawn with ``fold_in(key, crc32(path))``;
        with ``rng="portable"`` the values are the portable streams of ``seed``
        (identical on every backend) and ``key`` is not used. Pure: the model
        is not changed."""
        inf = self._rt.resolve_pure(inputs)
        names = list(inf.params)
        if isinstance(key, int):
            key = init.make_rng(key)
        return nest_params(self._draw(inf, names, key))

    def apply(
        self,
        params: Mapping[str, Any],
        *inputs: Any,
        training: bool = False,
        key: Any = None,
        mutable: bool = False,
    ) -> Any:
        """The forward pass: ``y = m.apply(params, x)`` (a tuple for several
        outputs). Pure; ``training`` must be a Python bool (static under jit);
        ``key`` is the PRNG key dropout draws from in training. With
        ``mutable=True`` it returns ``(y, new_params)``, the buffers (running
        statistics) updated by a training forward: state in, state out.

        Raises `ShapeError` while tracing when the inputs don't fit the model or
        ``params`` don't have the shapes these inputs need."""
        if not isinstance(training, bool):
            raise TypeError(
                "training must be a Python bool; under jit mark it static: "
                "jax.jit(m.apply, static_argnames='training')"
            )
        xs = tuple(x if isinstance(x, jax.Array) else jnp.asarray(x) for x in inputs)
        inf = self._rt.resolve_pure(xs)
        flat = flatten_params(params)
        _check_params(self._rt, inf, flat)
        ctx = Context(training=training, rng=key)
        on_node: Callable[[int, Context], None] | None = None
        if training and key is not None:
            hashes = self._node_hash

            def on_node(i: int, c: Context) -> None:
                c.rng = jax.random.fold_in(key, hashes[i])

        outs = run_program(self._rt.program, node_values(inf, flat), xs, ctx, on_node)
        y = pack_outputs(self._rt.program, outs)
        if mutable:
            new = {**flat, **ctx.updates}
            nested = any(isinstance(v, Mapping) for v in params.values())
            return y, (nest_params(new) if nested else new)
        if ctx.updates:
            name = next(iter(ctx.updates))
            raise ValueError(
                f"{self._rt.kind_at(name)} at '{self._rt.path_at(name)}' updates its buffers "
                f"(`{name}`) in training; call apply(..., training=True, mutable=True) to get "
                "(outputs, params with the new buffers)"
            )
        return y

    # -- stateful convenience --------------------------------------------------

    @property
    def params(self) -> Params:
        """The stored params, nested (``{}`` before materialization)."""
        return self._params

    @params.setter
    def params(self, value: Mapping[str, Any]) -> None:
        # e.g. after an optimizer step on m.params; checked like a checkpoint
        self.load_state_dict(flatten_params(value))

    def _prepare(self, xs: tuple[Any, ...]) -> Inference:
        inf, todo = self._rt.resolve(xs)
        if todo or not self._rt.initialized:
            self._allocate(inf, todo)
        self._inference = inf
        return inf

    def __call__(self, *xs: Any) -> Any:
        """Forward in evaluation mode: ``m(x)``; several inputs for a multi-input
        model. The first call resolves and materializes; each input signature
        is traced and compiled once."""
        try:
            return self._jit_forward(self._params, *xs)
        except _Rematerialize as e:  # first call, or on_shape_change="reinit"
            self._allocate(e.inf, e.todo)
            self._inference = e.inf
            return self._jit_forward(self._params, *xs)

    def _forward(self, params: Params, *xs: Any) -> Any:
        # runs at trace time only: the resolution and policy checks cost nothing
        # per call once a signature is compiled
        if not all(isinstance(x, jax.Array) for x in xs):  # a list is a pytree to jit
            got = ", ".join(type(x).__name__ for x in xs)
            raise TypeError(f"a built model is called on arrays; got {got}")
        inf, todo = self._rt.resolve(xs)
        if todo or not self._rt.initialized:
            raise _Rematerialize(inf, todo)
        self._inference = inf
        nodes = node_values(inf, flatten_params(params))
        outs = run_program(self._rt.program, nodes, xs, Context(training=False))
        return pack_outputs(self._rt.program, outs)

    def _base_key(self) -> Any:
        if self._key is None:
            self._key = init.make_rng(self.config.seed)
        return self._key

    def _draw(self, inf: Inference, names: Sequence[str], key: Any) -> dict[str, Any]:
        config = self.config
        if config.rng == "portable":
            return {
                n: init.from_numpy(v, inf.params[n].dtype or config.dtype, config.device)
                for n, v in self._rt.portable_values(inf.params, names)
            }
        values = init.sample_all(tuple(self._rt.primitives(inf.params, names)), key)
        if not values:
            return {}
        if config.device is not None:
            values = jax.device_put(values, init.as_device(config.device))
        return values

    def _allocate(self, inf: Inference, todo: list[str]) -> None:
        new = self._draw(inf, todo, self._base_key())
        self._set({n: new[n] if n in new else self._flat[n] for n in inf.params}, inf)

    def _set(self, flat: dict[str, Any], inf: Inference) -> None:
        self._flat = flat
        self._params = nest_params(flat)
        self._rt.commit(inf)

    def state_dict(self) -> dict[str, Any]:
        """``{canonical name: jax.Array}``; before materialization, placeholders
        with partial shapes (``<Uninitialized (256, ?) float32>``)."""
        if not self._rt.initialized:
            return dict(self._rt.placeholders())
        return dict(self._flat)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load NumPy, torch or JAX arrays; materializes an uninitialized model
        from the state's shapes. A mismatch raises `ShapeError` and changes nothing."""
        arrays = {n: _host_or_jax(v) for n, v in state.items()}
        inf = self._rt.check_state({n: tuple(a.shape) for n, a in arrays.items()})
        values = {
            n: init.from_numpy(arrays[n], s.dtype or self.config.dtype, self.config.device)
            for n, s in inf.params.items()
        }
        self._set(values, inf)


def _host_or_jax(value: Any) -> Any:
    """A JAX array as it is; any other backend's array (or anything array-like)
    as a NumPy array."""
    if isinstance(value, (jax.Array, np.ndarray)):
        return value
    try:
        return to_numpy(value)
    except TypeError:  # not an array of any backend: array-like
        return np.asarray(value)


def _check_params(rt: Runtime, inf: Inference, flat: Mapping[str, Any]) -> None:
    """`ShapeError` unless ``flat`` has exactly the parameters ``inf`` needs."""
    expected = inf.params
    if flat.keys() != expected.keys():
        missing = [n for n in expected if n not in flat]
        extra = [n for n in flat if n not in expected]
        raise ShapeError(
            "params with exactly the model's parameter names",
            f"missing {missing}, unexpected {extra}",
            kind=inf.model.kind,
        )
    for name, spec in expected.items():
        got = tuple(jnp.shape(flat[name]))
        if got != spec.shape:
            ins = ", ".join(format_shape(s.shape) for s in inf.inputs)
            raise ShapeError(
                f"params that fit input shapes {ins}: `{name}` of shape {format_shape(spec.shape)}",
                f"`{name}` of shape {format_shape(got)}",
                kind=rt.kind_at(name),
                path=name.rpartition(".")[0],
            )
