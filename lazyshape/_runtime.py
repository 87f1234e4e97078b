"""The backend-independent half of a built model.

A `Runtime` holds what every backend's built model needs and must get right
the same way: the per-signature resolution cache, the parameter specs that were
materialized, the ``on_shape_change`` policy, the partial (symbolic) inference
that placeholders and checkpoint loading use, the checkpoint checks, the
initial-value plan for each rng mode, and the forward walk over the program.
Backends supply allocation and arrays; nothing here imports a framework.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from ._dims import Dim, Sym, bind, eq, format_shape, free_symbols, unknown
from ._errors import ShapeError
from ._graph import PNode, Program, program_of
from ._init import Initializer, portable_generator, sample_numpy
from ._layer import Context, Layer, param_prefix, shape_input_dtype
from ._memory import check_param_memory
from ._partition import Partition
from ._propagate import Inference, LayerRecord, infer
from ._specs import ParamSpec, Placeholder, TensorSpec, dtype_kind, normalize_dtype

__all__ = [
    "BuildConfig", "Runtime", "run_program", "RNG_MODES", "Step", "Binder",
    "bind_program", "chain_steps", "run_steps", "passthrough", "param_owners", "node_values",
    "BuiltModel", "pack_outputs", "render_model", "NativeRegistry",
]

T = TypeVar("T")

RNG_MODES = ("native", "portable")
SHAPE_CHANGE = ("error", "reinit")


@dataclass(frozen=True)
class BuildConfig:
    """The options of `ls.build` (validated)."""

    seed: int | None = None
    rng: str = "native"
    dtype: str = "float32"
    device: Any = None
    on_shape_change: str = "error"
    #: the most bytes the parameters may take (None: what the process can still
    #: allocate, read at each materialization)
    max_param_bytes: int | float | None = None
    #: the name of the backend the model is built on (set by `ls.build`)
    backend: str = ""
    #: a device mesh the parameters are created sharded over (JAX: a
    #: ``jax.sharding.Mesh``), with ``partition`` (a `Partition`) saying how
    mesh: Any = None
    partition: Any = None

    def __post_init__(self) -> None:
        if (self.mesh is None) != (self.partition is None):
            given, missing = ("mesh", "partition") if self.partition is None else (
                "partition", "mesh")
            raise ValueError(
                f"{given}= needs {missing}=: a sharded build takes a device mesh and an "
                "ls.Partition saying how each parameter is split over it"
            )
        if self.partition is not None and not isinstance(self.partition, Partition):
            raise TypeError(
                f"partition= takes an ls.Partition, got {type(self.partition).__name__}"
            )
        if self.mesh is not None and self.device is not None:
            raise ValueError(
                f"device= (={self.device!r}) and mesh= both given: a sharded build puts "
                "each parameter on the mesh's devices; leave device= out"
            )
        m = self.max_param_bytes
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or m < 0
                              or m != m):
            raise ValueError(
                f"max_param_bytes must be a non-negative number of bytes or None, got {m!r}"
            )
        if self.rng not in RNG_MODES:
            raise ValueError(f"rng must be one of {RNG_MODES}, got {self.rng!r}")
        if self.on_shape_change not in SHAPE_CHANGE:
            raise ValueError(
                f"on_shape_change must be one of {SHAPE_CHANGE}, got {self.on_shape_change!r}"
            )
        if self.seed is not None and (type(self.seed) is not int or self.seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {self.seed!r}")
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype))

    @property
    def portable_seed(self) -> int:
        """The seed of the portable streams (0 when no seed was given)."""
        return 0 if self.seed is None else self.seed


class BuiltModel:
    """The surface every backend's built model shares: ``initialized``,
    ``inference``, ``materialize`` and a ``repr`` with the inferred sizes.

    A subclass holds its `Runtime` in ``_rt`` and the inference of the last
    resolved inputs in ``_inference``, and implements ``_prepare(inputs)``:
    resolve, and (re)materialize when needed."""

    _rt: Runtime
    _inference: Inference | None

    @property
    def initialized(self) -> bool:
        """True once parameters exist."""
        return self._rt.initialized

    @property
    def inference(self) -> Inference | None:
        """The inference of the last resolved inputs (None before any)."""
        return self._inference

    def materialize(self, *inputs: Any) -> Any:
        """Resolve from shapes, specs or arrays and allocate, computing nothing;
        returns the model."""
        self._prepare(inputs)
        return self

    def _prepare(self, xs: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return render_model(self._rt.model, self._inference)


class Runtime:
    """Resolution, policy and checks shared by every backend's built model."""

    def __init__(self, model: Layer, config: BuildConfig, n_inputs: int | None = None) -> None:
        self.model = model
        self.config = config
        declared = getattr(model, "_declared", lambda: None)()
        #: a functional model has a fixed number of inputs; a layer or a
        #: Sequential takes as many as its first layer does (known at first call)
        self._fixed_arity = declared is not None
        self.program: Program = program_of(
            model, n_inputs or (len(declared) if declared else 1)
        )
        #: the specs the current parameters were materialized with (None before)
        self.specs: dict[str, ParamSpec] | None = None
        #: the inference they were materialized from: its records say which node
        #: owns which parameter under which local name
        self.materialized: Inference | None = None
        #: signature -> inference, for signatures checked against ``specs``
        self._checked: dict[Any, Inference] = {}
        self._partial: Inference | None | bool = False
        self._owner_map: dict[str, LayerRecord] | None = None
        #: held by a backend while it resolves and (re)materializes, so that
        #: threads making the first call at once initialize once; a call with
        #: an input signature already prepared takes no lock
        self.lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles (``copy.deepcopy(model)``) get a lock of their own."""
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    def moved(self, dtype: str, device: Any) -> None:
        """The built model's parameters were moved to ``dtype`` / ``device`` by the
        framework (torch's ``m.half()``, ``m.to("meta")``): later resolutions
        and materializations use them. ``dtype`` is a canonical dtype name."""
        dtype = normalize_dtype(dtype)
        if dtype == self.config.dtype and device == self.config.device:
            return
        self.config = dataclasses.replace(self.config, dtype=dtype, device=device)
        self._checked.clear()
        self._partial = False
        self._owner_map = None

    def kind_at(self, param: str) -> str:
        """The kind of the layer owning parameter ``param`` (``"Linear"``)."""
        rec = self._owners().get(param)
        return rec.kind if rec is not None else self.model.kind

    def path_at(self, param: str) -> str:
        """The path of the node owning parameter ``param`` (``"encoder.fc"``)."""
        rec = self._owners().get(param)
        return rec.param_path if rec is not None else param.rpartition(".")[0]

    def _owners(self) -> dict[str, LayerRecord]:
        """``{canonical parameter name: the record of its owning node}``, from the
        materialized inference or the partial one (local names don't depend on
        input shapes)."""
        owners = self._owner_map
        if owners is None:
            inf = self.materialized or self.partial()
            if inf is None:
                return {}
            owners = self._owner_map = param_owners(inf)
        return owners

    # -- resolution -------------------------------------------------------

    @property
    def initialized(self) -> bool:
        """True once parameters exist."""
        return self.specs is not None

    def resolve(self, xs: Sequence[Any]) -> tuple[Inference, list[str]]:
        """Resolve arrays/shapes/specs ``xs``; return the inference and the names
        of the parameters to (re)materialize (empty when the current ones fit).

        Raises `ShapeError` before anything changes: for a shape problem, and for a
        parameter-determining change under ``on_shape_change="error"``."""
        key = _signature(xs)
        hit = self._checked.get(key) if key is not None else None
        if hit is not None:
            return hit, []
        inf = self.resolve_pure(xs)
        todo = self._plan(inf)
        if todo:
            self.check_memory(inf, todo)
        elif key is not None:
            self._checked[key] = inf
        return inf, todo

    def check_memory(self, inf: Inference, names: Sequence[str]) -> None:
        """Raise `MemoryLimitError` before allocating parameters ``names`` of
        ``inf`` when they would need more than ``max_param_bytes`` (default:
        what the process can still allocate)."""
        check_param_memory(inf.params, names, self.config.dtype, self.config.max_param_bytes,
                           self.config.device)

    def resolve_pure(self, xs: Sequence[Any]) -> Inference:
        """Infer from ``xs`` and require concrete parameter shapes, without the
        shape-change policy or any state (for pure ``init`` / ``apply``)."""
        if len(xs) != self.program.n_inputs and not self._fixed_arity:
            self.program = program_of(self.model, len(xs))
            self._checked.clear()
        inf = infer(self.model, *xs, dtype=self.config.dtype)
        self._check_concrete(inf)
        return inf

    def _check_concrete(self, inf: Inference) -> None:
        unresolved = inf.unresolved
        if unresolved:
            name, syms = next(iter(unresolved.items()))
            spec = inf.params[name]
            raise ShapeError(
                "concrete parameter shapes to materialize",
                f"`{name}` of shape {format_shape(spec.shape)} needs "
                + ", ".join(sorted(syms)),
                kind=self.model.kind,
                path="",
            )

    def _plan(self, inf: Inference) -> list[str]:
        if self.specs is None:
            return list(inf.params)
        changed = [
            n for n, s in inf.params.items()
            if (old := self.specs.get(n)) is None or old.shape != s.shape or old.dtype != s.dtype
        ]
        if changed and self.config.on_shape_change == "error":
            n = changed[0]
            old = self.specs.get(n)
            was = format_shape(old.shape) if old is not None else "absent"
            raise ShapeError(
                "inputs that keep the materialized parameter shapes "
                "(on_shape_change='error'; build with on_shape_change='reinit' to re-initialize)",
                f"`{n}` materialized as {was}, these inputs need "
                f"{format_shape(inf.params[n].shape)} (input shapes "
                + ", ".join(format_shape(s.shape) for s in inf.inputs) + ")",
                kind=self.kind_at(n),
                path=self.path_at(n),
            )
        return changed

    def commit(self, inf: Inference) -> None:
        """Record that the parameters now have ``inf.params``' specs and are
        owned by its records' nodes."""
        self.specs = dict(inf.params)
        self.materialized = inf
        self._owner_map = None
        self._checked.clear()

    # -- partial shapes (before materialization) --------------------------

    def partial(self) -> Inference | None:
        """A symbolic inference from the declared inputs, or from ``(B, ?, ...)``
        of the rank the first layer expects; None when no such guess resolves."""
        if self._partial is False:
            self._partial = None
            try:
                if self.program.declared is not None:
                    self._partial = infer(self.model, dtype=self.config.dtype)
                elif self.program.nodes:
                    first = self.program.nodes[0].layer
                    ndim = first.expected_ndim or 2
                    shape = (Sym("B"), *(unknown() for _ in range(ndim - 1)))
                    spec = TensorSpec._make(shape, shape_input_dtype(first, self.config.dtype))
                    self._partial = infer(
                        self.model, *([spec] * self.program.n_inputs), dtype=self.config.dtype
                    )
            except ShapeError:
                self._partial = None
        return self._partial if isinstance(self._partial, Inference) else None

    def placeholders(self) -> dict[str, Placeholder]:
        """``{name: Placeholder}`` with each parameter's partial shape."""
        inf = self.partial()
        if inf is None:
            return {}
        return {
            n: Placeholder(p.shape, p.dtype or self.config.dtype) for n, p in inf.params.items()
        }

    # -- checkpoints -------------------------------------------------------

    def check_state(
        self,
        shapes: Mapping[str, tuple[int, ...]],
        dtypes: Mapping[str, str] | None = None,
    ) -> Inference:
        """Check a state's names and shapes (and, given ``dtypes``, the kind of
        each dtype: an integer counter is not a float weight; a float64 value
        for a float32 parameter is cast) against the model; return the
        inference to materialize from it, whose parameters have exactly the
        state's shapes. Raises `ShapeError` and changes nothing on mismatch.

        Before materialization the state's shapes are matched against the
        partial shapes (``(256, ?)``), which solves for the unknown input
        sizes the parameters depend on; the model is then inferred from those
        sizes, so every node's record (its resolved hyperparameters,
        ``in_features=20``) is what a forward on such inputs gives."""
        partial = None
        if self.materialized is not None:
            expected = self.materialized.params
        else:
            partial = self.partial()
            if partial is None:
                raise ShapeError(
                    "a model whose parameter names are known before materialization",
                    "a model whose partial shapes don't resolve; materialize it first",
                    kind=self.model.kind,
                )
            expected = partial.params
        missing = [n for n in expected if n not in shapes]
        extra = [n for n in shapes if n not in expected]
        if missing or extra:
            raise ShapeError(
                "a state with exactly the model's parameter names",
                f"missing {missing}, unexpected {extra}",
                kind=self.model.kind,
            )
        env: dict[str, int] = {}
        got_shapes: dict[str, tuple[int, ...]] = {}
        for name, spec in expected.items():
            got = tuple(int(d) for d in shapes[name])
            if not _unify_shape(spec.shape, got, env):
                raise ShapeError(
                    f"`{name}` of shape {format_shape(spec.shape)}",
                    f"shape {format_shape(got)}",
                    kind=self.kind_at(name),
                    path=self.path_at(name),
                )
            got_shapes[name] = got
            if dtypes is not None:
                want = spec.dtype or self.config.dtype
                kind = dtype_kind(want)
                if kind != dtype_kind(dtypes[name]):
                    article = "an" if kind[0] in "aeiou" else "a"
                    raise ShapeError(
                        f"`{name}` of {article} {kind} dtype ({want})",
                        f"dtype {dtypes[name]}",
                        kind=self.kind_at(name),
                        path=self.path_at(name),
                    )
        if partial is None:
            assert self.materialized is not None
            return self.materialized
        inf = _bind_to_state(partial, got_shapes, env)
        self.check_memory(inf, list(inf.params))
        return inf

    # -- initial values ----------------------------------------------------

    def portable_values(
        self,
        specs: Mapping[str, ParamSpec],
        names: Sequence[str],
        into: Callable[[str], np.ndarray[Any, Any] | None] | None = None,
    ) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        """NumPy values of ``names`` from the portable streams (one Philox stream
        per parameter path): identical on every backend for the same seed.

        ``into(name)`` may give the array to write a value into (a CPU tensor's
        NumPy view: no copy of the tensor is ever made), or None for a new one."""
        seed = self.config.portable_seed
        for name in names:
            spec = specs[name]
            shape = tuple(int(d) for d in spec.shape)
            prim = spec.init.primitive(shape)
            dtype = spec.dtype or self.config.dtype
            out = None if into is None else into(name)
            yield name, sample_numpy(prim, shape, dtype, portable_generator(seed, name), out)

    def primitives(
        self, specs: Mapping[str, ParamSpec], names: Sequence[str]
    ) -> Iterator[tuple[str, tuple[int, ...], str, Initializer]]:
        """``(name, shape, dtype, primitive initializer)`` for each of ``names``,
        in model order (the order the native rng modes draw in)."""
        for name in names:
            spec = specs[name]
            shape = tuple(int(d) for d in spec.shape)
            yield name, shape, spec.dtype or self.config.dtype, spec.init.primitive(shape)

    def node_params(self, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """For each node of the program, ``{local name: value}`` of its
        parameters, read from ``values`` (canonical names) by the local names
        the materialized inference's records hold (a shared layer's calls get
        the same dict)."""
        assert self.materialized is not None, "node_params before materialization"
        return node_values(self.materialized, values)


def _signature(xs: Sequence[Any]) -> Any:
    # (shape, dtype object) per array: dtype objects hash fast, their str() doesn't
    key = []
    for x in xs:
        shape = getattr(x, "shape", None)
        if shape is None or type(x) is TensorSpec:
            return None
        key.append((tuple(shape), x.dtype))
    return tuple(key)


def _unify_shape(pattern: tuple[Dim, ...], got: tuple[int, ...], env: dict[str, int]) -> bool:
    if len(pattern) != len(got):
        return False
    for d, g in zip(pattern, got, strict=True):
        if type(d) is int:
            if d != g:
                return False
            continue
        syms = free_symbols(d)
        if isinstance(d, Sym):
            prev = env.setdefault(d.name, g)
            if prev != g:
                return False
        elif syms <= env.keys() and eq(bind(d, env), g) is False:
            return False
    return True


def param_owners(inf: Inference) -> dict[str, LayerRecord]:
    """``{canonical parameter name: the record of the node owning it}``."""
    return {
        rec.prefix + local: rec for rec in inf.layers if not rec.shared for local in rec.params
    }


def node_values(inf: Inference, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For each node of ``inf`` (program order), ``{local name: value}`` of its
    parameters from ``values`` (canonical names; missing ones are left out). A
    shared layer's calls get the same dict."""
    out: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    for rec in inf.layers:
        group = groups.get(rec.param_path)
        if group is None:
            prefix = rec.prefix
            group = groups[rec.param_path] = {
                local: values[prefix + local] for local in rec.params if prefix + local in values
            }
        out.append(group)
    return out


def _solve(d: Dim, got: int, env: Mapping[str, int]) -> list[int]:
    """The values of the one unbound symbol of ``d`` that make ``d == got``
    (``C // 2 == 4``: 8 and 9), for the rules' parameter dims, which grow
    with their input sizes (sums, products and floor divisions by positive
    constants): a doubling search for the first value reaching ``got``, then
    the run of values equal to it (at most 64)."""
    (name,) = free_symbols(d) - env.keys()

    def at(v: int) -> Dim:
        return bind(d, {**env, name: v})

    def below(v: int) -> bool:
        value = at(v)
        return type(value) is int and value < got

    hi = 1
    while below(hi):
        hi *= 2
        if hi > 2**62:
            return []
    lo = hi // 2 if hi > 1 else 0
    while lo < hi:  # the first value not below ``got``
        mid = (lo + hi) // 2
        if below(mid):
            lo = mid + 1
        else:
            hi = mid
    out = []
    for v in range(lo, lo + 64):
        if at(v) != got:
            break
        out.append(v)
    return out


def _bind_to_state(
    partial: Inference, shapes: Mapping[str, tuple[int, ...]], env: dict[str, int]
) -> Inference:
    """The inference of ``partial``'s model on the input sizes that give the
    parameters exactly ``shapes`` (names and partial shapes already unified,
    the plain symbols' values in ``env``): the remaining unknowns are solved
    from the parameter dims that hold one (`_solve`), keeping the values the
    rules' recorded assumptions allow (``C % 2 == 0`` picks 8 over 9).

    When no input sizes give exactly ``shapes`` (a dim no rule can invert),
    the partial inference's records are kept with the state's shapes: the
    model materializes from them, but the affected records' resolved sizes
    stay symbolic (a backend then builds such a node generically)."""
    params = partial.params
    for name, spec in params.items():
        for d, g in zip(spec.shape, shapes[name], strict=True):
            if type(d) is int or len(free_symbols(d) - env.keys()) != 1:
                continue
            candidates = _solve(d, g, env)
            for v in candidates:
                (sym,) = free_symbols(d) - env.keys()
                trial = {**env, sym: v}
                if all(
                    (free_symbols(a) | free_symbols(b)) - trial.keys()
                    or eq(bind(a, trial), bind(b, trial)) is not False
                    for _, a, b in partial.assumptions
                ):
                    env[sym] = v
                    break
    if env:
        try:
            bound = partial.bind(**env)
        except ShapeError:
            bound = None
        if bound is not None and all(
            tuple(bound.params[n].shape) == shapes[n] for n in params
        ):
            return bound
    raw = [
        (layer, path, param_path, ins, outs, {
            k: ParamSpec._make(shapes[param_prefix(layer, param_path) + k],
                               p.dtype, p.init, p.trainable) for k, p in local.items()
        } if path == param_path else local)
        for layer, path, param_path, ins, outs, local in partial._raw
    ]
    return Inference(partial.model, partial.inputs, partial.outputs, raw,
                     partial.assumptions, partial.dtype)


def run_program(
    program: Program,
    node_params: Sequence[Mapping[str, Any]],
    xs: Sequence[Any],
    ctx: Context | None = None,
    on_node: Callable[[int, Context], None] | None = None,
) -> tuple[Any, ...]:
    """Run every node's ``forward`` in order on backend arrays; return the flat
    outputs (see `pack_outputs`).

    Layers with ``needs_context`` get ``ctx=`` (training flag, rng), after
    ``on_node(node index, ctx)``; the buffer updates they record are left in
    ``ctx.updates`` for the backend to apply."""
    return run_steps(program, bind_program(program, node_params, ctx or Context(), on_node=on_node),
                     xs)


class NativeRegistry(Generic[T]):
    """A backend's overrides per layer type: what it builds or runs instead of
    the layer's generic ``forward`` (torch: a factory of native modules; NumPy:
    a binder of fast steps). Looked up by exact type: a subclass may change
    ``forward``, so it gets the generic path unless registered itself.

    ::

        NATIVE = NativeRegistry[Factory]()

        @NATIVE.register(ls.Linear)
        def _linear(record, *, dtype, device): ...
    """

    def __init__(self) -> None:
        self._table: dict[type[Layer], T] = {}

    def register(self, *layer_types: type[Layer]) -> Callable[[T], T]:
        """Decorator: ``layer_types`` use the decorated object."""

        def deco(obj: T) -> T:
            for tp in layer_types:
                self._table[tp] = obj
            return obj

        return deco

    def get(self, layer_type: type[Layer]) -> T | None:
        """The override registered for exactly ``layer_type``, or None."""
        return self._table.get(layer_type)

    def __contains__(self, layer_type: object) -> bool:
        return layer_type in self._table


#: a node bound to its parameters: ``step(*inputs) -> output(s)``
Step = Callable[..., Any]
#: a backend's own forward of one layer type: ``(layer, params, ctx) -> step``, or
#: None to keep the layer's ``forward`` (see `bind_program`)
Binder = Callable[[Layer, Mapping[str, Any], Context], "Step | None"]


def passthrough(x: Any) -> Any:
    """The step of a node that returns its input (``Identity``, ``Dropout`` in
    evaluation): `chain_steps` leaves it out."""
    return x


def bind_program(
    program: Program,
    node_params: Sequence[Mapping[str, Any]],
    ctx: Context,
    binders: NativeRegistry[Binder] | None = None,
    on_node: Callable[[int, Context], None] | None = None,
) -> list[Step]:
    """One callable per node with its parameters (and ``ctx``) bound, so a
    forward is one call per node: ``step(*inputs) -> output(s)``.

    A layer whose exact type has a binder in ``binders`` gets the backend's own
    step (ops resolved once, at materialization: no per-call dispatch) when the
    binder returns one; it must compute exactly what the layer's ``forward``
    does on that backend. Any other layer (custom ones included) runs its
    ``forward``, written with ``ls.ops``; one that ``needs_context`` gets
    ``ctx=``, after ``on_node(node index, ctx)``. Bind again after the
    parameters change."""
    steps: list[Step] = []
    for i, (node, params) in enumerate(zip(program.nodes, node_params, strict=True)):
        layer = node.layer
        binder = binders.get(type(layer)) if binders is not None else None
        step = binder(layer, params, ctx) if binder is not None else None
        if step is None:
            if layer.needs_context:
                step = _context_step(layer, params, ctx, node, i, on_node)
            else:
                step = functools.partial(layer.forward, params)
        steps.append(step)
    return steps


def _context_step(layer: Layer, params: Mapping[str, Any], ctx: Context, node: PNode, i: int,
                  on_node: Callable[[int, Context], None] | None) -> Step:
    forward = layer.forward
    path, prefix = node.path, node.prefix

    def step(*args: Any) -> Any:
        ctx.path = path
        ctx.prefix = prefix
        if on_node is not None:
            on_node(i, ctx)
        return forward(params, *args, ctx=ctx)

    return step


def chain_steps(program: Program, steps: Sequence[Step]) -> list[Step] | None:
    """The steps of a straight chain (one input; each node takes the previous
    node's single output; the last one's is the model's), without the
    pass-through ones, so a forward is ``for step in chain: x = step(x)``;
    None for any other program (run it with `run_steps`)."""
    slot = 0
    chain: list[Step] = []
    for node, step in zip(program.nodes, steps, strict=True):
        if node.in0 != slot or node.out0 < 0:
            return None
        slot = node.out0
        if step is not passthrough:
            chain.append(step)
    if program.n_inputs != 1 or tuple(program.outputs) != (slot,):
        return None
    return chain


def run_steps(program: Program, steps: Sequence[Step], xs: Sequence[Any]) -> tuple[Any, ...]:
    """Run bound steps (`bind_program`) in program order on backend arrays: the
    flat outputs."""
    if len(xs) != program.n_inputs:
        raise ShapeError(f"{program.n_inputs} input(s)", f"{len(xs)}", kind="Model")
    vals: list[Any] = [None] * program.n_slots
    vals[: len(xs)] = xs
    for node, step in zip(program.nodes, steps, strict=True):
        i0 = node.in0
        out = step(vals[i0]) if i0 >= 0 else step(*[vals[j] for j in node.ins])
        if node.out0 >= 0:
            vals[node.out0] = out
        else:
            for slot, o in zip(node.outs, out, strict=True):
                vals[slot] = o
    return tuple([vals[i] for i in program.outputs])


def pack_outputs(program: Program, outs: tuple[Any, ...]) -> Any:
    """What a built model returns for its flat outputs: a single array; the
    layer's own structure when every output comes from one multi-output node
    (an LSTM with ``return_state=True`` gives ``(out, (h, c))``); else a tuple."""
    if len(outs) == 1:
        return outs[0]
    if program.nodes:
        last = program.nodes[-1]
        if tuple(program.outputs) == last.outs:
            return last.layer.pack_outputs(outs)
    return outs


def render_model(model: Layer, inf: Inference | None) -> str:
    """``repr`` of a model with the sizes an inference found filled in
    (``Linear(in_features=20, out_features=256, bias=True)``)."""
    if inf is None:
        return repr(model)
    records = {rec.path: rec for rec in inf.layers}

    def show(layer: Layer, path: str) -> str:
        children = getattr(layer, "children", None)
        if children is None:
            rec = records.get(path)
            if rec is None:
                return repr(layer)
            from ._layer import format_hparam

            hp = rec.resolved
            return f"{layer.kind}(" + ", ".join(
                f"{k}={format_hparam(v)}" for k, v in hp.items()
            ) + ")"
        lines = [f"{layer.kind}("]
        for key, child in children():
            body = show(child, f"{path}.{key}" if path else key).replace("\n", "\n  ")
            lines.append(f"  ({key}): {body}")
        lines.append(")")
        return "\n".join(lines)

    return show(model, "")
