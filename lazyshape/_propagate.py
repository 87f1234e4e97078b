"""The propagation pass: `infer` resolves every tensor and parameter spec of a
model from input specs, touching no backend and allocating nothing.

One pass over the model's structure, linear in the number of layer calls: the
containers trace their children as they do when compiling the flat program
(`_graph.Program`, which the backends run), but each primitive layer's rules
run where the program would get a node, so inferring shapes never builds the
program. When every dim is an int the rules do plain integer arithmetic;
symbolic dims flow through the same code as expressions.
"""

from __future__ import annotations

import threading
from typing import Any

from ._dims import (
    Dim,
    Sym,
    bind,
    bind_shape,
    bounds,
    eq,
    format_dim,
    format_shape,
    free_symbols,
    is_symbolic,
    prod,
)
from ._errors import ShapeError
from ._graph import Module, first_reader, program_of, trace
from ._layer import (
    ASSUMED,
    Assumed,
    Layer,
    check_param_dtype,
    param_prefix,
    resolve_node,
    shape_input_dtype,
)
from ._specs import ParamSpec, TensorSpec, as_shape, itemsize, normalize_dtype

__all__ = ["infer", "Inference", "LayerRecord", "as_spec"]

_CACHE_SIZE = 64
#: guards every model's inference cache (``Module._infer_cache``): its keys hold
#: specs, which compare with Python code, during which another thread must not
#: change the dict
_CACHE_LOCK = threading.Lock()

#: what the pass records per node: (layer, path, param path, input specs, output
#: specs, local params)
_Raw = tuple[Layer, str, str, tuple[TensorSpec, ...], tuple[TensorSpec, ...],
             dict[str, ParamSpec]]


class LayerRecord:
    """The resolution record of one node: everything the pass found for it,
    kept once and read by everything downstream (``repr``, summaries,
    placeholders, checkpoint checks, each backend's native modules).

    - ``path`` (``"encoder.fc"``; the k-th call of a shared layer is
      ``fc@k``), ``kind``, ``layer``;
    - ``param_path``: where its parameters live, the path of the layer's
      first call; ``prefix`` is ``param_path + "."`` (``""`` at the root; the
      path itself for a `Layer.bare_param` layer), so a parameter's canonical
      name is ``prefix + local name``;
    - ``shared``: True for the second and later calls of a layer;
    - ``inputs``, ``outputs``: `TensorSpec`s;
    - ``params``: ``{local name: ParamSpec}`` (``weight``, ``out_proj.bias``),
      every dtype filled in;
    - ``resolved``: the layer's hyperparameters with the sizes inferred from
      the inputs filled in (``{"in_features": 20, "out_features": 256,
      "bias": True}``), asked of the layer (`Layer.resolved`) once.
    """

    __slots__ = (
        "path", "kind", "layer", "inputs", "outputs", "params", "param_path", "prefix", "shared",
        "_resolved",
    )

    def __init__(
        self,
        layer: Layer,
        path: str,
        param_path: str,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        params: dict[str, ParamSpec],
        resolved: dict[str, Any] | None = None,
    ) -> None:  # built lazily from the pass's raw tuples (see Inference.layers)
        self.path = path
        self.kind = layer.kind
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        self.params = params
        self.param_path = param_path
        self.prefix = param_prefix(layer, param_path)
        self.shared = path != param_path
        self._resolved = resolved

    @property
    def resolved(self) -> dict[str, Any]:
        """The hyperparameters with inferred sizes filled in (`Layer.resolved`)."""
        hp = self._resolved
        if hp is None:
            hp = self._resolved = self.layer.resolved(*self.inputs)
        return hp

    @property
    def num_params(self) -> Dim:
        """Elements in this node's own parameters (0 for a shared call)."""
        if self.shared:
            return 0
        total: Dim = 0
        for p in self.params.values():
            total = total + prod(p.shape)
        return total

    def __repr__(self) -> str:
        outs = ", ".join(format_shape(o.shape) for o in self.outputs)
        return f"LayerRecord({self.path!r}, {self.kind}, -> {outs})"


