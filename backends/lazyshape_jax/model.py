"""The JAX built model: pure ``init`` / ``apply`` over flax-style variables,
and a stateful ``m(x)`` that initializes on first use.

Variables are two collections, as flax's: ``{"params": trainable parameters,
"batch_stats": buffers}`` (the second only when the model has buffers, i.e.
`ParamSpec`\\ s with ``trainable=False``: BatchNorm's running statistics),
each nested by path segment (``{"params": {"0": {"weight": w, "bias": b}}}``).
The canonical flat names (``"0.weight"``, ``"1.running_mean"``) are the
``state_dict`` keys. Shapes are resolved at trace time, also from JAX's
symbolic dims under ``jax.export``, so every shape problem is a `ShapeError`
raised while tracing, before XLA computes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lazyshape import ShardSpec
from lazyshape.backend import (
    BuildConfig,
    BuiltModel,
    Context,
    Inference,
    Layer,
    ParamSpec,
    PNode,
    Runtime,
    ShapeError,
    Step,
    bind_program,
    format_shape,
    node_values,
    pack_outputs,
    run_steps,
    to_numpy,
)

from . import init
from . import ops as ops  # importing the ops registers every family's steps
from .native import BINDERS
from .shapes import input_specs

__all__ = [
    "COLLECTIONS", "JaxModel", "flatten_params", "flatten_variables", "nest_params",
    "variables_of",
]

Params = dict[str, Any]

#: the variable collections, flax's names: trainable parameters, then buffers
COLLECTIONS = ("params", "batch_stats")


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


def _collection(spec: ParamSpec) -> str:
    return COLLECTIONS[0] if spec.trainable else COLLECTIONS[1]


def variables_of(flat: Mapping[str, Any], specs: Mapping[str, ParamSpec]) -> dict[str, Params]:
    """``{canonical name: array}`` -> ``{"params": nested, "batch_stats": nested}``,
    each name in the collection its spec says (``"batch_stats"`` only when some
    spec has ``trainable=False``)."""
    split: dict[str, dict[str, Any]] = {COLLECTIONS[0]: {}}
    for name, value in flat.items():
        split.setdefault(_collection(specs[name]), {})[name] = value
    return {c: nest_params(split[c]) for c in COLLECTIONS if c in split}


def flatten_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """``{"params": ..., "batch_stats": ...}`` -> ``{canonical name: array}``
    (each collection nested or flat; ``{}`` for a model without parameters).
    ``TypeError`` unless ``variables`` is a mapping of known collections."""
    if not isinstance(variables, Mapping) or any(c not in COLLECTIONS for c in variables):
        got = list(variables) if isinstance(variables, Mapping) else type(variables).__name__
        raise TypeError(
            'variables are what init returns, {"params": ..., "batch_stats": ...} (the '
            f"second only for a model with buffers); got {got}"
        )
    flat: dict[str, Any] = {}
    for collection in variables.values():
        flat.update(flatten_params(collection))
    return flat


def _mutable_collections(mutable: Any) -> tuple[str, ...] | None:
    """flax's ``mutable``: False, None or an empty collection -> None (``apply``
    returns ``y``); True -> every collection; a name or names -> those."""
    if mutable is True:
        return COLLECTIONS
    if mutable is False or mutable is None:
        return None
    names = (mutable,) if isinstance(mutable, str) else tuple(_names(mutable))
    unknown = [n for n in names if n not in COLLECTIONS]
    if unknown:
        raise ValueError(
            f"mutable names collections among {list(COLLECTIONS)} (or is True); got {unknown}"
        )
    return names or None


def _names(mutable: Any) -> Iterable[Any]:
    if not isinstance(mutable, Iterable):
        raise TypeError(f"mutable is a bool, a collection name or names; got {mutable!r}")
    return mutable


class _Rematerialize(Exception):
    """Raised while tracing the stateful forward when the inputs need new
    parameters; `JaxModel.__call__` allocates them outside the trace and retries."""

    def __init__(self, inf: Inference, todo: list[str]) -> None:
        super().__init__("parameters to (re)materialize")
        self.inf = inf
        self.todo = todo


class JaxModel(BuiltModel):
    """A model built on JAX.

    Pure API (jit/grad/vmap/export-able), flax's conventions:

    - ``variables = m.init(key, *inputs)``: inputs are arrays, shape tuples or
      specs; ``variables["params"]`` holds the trainable parameters nested by
      path (``variables["params"]["0"]["weight"]`` of shape ``(out, in)``) and,
      for a model with buffers, ``variables["batch_stats"]`` its running
      statistics (``variables["batch_stats"]["1"]["running_mean"]`` ``(C,)``);
    - ``y = m.apply(variables, *inputs, training=False, mutable=(), key=None)``;
      ``(y, updates)`` when ``mutable`` names a collection
      (``mutable=["batch_stats"]``): a training forward's new statistics.
      ``key`` feeds dropout in training (each layer folds in its own path).

    Stateful convenience: ``m(x)`` (the first call initializes with the key of
    ``seed``; each input signature is compiled once with ``jax.jit``),
    ``m.variables`` (the stored variables, in ``init``'s layout; ``m.params`` is
    the same dict), ``m.materialize``,
    ``m.state_dict`` / ``m.load_state_dict`` (flat canonical names).

    Built with ``mesh=`` and ``partition=``, every parameter and buffer is
    created already split over the mesh (``m.shardings(x)`` says how): with
    ``rng="native"`` each parameter is drawn by a ``jax.jit`` program whose
    ``out_shardings`` is its partition's sharding, so each device computes
    only its shard (`init_fn` is the same draws as one program, to lower and
    inspect); with ``rng="portable"`` the values come from NumPy on the host, one
    parameter at a time, each put straight onto its shards (the host holds at
    most one whole parameter at once). The values are those of the same build
    without a mesh, bit for bit, in both modes. Loaded checkpoints and the
    stateful ``m(x)`` are placed the same way.
    """

    def __init__(self, model: Layer, config: BuildConfig) -> None:
        if config.mesh is not None and not isinstance(config.mesh, Mesh):
            raise TypeError(
                f"mesh= takes a jax.sharding.Mesh, got {type(config.mesh).__name__}"
            )
        self.model = model
        self.config = config
        #: the device mesh the parameters are split over, and the rules (or None)
        self.mesh: Mesh | None = config.mesh
        self.partition = config.partition
        #: the compiled init programs (`init_fn`), by plan and shardings
        self._programs: dict[Any, Any] = {}
        #: the compiled sharded draws, by (primitive, shape, dtype, sharding)
        self._samplers: dict[Any, Any] = {}
        #: the stateful runtime: the specs of ``self._flat`` and the shape-change policy
        self._rt = Runtime(model, config)
        self._key: Any = None
        self._flat: dict[str, Any] = {}
        self._variables: dict[str, Params] = {}
        self._inference: Inference | None = None
        self._node_hash = [init.path_hash(node.path) for node in self._rt.program.nodes]
        self._jit_forward = jax.jit(self._forward)

    # -- pure API -----------------------------------------------------------

    def init(self, key: Any, *inputs: Any) -> dict[str, Params]:
        """Fresh variables for inputs (arrays, shape tuples or `TensorSpec`\\ s):
        ``{"params": ..., "batch_stats": ...}``, the second only when the model
        has buffers. Each parameter is drawn with ``fold_in(key, crc32(path))``;
        with ``rng="portable"`` the values are the portable streams of ``seed``
        (identical on every backend) and ``key`` is not used. Pure: the model
        is not changed."""
        inf = self._rt.resolve_pure(input_specs(inputs))
        placement = self._placement(inf)  # a partition that does not fit: ShapeError now
        self._rt.check_memory(inf, list(inf.params))  # MemoryLimitError before drawing
        if isinstance(key, int):
            key = init.make_rng(key)
        return variables_of(self._draw(inf, list(inf.params), key, placement), inf.params)

    def shardings(self, *inputs: Any) -> dict[str, Params]:
        """The ``NamedSharding`` of every parameter and buffer for these inputs
        (arrays, shape tuples or specs), in ``init``'s layout (``{"params":
        {"0": {"weight": NamedSharding(mesh, PartitionSpec("tp", None))}},
        ...}``): each dim split over the mesh axes its partition rule names, a
        parameter no rule matches replicated. What a sharded train step's
        ``in_shardings`` / ``out_shardings`` take. Needs a build with
        ``mesh=`` and ``partition=``; raises `ShapeError` for a rule that
        does not fit a parameter."""
        inf = self._rt.resolve_pure(input_specs(inputs))
        placement = self._placement(inf)
        if placement is None:
            raise ValueError(
                "shardings need a sharded build: ls.build(model, 'jax', mesh=mesh, "
                "partition=rules)"
            )
        return variables_of(placement, inf.params)

    def init_fn(self, *inputs: Any) -> Any:
        """A ``jax.jit``-ed function ``key -> variables`` giving what ``init(key,
        *inputs)`` gives with ``rng="native"``, as one program (built on a mesh:
        with the partition's ``out_shardings``; ``init`` itself runs one
        program per kind of parameter, one parameter after another, so XLA's
        scratch space is one draw's). Lower and compile it to inspect it,
        e.g. the bytes each device gets:
        ``m.init_fn(x).lower(key).compile().memory_analysis()``. With
        ``rng="portable"`` the values are drawn on the host, not by a program:
        ``ValueError``."""
        if self.config.rng == "portable":
            raise ValueError(
                "rng='portable' draws initial values with NumPy on the host, one parameter "
                "at a time; there is no init program (use rng='native')"
            )
        inf = self._rt.resolve_pure(input_specs(inputs))
        fn = self._program(inf, list(inf.params), self._placement(inf))
        specs = inf.params

        def run(key: Any) -> dict[str, Params]:
            return variables_of(fn(key), specs)

        return jax.jit(run)

    def _placement(self, inf: Inference) -> dict[str, NamedSharding] | None:
        """``{name: NamedSharding}`` for every parameter of ``inf`` under the
        build's partition (None without a mesh); `ShapeError` for a rule that
        does not fit, before anything is allocated."""
        if self.mesh is None:
            return None
        mesh_shape = {str(a): int(n) for a, n in self.mesh.shape.items()}
        shards = inf.partitioned(self.partition, mesh_shape).shards
        return {name: NamedSharding(self.mesh, _partition_spec(s)) for name, s in shards.items()}

    def _program(self, inf: Inference, names: Sequence[str],
                 placement: Mapping[str, NamedSharding] | None) -> Any:
        """The compiled native init of ``names`` (`init.init_program`), cached
        by plan and shardings."""
        plan = tuple(self._rt.primitives(inf.params, names))
        shardings = None if placement is None else {n: placement[n] for n in names}
        cache_key = (plan, None if shardings is None else tuple(shardings.items()))
        fn = self._programs.get(cache_key)
        if fn is None:
            fn = self._programs[cache_key] = init.init_program(plan, shardings)
        return fn

    def apply(
        self,
        variables: Mapping[str, Any],
        *inputs: Any,
        training: bool = False,
        mutable: Any = (),
        key: Any = None,
    ) -> Any:
        """The forward pass: ``y = m.apply(variables, x)`` (a tuple for several
        outputs). Pure; ``training`` must be a Python bool (static under jit);
        ``key`` is the PRNG key dropout draws from in training.

        ``mutable`` is flax's: ``["batch_stats"]`` (or a name, or True for
        every collection) returns ``(y, updates)``, ``updates`` holding each
        named collection the model has, after this forward
        (``{"batch_stats": new running statistics}`` in training; the given
        ones in evaluation; ``{}`` for a model without buffers). A training
        forward that updates buffers needs ``mutable=["batch_stats"]``.

        Inputs may have JAX symbolic dims (``jax.export``): the rules check
        them as lazyshape symbols of the same names. Raises `ShapeError` while
        tracing when the inputs don't fit the model or the variables don't have
        the shapes these inputs need."""
        if not isinstance(training, bool):
            raise TypeError(
                "training must be a Python bool; under jit mark it static: "
                "jax.jit(m.apply, static_argnames='training')"
            )
        collections = _mutable_collections(mutable)
        xs = tuple(x if isinstance(x, jax.Array) else jnp.asarray(x) for x in inputs)
        flat = flatten_variables(variables)
        specs = input_specs(xs)
        inf = self._rt.resolve_pure(specs)
        _check_variables(self._rt, inf, flat, variables)
        ctx = Context(training=training, rng=key)
        on_node: Callable[[int, Context], None] | None = None
        if training and key is not None:
            hashes = self._node_hash

            def on_node(i: int, c: Context) -> None:
                c.rng = jax.random.fold_in(key, hashes[i])

        y = self._run(inf, flat, xs, ctx, on_node, symbolic=specs is not xs)
        stats = COLLECTIONS[1]
        if ctx.updates and (collections is None or stats not in collections):
            name = next(iter(ctx.updates))
            raise ValueError(
                f"{self._rt.kind_at(name)} at '{self._rt.path_at(name)}' updates its buffers "
                f"(`{name}`) in training; call apply(..., training=True, "
                "mutable=['batch_stats']) to get (outputs, {'batch_stats': new statistics})"
            )
        if collections is None:
            return y
        updates: dict[str, Any] = {}
        for c in collections:
            if c not in variables:
                continue
            given = variables[c]
            if c == stats and ctx.updates:
                new = {**flatten_params(given), **ctx.updates}
                given = nest_params(new) if _is_nested(given) else new
            updates[c] = given
        return y, updates

    # -- stateful convenience --------------------------------------------------

    @property
    def variables(self) -> dict[str, Params]:
        """The stored variables, in ``init``'s layout: ``{"params": ...,
        "batch_stats": ...}`` (``{}`` before materialization), what
        ``m.apply(m.variables, x)`` takes. Assigning variables (after an
        optimizer step) checks them like a checkpoint."""
        return self._variables

    @variables.setter
    def variables(self, value: Mapping[str, Any]) -> None:
        self.load_state_dict(flatten_variables(value))

    @property
    def params(self) -> dict[str, Params]:
        """The stored variables, the same dict as `variables` (every backend's
        ``m.params`` is what its forward takes; on JAX that is the variables
        dict, not its ``"params"`` collection). Assignable likewise."""
        return self._variables

    @params.setter
    def params(self, value: Mapping[str, Any]) -> None:
        self.variables = value

    def _prepare(self, xs: tuple[Any, ...]) -> Inference:
        with self._rt.lock:  # threads making the first call at once: one initialization
            inf, todo = self._rt.resolve(input_specs(xs))
            if todo or not self._rt.initialized:
                self._allocate(inf, todo)
            self._inference = inf
            return inf

    def __call__(self, *xs: Any) -> Any:
        """Forward in evaluation mode: ``m(x)``; several inputs for a multi-input
        model. The first call resolves and materializes; each input signature
        is traced and compiled once."""
        try:
            return self._jit_forward(self._variables, *xs)
        except _Rematerialize:  # first call, on_shape_change="reinit", or stale variables
            self._prepare(xs)  # (under the lock: whichever thread comes second finds it done)
            return self._jit_forward(self._variables, *xs)

    def _forward(self, variables: Mapping[str, Any], *xs: Any) -> Any:
        # runs at trace time only: the resolution and policy checks cost nothing
        # per call once a signature is compiled
        if not all(isinstance(x, jax.Array) for x in xs):  # a list is a pytree to jit
            got = ", ".join(type(x).__name__ for x in xs)
            raise TypeError(f"a built model is called on arrays; got {got}")
        specs = input_specs(xs)
        inf, todo = self._rt.resolve(specs)
        flat = flatten_variables(variables)
        if todo or not self._rt.initialized or len(flat) != len(inf.params):
            # (the last: variables read before another thread's first call stored them)
            raise _Rematerialize(inf, todo)
        self._inference = inf
        return self._run(inf, flat, xs, Context(training=False), symbolic=specs is not xs)

    def _run(self, inf: Inference, flat: Mapping[str, Any], xs: tuple[Any, ...], ctx: Context,
             on_node: Callable[[int, Context], None] | None = None, *,
             symbolic: bool = False) -> Any:
        """The program's forward on ``xs`` with the parameters ``flat`` (canonical
        names): JAX's own steps where registered, each layer's ``forward`` else.
        With ``symbolic`` dims, a step refusing one raises a located `ShapeError`."""
        program = self._rt.program
        steps = bind_program(program, node_values(inf, flat), ctx, BINDERS, on_node)
        if symbolic:
            steps = [_located(step, node) for step, node in zip(steps, program.nodes, strict=True)]
        return pack_outputs(program, run_steps(program, steps, xs))

    def _base_key(self) -> Any:
        if self._key is None:
            self._key = init.make_rng(self.config.seed)
        return self._key

    def _draw(self, inf: Inference, names: Sequence[str], key: Any,
              placement: Mapping[str, NamedSharding] | None = None) -> dict[str, Any]:
        config = self.config
        if placement is not None:
            return self._draw_sharded(inf, names, key, placement)
        if config.rng == "portable":
            specs = inf.params
            direct: set[str] = set()

            def into(name: str) -> Any:  # drawn into memory JAX then uses as it is
                spec = specs[name]
                shape = tuple(int(d) for d in spec.shape)
                out = init.host_buffer(shape, spec.dtype or config.dtype, config.device)
                if out is not None:
                    direct.add(name)
                return out

            return {
                n: init.adopt(v, config.device) if n in direct
                else init.from_numpy(v, specs[n].dtype or config.dtype, config.device)
                for n, v in self._rt.portable_values(specs, names, into)
            }
        values = init.sample_all(tuple(self._rt.primitives(inf.params, names)), key)
        if not values:
            return {}
        if config.device is not None:
            values = jax.device_put(values, init.as_device(config.device))
        return values

    def _draw_sharded(self, inf: Inference, names: Sequence[str], key: Any,
                      placement: Mapping[str, NamedSharding]) -> dict[str, Any]:
        """``names`` created on their shards: native, one jitted program with
        the shardings as ``out_shardings``; portable, each parameter drawn on
        the host and put onto its shards before the next is drawn."""
        if self.config.rng == "native":
            # one small program per kind of parameter (primitive, shape, dtype,
            # sharding), run one parameter after another: XLA's scratch space for
            # a draw is that of one shard, not of the whole model's draws at once
            out: dict[str, Any] = {}
            for name, shape, dtype, prim in self._rt.primitives(inf.params, names):
                target = placement[name]
                # a parameter replicated along some mesh axes is drawn split over
                # every axis, then put onto its replicas: one draw, not one per
                # replica (the values are the same: the draw is partitionable)
                draw = _split_everywhere(target, shape)
                kind = (prim, shape, dtype, draw)
                fn = self._samplers.get(kind)
                if fn is None:
                    fn = self._samplers[kind] = init.sharded_sampler(*kind)
                value = fn(init.parameter_key(key, name))
                out[name] = value if draw is target else jax.device_put(value, target)
            return out
        specs = inf.params
        return {
            n: _put(v, specs[n].dtype or self.config.dtype, placement[n])
            for n, v in self._rt.portable_values(specs, names)
        }

    def _allocate(self, inf: Inference, todo: list[str]) -> None:
        new = self._draw(inf, todo, self._base_key(), self._placement(inf))
        self._set({n: new[n] if n in new else self._flat[n] for n in inf.params}, inf)

    def _set(self, flat: dict[str, Any], inf: Inference) -> None:
        self._flat = flat
        self._variables = variables_of(flat, inf.params)
        self._rt.commit(inf)

    def state_dict(self) -> dict[str, Any]:
        """``{canonical name: jax.Array}``, parameters and buffers together
        (torch's names: ``"1.running_mean"``); before materialization,
        placeholders with partial shapes (``<Uninitialized (256, ?) float32>``)."""
        if not self._rt.initialized:
            return dict(self._rt.placeholders())
        return dict(self._flat)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load NumPy, torch or JAX arrays; materializes an uninitialized model
        from the state's shapes. A mismatch raises `ShapeError` and changes nothing."""
        arrays = {n: _host_or_jax(v) for n, v in state.items()}
        inf = self._rt.check_state({n: tuple(a.shape) for n, a in arrays.items()})
        placement = self._placement(inf)
        values = {
            n: init.from_numpy(arrays[n], s.dtype or self.config.dtype, self.config.device)
            if placement is None else _put(arrays[n], s.dtype or self.config.dtype, placement[n])
            for n, s in inf.params.items()
        }
        self._set(values, inf)


def _split_everywhere(target: NamedSharding, shape: tuple[int, ...]) -> NamedSharding:
    """``target`` with the mesh axes it replicates over added to the first dim
    they divide (with the axes already there): the sharding to draw a value on
    when ``target`` keeps copies of it. ``target`` itself when it uses every
    axis, or when no dim divides."""
    mesh = target.mesh
    spec = list(target.spec) + [None] * (len(shape) - len(target.spec))
    used = {a for entry in spec if entry is not None
            for a in ((entry,) if isinstance(entry, str) else entry)}
    free = [a for a in mesh.axis_names if a not in used]
    if not free:
        return target
    sizes = dict(mesh.shape)
    ways = 1
    for a in free:
        ways *= sizes[a]
    for d, entry in enumerate(spec):
        have = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        split = ways
        for a in have:
            split *= sizes[a]
        if shape[d] % split == 0:
            spec[d] = (*have, *free)
            return NamedSharding(mesh, PartitionSpec(*spec))  # type: ignore[no-untyped-call]
    return target


def _partition_spec(shard: ShardSpec) -> PartitionSpec:
    """The ``PartitionSpec`` of one parameter's mesh axes per dim: ``()`` ->
    None (whole), ``("tp",)`` -> ``"tp"``, ``("dp", "tp")`` -> ``("dp", "tp")``."""
    axes = (None if not a else a[0] if len(a) == 1 else a for a in shard.axes)
    return PartitionSpec(*axes)  # type: ignore[no-untyped-call]


def _put(value: Any, dtype: str, sharding: NamedSharding) -> Any:
    """``value`` (NumPy or JAX) in ``dtype`` on its shards: each device gets
    only its slice, and no whole copy is made on a device first."""
    if isinstance(value, jax.Array):
        return jax.device_put(value.astype(init.jax_dtype(dtype)), sharding)
    return jax.device_put(np.asarray(value, dtype=init.jax_dtype(dtype)), sharding)


def _located(step: Step, node: PNode) -> Step:
    """``step``, raising JAX's refusal of a symbolic dim (a forward that needs a
    concrete size, or a comparison JAX cannot decide, under ``jax.export``) as
    a `ShapeError` at the node."""

    def run(*args: Any) -> Any:
        try:
            return step(*args)
        except jax.errors.InconclusiveDimensionOperation as e:
            raise ShapeError(
                "input sizes this layer's forward can use while symbolic (jax.export); "
                "bound them with constraints of the symbolic shape, or make them concrete",
                str(e).splitlines()[0],
                kind=node.layer.kind,
                path=node.path,
            ) from e

    return run


def _is_nested(collection: Mapping[str, Any]) -> bool:
    return any(isinstance(v, Mapping) for v in collection.values())


def _host_or_jax(value: Any) -> Any:
    """A JAX array as it is; any other backend's array (or anything array-like)
    as a NumPy array."""
    if isinstance(value, (jax.Array, np.ndarray)):
        return value
    try:
        return to_numpy(value)
    except TypeError:  # not an array of any backend: array-like
        return np.asarray(value)


def _check_variables(
    rt: Runtime, inf: Inference, flat: Mapping[str, Any], variables: Mapping[str, Any]
) -> None:
    """`ShapeError` unless ``variables`` (flattened: ``flat``) hold exactly the
    parameters ``inf`` needs, each in its collection, with its shape."""
    expected = inf.params
    if flat.keys() != expected.keys():
        missing = [f"{_collection(expected[n])}: {n}" for n in expected if n not in flat]
        extra = [n for n in flat if n not in expected]
        raise ShapeError(
            "variables with exactly the model's parameter and buffer names",
            f"missing {missing}, unexpected {extra}",
            kind=inf.model.kind,
        )
    for collection, tree in variables.items():
        misplaced = [n for n in flatten_params(tree) if _collection(expected[n]) != collection]
        if misplaced:
            n = misplaced[0]
            raise ShapeError(
                f"`{n}` in variables['{_collection(expected[n])}']",
                f"`{n}` in variables['{collection}']",
                kind=rt.kind_at(n),
                path=rt.path_at(n),
            )
    for name, spec in expected.items():
        got = tuple(jnp.shape(flat[name]))
        if got != spec.shape:
            ins = ", ".join(format_shape(s.shape) for s in inf.inputs)
            raise ShapeError(
                f"variables that fit input shapes {ins}: `{name}` of shape "
                f"{format_shape(spec.shape)}",
                f"`{name}` of shape {format_shape(got)}",
                kind=rt.kind_at(name),
                path=name.rpartition(".")[0],
            )
