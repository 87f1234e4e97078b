"""The propagation pass: `infer` resolves every tensor and parameter spec of a
model from input specs, touching no backend and allocating nothing.

One pass over the flat program, linear in the number of nodes. When every dim
is an int the rules do plain integer arithmetic; symbolic dims flow through the
same code as expressions.
"""

from __future__ import annotations

from typing import Any

from ._dims import (
    Dim,
    Sym,
    bind_shape,
    eq,
    format_dim,
    format_shape,
    free_symbols,
    is_symbolic,
    prod,
)
from ._errors import ShapeError
from ._graph import Module, PNode, Program, program_of
from ._layer import Layer, check_outputs, rule_error
from ._specs import ParamSpec, TensorSpec, as_shape, itemsize, normalize_dtype
from .rules._common import ASSUMPTIONS

__all__ = ["infer", "Inference", "LayerRecord", "as_spec"]

_CACHE_SIZE = 64
_NO_PARAMS: dict[str, ParamSpec] = {}  # shared, never mutated

#: what the pass records per node: (node, input spec(s), output spec(s), local
#: params); a single input / output is kept bare (see `_record_specs`)
_Raw = tuple[PNode, Any, Any, dict[str, ParamSpec]]


class LayerRecord:
    """What the pass found for one node: its path, kind, layer, input and output
    specs, and its parameter specs (local names: ``weight``, ``bias``)."""

    __slots__ = ("path", "kind", "layer", "inputs", "outputs", "params", "param_path")

    def __init__(
        self,
        node: PNode,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        params: dict[str, ParamSpec],
    ) -> None:  # built lazily from the pass's raw tuples (see Inference.layers)
        self.path = node.path
        self.kind = node.layer.kind
        self.layer = node.layer
        self.inputs = inputs
        self.outputs = outputs
        self.params = params
        self.param_path = node.param_path

    @property
    def num_params(self) -> Dim:
        """Elements in this node's own parameters (0 for a shared call)."""
        if self.path != self.param_path:
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
    - ``layers``: one `LayerRecord` per node, in execution order;
    - ``params``: ``{"0.weight": ParamSpec, ...}`` (canonical names);
    - ``num_params``, ``num_bytes``: ints, or expressions over symbols;
    - ``unresolved``: ``{name: symbols}`` for parameters whose shape has symbols;
    - ``assumptions``: ``(path, a, b)`` for symbolic dims assumed equal where
      branches meet.
    """

    def __init__(
        self,
        model: Layer,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        raw: list[_Raw],
        params: dict[str, ParamSpec],
        assumptions: tuple[tuple[str, Dim, Dim], ...],
        dtype: str,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.outputs = outputs
        self._raw = raw
        self._layers: tuple[LayerRecord, ...] | None = None
        self._params = params
        self._filled = False
        self.assumptions = assumptions
        self.dtype = dtype

    @property
    def layers(self) -> tuple[LayerRecord, ...]:
        """One `LayerRecord` per node, in execution order."""
        if self._layers is None:
            fill = self._with_dtype
            self._layers = tuple(
                LayerRecord(
                    node, *_record_specs(node, x, out), {k: fill(p) for k, p in local.items()}
                )
                for node, x, out, local in self._raw
            )
        return self._layers

    @property
    def params(self) -> dict[str, ParamSpec]:
        """``{canonical name: ParamSpec}``, every dtype filled in."""
        if not self._filled:
            fill = self._with_dtype
            self._params = {k: fill(p) for k, p in self._params.items()}
            self._filled = True
        return self._params

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
        return as_spec(x, dtype)
    except (ValueError, TypeError) as e:
        if not isinstance(x, (tuple, list)):
            raise
        raise ShapeError(
            "an input shape of non-negative ints, symbol names or None",
            f"shape {tuple(x)!r} ({e})",
            kind="Input",
            path=f"input{i}",
        ) from e


def _input_dtype(program: Program, slot: int) -> str:
    """What a bare shape tuple for input ``slot`` means: the ``input_dtype`` of
    the first layer reading it (float32 for most; int64 for an `Embedding`)."""
    for node in program.nodes:
        if slot in node.ins:
            return node.layer.input_dtype
    return "float32"


def _inputs(program: Program, inputs: tuple[Any, ...], model: Layer) -> tuple[TensorSpec, ...]:
    declared = program.declared
    if not inputs:
        if declared is None:
            raise TypeError(f"infer({model.kind}) needs input shapes, specs or arrays")
        return declared
    if len(inputs) != program.n_inputs:
        raise ShapeError(
            f"{program.n_inputs} input(s)", f"{len(inputs)}", kind=model.kind, path=""
        )
    specs = tuple(_input_spec(x, _input_dtype(program, i), i) for i, x in enumerate(inputs))
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
    for node, x, _, local in raw:
        for name, p in local.items():
            for d in p.shape:
                if type(d) is not int:
                    break
            else:
                continue  # all-int shape: the common case, no symbol to look at
            if not p.symbols & batch:
                continue
            in_specs = (x,) if node.in0 >= 0 else x
            raise ShapeError(
                "parameter shapes that do not depend on the batch dim",
                f"`{name}` of shape {format_shape(p.shape)} from input shapes "
                + ", ".join(format_shape(s.shape) for s in in_specs),
                kind=node.layer.kind,
                path=node.path,
            )


def _propagate(
    program: Program, specs: tuple[TensorSpec, ...], dtype: str
) -> tuple[tuple[TensorSpec, ...], list[_Raw], dict[str, ParamSpec], list[Any]]:
    # The hot loop: plain tuples, no per-node objects beyond what rules return.
    # A single-input, single-output node (most of them) skips tuple building:
    # its raw record holds the bare specs, normalized lazily by `Inference.layers`.
    vals: list[Any] = [None] * program.n_slots
    vals[: len(specs)] = specs
    raw: list[_Raw] = []
    append = raw.append
    params: dict[str, ParamSpec] = {}
    assumptions: list[Any] = []
    log = ASSUMPTIONS
    log.clear()
    spec_type = TensorSpec
    no_params = _NO_PARAMS
    for node in program.nodes:
        layer = node.layer
        in0 = node.in0
        try:
            if in0 >= 0:
                x = vals[in0]
                out = layer.output_spec(x)
                local = layer.param_specs(x) if node.has_params else no_params
            else:
                x = tuple([vals[i] for i in node.ins])
                out = layer.output_spec(*x)
                local = layer.param_specs(*x) if node.has_params else no_params
        except Exception as e:  # every failure of a rule names the layer
            ins = (x,) if in0 >= 0 else x
            raise rule_error(layer, ins, node.path, e) from e
        if type(out) is spec_type and node.out0 >= 0:
            vals[node.out0] = out
        else:
            out = check_outputs(layer, out, node.path)
            for slot, o in zip(node.outs, out, strict=True):
                vals[slot] = o
        if log:
            assumptions.extend((node.path, a, b) for a, b in log)
            log.clear()
        if local:
            # dtype=None (the model's dtype) is filled in lazily by Inference
            prefix = node.prefix
            for k, spec in local.items():
                if node.shared:
                    _check_shared(node, prefix + k, params.get(prefix + k), spec)
                else:
                    params[prefix + k] = spec
        append((node, x, out, local))
    return tuple(vals[i] for i in program.outputs), raw, params, assumptions


def _record_specs(node: PNode, x: Any, out: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The (inputs, outputs) spec tuples of a raw record."""
    ins = (x,) if node.in0 >= 0 else x
    outs = (out,) if type(out) is TensorSpec else out
    return ins, outs


def _check_shared(node: PNode, name: str, first: ParamSpec | None, spec: ParamSpec) -> None:
    if first is None or first.shape != spec.shape or first.dtype != spec.dtype:
        was = "no such parameter" if first is None else format_shape(first.shape)
        raise ShapeError(
            f"the same parameter shapes at every call of a shared layer "
            f"(first called at '{node.param_path}')",
            f"`{name}` {format_shape(spec.shape)} here, {was} at the first call",
            kind=node.layer.kind,
            path=node.path,
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
    program = program_of(model, len(inputs) or 1)
    specs = _inputs(program, inputs, model)
    cache = model._infer_cache if isinstance(model, Module) else None
    key = (specs, dtype, batch_dim)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
    outputs, raw, params, assumptions = _propagate(program, specs, dtype)
    if batch_dim is not None:
        _check_batch_independence(specs, raw, batch_dim)
    result = Inference(model, specs, outputs, raw, params, tuple(assumptions), dtype)
    if cache is not None:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = result
    return result