class Inference:
    """The frozen result of `infer`.

    - ``outputs`` / ``output``: output `TensorSpec`s;
    - ``layers``: one `LayerRecord` per node, in execution order (the order
      of the flat program every backend runs);
    - ``params``: ``{"0.weight": ParamSpec, ...}`` (canonical names);
    - ``num_params``, ``num_bytes``: ints, or expressions over symbols;
    - ``unresolved``: ``{name: symbols}`` for parameters whose shape has symbols;
    - ``assumptions``: ``(path, a, b)`` for symbolic dims assumed equal where
      branches meet;
    - ``bounds``: ``(path, a, op, b)`` for what the rules assumed of symbolic
      sizes they could not decide (``op`` ``">="`` or ``"<="``: an output of at
      least 1, ``T <= max_len``);
    - ``valid_ranges``: ``{"H": (16, None)}``, the range of each input symbol
      in which those hold; ``conditions``: what is not a range, as text.
    """

    def __init__(
        self,
        model: Layer,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        raw: list[_Raw],
        assumptions: tuple[tuple[str, Dim, Dim], ...],
        dtype: str,
        bounds: tuple[tuple[str, Dim, str, Dim], ...] = (),
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.outputs = outputs
        self._raw = raw
        self._layers: tuple[LayerRecord, ...] | None = None
        self._params: dict[str, ParamSpec] | None = None
        self.assumptions = assumptions
        self.bounds = bounds
        self.dtype = dtype
        self._ranges: tuple[dict[str, tuple[int, int | None]], tuple[str, ...]] | None = None

    @property
    def layers(self) -> tuple[LayerRecord, ...]:
        """One `LayerRecord` per node, in execution order."""
        if self._layers is None:
            fill = self._with_dtype
            self._layers = tuple(
                LayerRecord(layer, path, param_path, ins, outs,
                            {k: fill(p) for k, p in local.items()})
                for layer, path, param_path, ins, outs, local in self._raw
            )
        return self._layers

    @property
    def params(self) -> dict[str, ParamSpec]:
        """``{canonical name: ParamSpec}``, every dtype filled in: each node's
        parameters under its first call's path (``"encoder.fc" + ".weight"``)."""
        params = self._params
        if params is None:
            fill = self._with_dtype
            params = {}
            for layer, path, param_path, _, _, local in self._raw:
                if local and path is param_path:  # not a later call of a shared layer
                    prefix = param_prefix(layer, param_path)
                    for k, p in local.items():
                        params[prefix + k] = fill(p)
            self._params = params
        return params

    def _with_dtype(self, p: ParamSpec) -> ParamSpec:
        if p.dtype is not None:
            return p
        return ParamSpec._make(p.shape, self.dtype, p.init, p.trainable)

    @property
    def output(self) -> TensorSpec:
        """The single output spec (a `ValueError` for a multi-output model)."""
        if len(self.outputs) != 1:
            raise ValueError(f"the model has {len(self.outputs)} outputs; use .outputs")
        return self.outputs[0]

    @property
    def num_params(self) -> Dim:
        """Total parameter elements (buffers excluded)."""
        total: Dim = 0
        for p in self.params.values():
            if p.trainable:
                total = total + prod(p.shape)
        return total

    @property
    def num_buffers(self) -> Dim:
        """Total buffer elements (non-trainable state, e.g. running statistics)."""
        total: Dim = 0
        for p in self.params.values():
            if not p.trainable:
                total = total + prod(p.shape)
        return total

    @property
    def num_bytes(self) -> Dim:
        """Bytes of all parameters and buffers."""
        total: Dim = 0
        for p in self.params.values():
            total = total + prod(p.shape) * itemsize(p.dtype or self.dtype)
        return total

    @property
    def unresolved(self) -> dict[str, frozenset[str]]:
        """Parameters whose shape still has symbols, with the input symbols each
        needs; an anonymous (``None``) input dim is named by its place,
        ``input0.shape[1]``."""
        if all(type(d) is int for s in self.inputs for d in s.shape):
            return {}  # (parameter shapes are functions of the input dims)
        places: dict[str, str] = {}
        for i, s in enumerate(self.inputs):
            for k, d in enumerate(s.shape):
                if isinstance(d, Sym) and d.name.startswith("?"):
                    places.setdefault(d.name, f"input{i}.shape[{k}]")
        return {
            name: frozenset(places.get(sym, sym) for sym in p.symbols)
            for name, p in self.params.items()
            if p.is_symbolic
        }

    def _symbol_names(self) -> dict[str, str]:
        """``{symbol: name}`` of the input symbols, in order: a named symbol is its
        name, an anonymous (``None``) dim is named by its place, ``input0.shape[1]``."""
        names: dict[str, str] = {}
        for i, s in enumerate(self.inputs):
            for k, d in enumerate(s.shape):
                if type(d) is int:
                    continue
                for sym in sorted(free_symbols(d)):
                    names.setdefault(sym, f"input{i}.shape[{k}]" if sym.startswith("?") else sym)
        return names

    @property
    def valid_ranges(self) -> dict[str, tuple[int, int | None]]:
        """``{symbol: (lowest, highest)}`` (inclusive; None: unbounded) for every
        input symbol: the sizes for which this inference holds, derived from
        what the rules had to assume (`bounds`): two unpadded 5x5 convolutions
        and two 2x2 poolings need ``H >= 16``, a 1024-position embedding
        ``T <= 1024``. Outside, the same model raises `ShapeError` (or, where a
        rule could not tell, its framework fails). A symbol's range is at least
        ``(1, None)``; what involves several symbols is in `conditions`."""
        return self._solve_ranges()[0]

    @property
    def conditions(self) -> tuple[str, ...]:
        """What must also hold and is not a range of one symbol, as text: the
        equalities the rules assumed (``input0.shape[1] % 2 == 0 (at '0')``,
        ``C == D (at 'add')``) and bounds on several symbols."""
        return self._solve_ranges()[1]

    def _solve_ranges(self) -> tuple[dict[str, tuple[int, int | None]], tuple[str, ...]]:
        if self._ranges is not None:
            return self._ranges
        names = self._symbol_names()
        ranges: dict[str, tuple[int, int | None]] = {n: (1, None) for n in names.values()}
        conditions: list[str] = []

        # anonymous dims print as `?`: name them by their place (through stand-in
        # symbols, replaced in the text)
        stand_in = {sym: Sym(f"anonymous{k}__") for k, sym in enumerate(names)
                    if sym.startswith("?")}

        def text(d: Dim) -> str:
            if not stand_in or not free_symbols(d) & stand_in.keys():
                return format_dim(d)
            out = format_dim(bind(d, stand_in))
            for sym, tmp in stand_in.items():
                out = out.replace(tmp.name, names[sym])
            return out

        for path, a, op, b in self.bounds:
            syms = free_symbols(a) | free_symbols(b)
            if len(syms) == 1 and (sym := next(iter(syms))) in names:
                lo, hi = ranges[names[sym]]
                got = _symbol_range(a, op, b, sym, lo, hi)
                if got is not None:
                    ranges[names[sym]] = got
                    continue
            conditions.append(f"{text(a)} {op} {text(b)} (at '{path}')")
        for path, a, b in self.assumptions:
            conditions.append(f"{text(a)} == {text(b)} (at '{path}')")
        self._ranges = (ranges, tuple(dict.fromkeys(conditions)))
        return self._ranges

    def layer(self, path: str) -> LayerRecord:
        """The record of the node at ``path``."""
        for rec in self.layers:
            if rec.path == path:
                return rec
        raise KeyError(path)

    def bind(self, **values: int) -> Inference:
        """Re-infer with the input symbols bound to values: ``inf.bind(B=8, H=32)``.

        Binding then inferring equals inferring then binding."""
        specs = tuple(
            TensorSpec._make(bind_shape(s.shape, values), s.dtype) for s in self.inputs
        )
        return infer(self.model, *specs, dtype=self.dtype)

    def __repr__(self) -> str:
        outs = ", ".join(format_shape(o.shape) for o in self.outputs)
        return (
            f"Inference({len(self.layers)} layers, outputs {outs}, "
            f"{format_dim(self.num_params)} params)"
        )


def as_spec(x: Any, dtype: str = "float32") -> TensorSpec:
    """A `TensorSpec` from a shape tuple, a spec, or an array of any backend (only
    its ``.shape`` and ``.dtype`` are read)."""
    if type(x) is TensorSpec:
        return x
    if isinstance(x, (tuple, list)):
        return TensorSpec._make(as_shape(x), dtype)
    shape = getattr(x, "shape", None)
    if shape is not None and hasattr(x, "dtype"):
        return TensorSpec._make(tuple(int(d) for d in shape), normalize_dtype(x.dtype))
    raise TypeError(
        f"an input is a shape tuple, a TensorSpec or an array; got {type(x).__name__}"
    )


def _merge_declared(declared: TensorSpec, given: TensorSpec, i: int,
                    env: dict[str, Dim]) -> TensorSpec:
    if declared.ndim != given.ndim:
        raise ShapeError(
            f"input {i} of shape {format_shape(declared.shape)} (rank {declared.ndim})",
            f"shape {format_shape(given.shape)}",
            kind="Input",
            path=f"input{i}",
        )
    out: list[Dim] = []
    for k, (d, g) in enumerate(zip(declared.shape, given.shape, strict=True)):
        if type(d) is int:
            if eq(d, g) is False:
                raise ShapeError(
                    f"input {i} of shape {format_shape(declared.shape)} (dim {k} = {d})",
                    f"shape {format_shape(given.shape)}",
                    kind="Input",
                    path=f"input{i}",
                )
            out.append(d)
            continue
        if isinstance(d, Sym) and d.name is not None and not d.name.startswith("?"):
            prev = env.setdefault(d.name, g)
            if prev is not g and eq(prev, g) is False:
                raise ShapeError(
                    f"every dim named {d.name} to be equal",
                    f"{format_dim(prev)} and {format_dim(g)} (input {i}, dim {k})",
                    kind="Input",
                    path=f"input{i}",
                )
        out.append(g)
    return TensorSpec._make(tuple(out), given.dtype)


def _input_spec(x: Any, dtype: str, i: int) -> TensorSpec:
    """`as_spec`, with a bad dim in a shape tuple (negative, not an int or a
    symbol name) reported as a `ShapeError` naming the input."""
    try:
        spec = as_spec(x, dtype)
        for d in spec.shape:  # an expression negative whatever its symbols (-B)
            if type(d) is not int and type(d) is not Sym and bounds(d)[1] < 0:
                raise ValueError(f"dims must be non-negative, got {format_dim(d)}")
        return spec
    except (ValueError, TypeError) as e:
        if not isinstance(x, (tuple, list)):
            raise
        raise ShapeError(
            "an input shape of non-negative ints, symbol names or None",
            f"shape {tuple(x)!r} ({e})",
            kind="Input",
            path=f"input{i}",
        ) from e


def _input_dtype(model: Layer, i: int, dtype: str) -> str:
    """What a bare shape tuple for input ``i`` means: the ``input_dtype`` of the
    first layer reading it, a floating one meaning the model's ``dtype`` (int64
    for an `Embedding`; `shape_input_dtype`)."""
    reader = first_reader(model, i)
    if reader is None:  # not plain from the structure: ask the compiled program
        program = program_of(model, i + 1)
        reader = next((n.layer for n in program.nodes if i in n.ins), None)
    return dtype if reader is None else shape_input_dtype(reader, dtype)


def _n_inputs(model: Layer, inputs: tuple[Any, ...]) -> tuple[int, tuple[TensorSpec, ...] | None]:
    """How many inputs ``model`` takes with these, and its declared input specs."""
    declared = model._declared() if isinstance(model, Module) else None
    return (len(inputs) if declared is None else len(declared)), declared


def _inputs(model: Layer, inputs: tuple[Any, ...], dtype: str) -> tuple[TensorSpec, ...]:
    n, declared = _n_inputs(model, inputs)
    if not inputs:
        if declared is None:
            raise TypeError(f"infer({model.kind}) needs input shapes, specs or arrays")
        return declared
    if len(inputs) != n:
        raise ShapeError(f"{n} input(s)", f"{len(inputs)}", kind=model.kind, path="")
    if len(inputs) == 1:
        x = inputs[0]
        bare = dtype if type(x) is TensorSpec else _input_dtype(model, 0, dtype)
        specs: tuple[TensorSpec, ...] = (_input_spec(x, bare, 0),)
    else:
        specs = tuple([
            _input_spec(x, _input_dtype(model, i, dtype), i) for i, x in enumerate(inputs)
        ])
    if declared is None:
        return specs
    env: dict[str, Dim] = {}
    return tuple(
        _merge_declared(d, g, i, env) for i, (d, g) in enumerate(zip(declared, specs, strict=True))
    )


def _check_batch_independence(
    inputs: tuple[TensorSpec, ...], raw: list[_Raw], batch_dim: int
) -> None:
    batch: set[str] = set()
    for s in inputs:
        if s.ndim > batch_dim and is_symbolic(s.shape[batch_dim]):
            batch |= free_symbols(s.shape[batch_dim])
    if not batch:
        return
    for layer, path, _, ins, _, local in raw:
        for name, p in local.items():
            for d in p.shape:
                if type(d) is not int:
                    break
            else:
                continue  # all-int shape: the common case, no symbol to look at
            if not p.symbols & batch:
                continue
            raise ShapeError(
                "parameter shapes that do not depend on the batch dim",
                f"`{name}` of shape {format_shape(p.shape)} from input shapes "
                + ", ".join(format_shape(s.shape) for s in ins),
                kind=layer.kind,
                path=path,
            )


class _Pass:
    """The propagation pass, run as the model's structure is walked.

    It has the interface of the program compiler (`_graph._Builder.add`), so
    `_graph.trace` walks the model's structure with it: where the compiler
    hands out value slots, the pass hands out the specs themselves and runs
    each primitive layer's rules (`resolve_node`) as it is reached. Shape
    inference therefore builds no program; paths, shared-layer ownership and
    parameter names come out exactly as the compiled program's
    (`tests/test_graph.py` checks it).

    Everything the pass needs travels with it: the model's dtype, and the log
    its rules report assumptions to (bound to `ASSUMED` for the run).
    """

    __slots__ = ("owners", "raw", "assumptions", "bounds", "dtype", "log")
    inline = True  # walks into every container (see `_graph.trace`)

    def __init__(self, dtype: str) -> None:
        #: the model's dtype: the parameters' that `ParamSpec.dtype` None leaves to it
        self.dtype = dtype
        #: layer -> (path, parameter specs) of its first call
        self.owners: dict[Layer, tuple[str, dict[str, ParamSpec]]] = {}
        self.raw: list[_Raw] = []
        #: what the rules of the node running now assumed (drained after each node)
        self.log: list[Assumed] = []
        self.assumptions: list[tuple[str, Dim, Dim]] = []
        self.bounds: list[tuple[str, Dim, str, Dim]] = []

    def add(
        self, layer: Layer, ins: tuple[TensorSpec, ...], path: str
    ) -> tuple[TensorSpec, ...]:
        """Run ``layer`` (a container: trace it) on ``ins``; its output specs.

        Records the call; its parameters get their canonical names only when
        `Inference.params` is first read."""
        outs, local = resolve_node(layer, ins, path, self.dtype)
        log = self.log
        if log:
            self._drain(path)
        if local:
            dtype = self.dtype  # floating inputs must have the parameters' dtype
            if ins[0].dtype != dtype or len(ins) > 1:
                check_param_dtype(layer, ins, local, dtype, path)
        # the layer's first call (layers hash by identity): a later call of a shared
        # layer gets that call's parameters
        owner = self.owners.setdefault(layer, (path, local))
        param_path = owner[0]
        if param_path is not path and local:
            _check_shared(layer, path, param_path, owner[1], local)
        self.raw.append((layer, path, param_path, ins, outs, local))
        return outs

    def _drain(self, path: str) -> None:
        """File what the node at ``path`` assumed: equalities and bounds."""
        for op, a, b in self.log:
            if op == "==":
                self.assumptions.append((path, a, b))
            else:
                self.bounds.append((path, a, op, b))
        self.log.clear()

    def run(self, model: Layer, specs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        """The model's output specs (a single layer's parameters get no prefix)."""
        token = ASSUMED.set(self.log)  # (a plain set/reset: cheaper than a `with` block)
        try:
            if isinstance(model, Module):
                return trace(model, self, specs, "")
            return self.add(model, specs, model.name or "")
        finally:
            ASSUMED.reset(token)


def _symbol_range(
    a: Dim, op: str, b: Dim, sym: str, lo: int, hi: int | None
) -> tuple[int, int | None] | None:
    """``(lo, hi)`` narrowed to the values of ``sym`` for which ``a op b`` holds
    (``op`` ``">="`` or ``"<="``; ``a``, ``b`` over ``sym`` alone), found by
    bisection: a rule's sizes grow or shrink with the input size, so the values
    that hold form one run, starting at the lowest one or ending at the highest.
    None when they don't (the caller keeps it as a condition)."""
    top = 2**62

    def holds(v: int) -> bool:
        x, y = bind(a, {sym: v}), bind(b, {sym: v})
        return bool(x >= y) if op == ">=" else bool(x <= y)

    first, last = lo, top if hi is None else hi
    at_first, at_last = holds(first), holds(last)
    if at_first and at_last:
        return lo, hi
    if not at_first and not at_last:
        return None  # nowhere in the range (or not one run): a condition
    left, right = first, last  # bisect for the boundary between the two runs
    while right - left > 1:
        mid = (left + right) // 2
        if holds(mid) == at_first:
            left = mid
        else:
            right = mid
    if at_first:  # holds up to `left`
        return lo, left
    return right, hi  # holds from `right` on


def _check_shared(layer: Layer, path: str, param_path: str, first: dict[str, ParamSpec],
                  local: dict[str, ParamSpec]) -> None:
    prefix = param_prefix(layer, param_path)
    for k, spec in local.items():
        was = first.get(k)
        if was is None or was.shape != spec.shape or was.dtype != spec.dtype:
            had = "no such parameter" if was is None else format_shape(was.shape)
            raise ShapeError(
                f"the same parameter shapes at every call of a shared layer "
                f"(first called at '{param_path}')",
                f"`{prefix + k}` {format_shape(spec.shape)} here, {had} at the first call",
                kind=layer.kind,
                path=path,
            )


def infer(
    model: Layer,
    *inputs: Any,
    dtype: Any = "float32",
    batch_dim: int | None = 0,
) -> Inference:
    """Resolve every shape of ``model`` from its inputs, allocating nothing.

    Each input is a shape tuple (``("B", 20)``, ``(2, 20)``, with ``None`` for
    unknown dims), a `TensorSpec`, or an array of any backend (only its shape and
    dtype are read). A functional `Model` may be called with no inputs: its
    `Input` specs are used. ``dtype`` is the parameters' dtype where the layer
    leaves it to the model. When the ``batch_dim`` of the inputs is symbolic,
    a parameter whose shape depends on it is a `ShapeError` at that layer.

    Raises `ShapeError` naming the layer path for any shape problem.
    """
    dtype = normalize_dtype(dtype)
    specs = _inputs(model, inputs, dtype)
    cache = model._infer_cache if isinstance(model, Module) else None
    key = (specs, dtype, batch_dim)
    if cache is not None:
        with _CACHE_LOCK:
            hit = cache.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
    run = _Pass(dtype)
    outputs = run.run(model, specs)
    if batch_dim is not None:
        _check_batch_independence(specs, run.raw, batch_dim)
    result = Inference(model, specs, outputs, run.raw, tuple(run.assumptions), dtype,
                       tuple(run.bounds))
    if cache is not None:
        with _CACHE_LOCK:
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))  # the oldest entry
            cache[key] = result
    return result
