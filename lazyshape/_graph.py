"""Models: `Sequential`, the functional API (`Input`, `Model`), and the flat
program both compile to.

Every model compiles to a `Program`: a topologically ordered tuple of nodes,
each a primitive layer reading and writing numbered value slots. Nested models
are inlined, their children's paths prefixed (``encoder.block1.fc``). The
propagation pass and every backend's forward walk this one flat list.
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from ._layer import Layer, SymbolicTensor, _Call, format_hparam, param_prefix, resolve_node
from ._specs import ParamSpec, TensorSpec

__all__ = ["Module", "Sequential", "Model", "Input", "Program", "PNode", "program_of",
           "first_reader", "trace"]


class PNode:
    """One call of a primitive layer in a program."""

    __slots__ = (
        "layer", "path", "param_path", "prefix", "ins", "outs", "shared", "in0", "out0",
    )

    def __init__(
        self,
        layer: Layer,
        path: str,
        param_path: str,
        ins: tuple[int, ...],
        outs: tuple[int, ...],
        shared: bool,
    ) -> None:
        self.layer = layer
        #: where this call sits (``"0"``, ``"encoder.fc"``, ``"fc@1"`` for a 2nd call)
        self.path = path
        #: the prefix of the layer's parameters (the path of its first call)
        self.param_path = param_path
        self.ins = ins
        self.outs = outs
        #: True for the second and later calls of a layer (parameters shared)
        self.shared = shared
        #: ``param_path + "."`` (or ``""``): canonical name = prefix + local name
        #: (see `param_prefix`)
        self.prefix = param_prefix(layer, param_path)
        # single-input / single-output slots (-1 otherwise): the pass's fast path
        self.in0 = ins[0] if len(ins) == 1 else -1
        self.out0 = outs[0] if len(outs) == 1 else -1


class Program:
    """A model compiled to a flat, topologically ordered list of nodes."""

    __slots__ = ("n_inputs", "nodes", "outputs", "n_slots", "declared")

    def __init__(
        self,
        n_inputs: int,
        nodes: tuple[PNode, ...],
        outputs: tuple[int, ...],
        n_slots: int,
        declared: tuple[TensorSpec, ...] | None,
    ) -> None:
        self.n_inputs = n_inputs
        self.nodes = nodes
        self.outputs = outputs
        self.n_slots = n_slots
        #: the specs of a functional model's `Input`s (None for a Sequential)
        self.declared = declared


class Tracer(Protocol):
    """What `trace` walks a model's structure with: the program compiler
    (`_Builder`, values are slot numbers), the propagation pass
    (`lazyshape._propagate._Pass`, values are specs) or `_SpecTracer`.

    Two optional class attributes say how it takes nested containers:
    ``opaque = True``, as calls of their own (``add`` gets the container);
    ``inline = True``, walked into everywhere (what the compiler and the pass
    do; containers of primitives then cost less). Neither: walked into, through
    `trace`'s stack."""

    def add(self, layer: Layer, ins: tuple[Any, ...], path: str) -> tuple[Any, ...]:
        """Add a call of the primitive ``layer`` (not a container: `trace` walks
        into those) on values ``ins`` at ``path``; its output values.

        Paths are unique by construction: a container's child names are unique
        and free of ``.`` and ``@``, and a functional model names the ``k``-th
        call of a layer ``name@k``."""
        ...


class _Builder:
    __slots__ = ("nodes", "n_slots", "owners")
    inline = True

    def __init__(self) -> None:
        self.nodes: list[PNode] = []
        self.n_slots = 0
        #: id(layer) -> the path of its first call (where its parameters live)
        self.owners: dict[int, str] = {}

    def slots(self, n: int) -> tuple[int, ...]:
        start = self.n_slots
        self.n_slots += n
        return tuple(range(start, start + n))

    def add(self, layer: Layer, ins: tuple[int, ...], path: str) -> tuple[int, ...]:
        # the model holds every layer while it compiles, so ids are not reused
        param_path = self.owners.setdefault(id(layer), path)
        n = layer.num_outputs
        start = self.n_slots
        self.n_slots = start + n
        outs = (start,) if n == 1 else tuple(range(start, start + n))
        self.nodes.append(PNode(layer, path, param_path, ins, outs, param_path is not path))
        return outs


class _SpecTracer:
    """Traces a module on specs, running each child's rules (what
    `Module.output_spec` / `param_specs` need when a module is called on
    symbolic tensors; the propagation pass does the same, recording more).

    Nested containers are resolved by their own rules (``opaque``), whose
    results each container keeps: defining a model of ``n`` nested levels
    costs ``n`` walks of one level, not ``n**2 / 2``."""

    __slots__ = ("params", "owners")
    opaque = True

    def __init__(self) -> None:
        self.params: dict[str, ParamSpec] = {}
        self.owners: set[int] = set()

    def add(self, layer: Layer, ins: tuple[TensorSpec, ...], path: str) -> tuple[TensorSpec, ...]:
        outs, local = resolve_node(layer, ins, path)
        if id(layer) not in self.owners:  # a shared layer's parameters: its first call's
            self.owners.add(id(layer))
            prefix = param_prefix(layer, path)
            for k, spec in local.items():
                self.params[prefix + k] = spec
        return outs


#: guards every module's `Module._resolved` cache (its keys are specs, which
#: compare with Python code: no other thread may change the dict meanwhile)
_SPEC_LOCK = threading.Lock()

#: what a container's ``_steps`` yields to `trace`: a nested container to walk,
#: its input values and its path; `trace` sends back its output values
Steps = Generator[tuple[Layer, tuple[Any, ...], str], tuple[Any, ...], tuple[Any, ...]]


def trace(model: Module, tracer: Tracer, ins: tuple[Any, ...], prefix: str) -> tuple[Any, ...]:
    """Walk ``model``'s structure with ``tracer`` from input values ``ins``; the
    output values. Each container's ``_steps`` hands its primitive children to
    ``tracer.add`` and yields its nested containers, which are walked here with
    an explicit stack: nesting depth is unlimited (no recursion)."""
    stack = [model._steps(tracer, ins, prefix)]
    sent: tuple[Any, ...] | None = None
    opaque = getattr(tracer, "opaque", False)
    while True:
        try:
            child, args, path = stack[-1].send(sent)  # type: ignore[arg-type]
        except StopIteration as done:
            stack.pop()
            if not stack:
                outs: tuple[Any, ...] = done.value
                return outs
            sent = done.value
            continue
        if opaque:  # the tracer takes the container as one layer (its own rules)
            sent = tracer.add(child, args, path)
            continue
        assert isinstance(child, Module)
        stack.append(child._steps(tracer, args, path + "."))
        sent = None


#: ``(layer, name, input number or -1, getter of input numbers, n outputs,
#: input numbers, its kind for the walk)``
_Wire = tuple[
    Layer, str, int, "Callable[[list[int]], tuple[int, ...]]", int, tuple[int, ...], str
]

# What a container's walk does with a child: add a primitive layer to the tracer
# (`_LAYER`); hand a container to `trace`, which keeps the stack (any depth).
# A tracer that walks into every container (``inline = True``: the compiler, the
# pass) gets a container of bounded nesting (`_FLAT`: its containers nest at most
# `_FLAT_DEPTH` levels, counting itself) walked by delegation instead, `yield
# from` at most that many levels deep: no exception to end it, and the depth of
# the delegation chain stays bounded (a deeper container inside is yielded up
# the chain to `trace`, whose stack takes it).
_LAYER = "layer"
_FLAT = "flat"
_NESTED = "nested"
#: how many levels of containers a `_FLAT` container's `yield from` chain may stack
#: (two generator frames each: `_inline` and the container's `_steps`)
_FLAT_DEPTH = 8


def _kind(layer: Layer) -> str:
    if not isinstance(layer, Module):
        return _LAYER
    depth = getattr(layer, "_flat_depth", None)  # (a subclass may skip Module.__init__)
    return _FLAT if depth is not None and depth <= _FLAT_DEPTH else _NESTED


def _flat_depth(kinds: Iterable[tuple[Layer, str]]) -> int:
    """How many levels of `yield from` walking a container by delegation stacks:
    1, plus the most its `_FLAT` children stack (from their ``(child, kind)``)."""
    deepest = 0
    for child, kind in kinds:
        if kind is _FLAT:
            deepest = max(deepest, child._flat_depth)  # type: ignore[attr-defined]
    return 1 + deepest


def _signature(layer: Layer) -> Any:
    """What a walk of ``layer`` depends on besides its layers' attributes: a
    primitive's class; a container's `Module._signature` (None for one that
    skipped `Module.__init__`)."""
    if isinstance(layer, Module):
        return getattr(layer, "_signature", None)
    return type(layer)


def _structure(cls: type, steps: Any, wiring: Any, children: tuple[Layer, ...]) -> Any:
    """A container's `Module._signature`: its class, its ``wiring`` (names and
    input numbers) and its ``children``'s signatures; None when the class walks
    its own way (not ``steps``) or a child has none. Equal signatures are one
    object (`_interned`), so a pass compares them with ``is``."""
    if getattr(cls, "_steps", None) is not steps:
        return None
    sigs = tuple(_signature(c) for c in children)
    if any(sig is None for sig in sigs):
        return None
    return _interned((cls, wiring, sigs))


@functools.lru_cache(maxsize=4096)
def _interned(signature: tuple[Any, ...]) -> tuple[Any, ...]:
    """The first signature equal to ``signature`` (a pure, bounded memo of an
    immutable value, as the dim algebra's: the blocks of a model, and the
    models built again and again, share one object; one evicted only costs a
    deep comparison)."""
    return signature


def _primitives(signature: Any, kinds: list[tuple[Layer, str]]) -> tuple[Layer, ...] | None:
    """`Module._primitives` of a container of ``signature`` whose children, in
    walk order, are ``kinds`` (``(child, its kind for the walk)``)."""
    if signature is None:  # (then no child container's is needed either)
        return None
    out: list[Layer] = []
    for child, kind in kinds:
        if kind is _LAYER:
            out.append(child)
        else:  # (a container with a signature: its children's are known)
            out += child._primitives  # type: ignore[attr-defined]
    return tuple(out)


def _inline(b: Tracer, enter: Any, child: Any, ins: tuple[Any, ...], prefix: str) -> Steps:
    """Walk the container ``child`` inline (by delegation) for a parent's
    `_steps`. A tracer with ``enter`` (the propagation pass) is asked first: it
    may answer for a container that repeats one walked before, and is told
    (``leave``) of each one walked."""
    if enter is None:
        outs: tuple[Any, ...] = yield from child._steps(b, ins, prefix)
        return outs
    outs, mark = enter(child, ins, prefix)
    if outs is None:  # walked, then remembered
        outs = yield from child._steps(b, ins, prefix)
        b.leave(outs, prefix, mark)
    return outs


def _getter(idx: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """``get(xs) == tuple(xs[i] for i in idx)``, as one C call."""
    if len(idx) >= 2:
        return operator.itemgetter(*idx)
    if idx:
        i = idx[0]
        return lambda xs: (xs[i],)
    return lambda xs: ()


def first_reader(model: Layer, i: int) -> Layer | None:
    """The primitive layer that first reads input ``i`` of ``model`` (in program
    order), found from the structure without compiling; None when that is not
    plain (an input passed through a container untouched, or never read)."""
    while isinstance(model, Module):
        found = model._first_reader(i)
        if found is None:
            return None
        model, i = found
    return model


def program_of(model: Layer, n_inputs: int = 1) -> Program:
    """The flat program of a model (a single layer is a one-node program whose
    parameters have no prefix)."""
    if isinstance(model, Module):
        return model.program(n_inputs)
    b = _Builder()
    ins = b.slots(n_inputs)
    outs = b.slots(model.num_outputs)
    b.nodes.append(PNode(model, model.name or "", model.name or "", ins, outs, False))
    return Program(n_inputs, tuple(b.nodes), outs, b.n_slots, None)


class Module(Layer):
    """Base class of containers (`Sequential`, `Model`): a layer made of layers.

    A module can be used wherever a layer can: nested in a `Sequential`, or
    called on symbolic tensors in a functional model.
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._programs: dict[int, Program] = {}
        #: levels of `yield from` a walk of this container by delegation stacks
        #: (None: not walked so; see `_kind`)
        self._flat_depth: int | None = None
        self._infer_cache: dict[Any, Any] = {}
        self._spec_cache: dict[
            tuple[TensorSpec, ...], tuple[tuple[TensorSpec, ...], dict[str, ParamSpec]]
        ] = {}
        #: the structure a walk follows, fixed at construction: the container's
        #: class, its children's names and wiring, and their signatures (a
        #: primitive's is its class); two containers with equal signatures walk
        #: their primitives in the same order, under the same relative paths and
        #: wired alike. None for a container whose class walks its own way.
        self._signature: Any = None
        #: the primitive layers a walk reaches, in its order (a layer called twice
        #: is listed twice), fixed with the signature; None where that is None
        self._primitives: tuple[Layer, ...] | None = None

    def program(self, n_inputs: int = 1) -> Program:
        """The compiled flat program (cached)."""
        prog = self._programs.get(n_inputs)
        if prog is None:
            b = _Builder()
            ins = b.slots(self._n_inputs(n_inputs))
            outs = trace(self, b, ins, "")
            prog = Program(len(ins), tuple(b.nodes), outs, b.n_slots, self._declared())
            self._programs[n_inputs] = prog
        return prog

    def _n_inputs(self, n: int) -> int:
        return n

    def _declared(self) -> tuple[TensorSpec, ...] | None:
        return None

    def _steps(self, b: Tracer, ins: tuple[Any, ...], prefix: str) -> Steps:
        """The structure walk `trace` drives: primitive children go to
        ``b.add``, nested containers are yielded as ``(container, ins, path)``
        and their outputs sent back; returns the module's output values."""
        raise NotImplementedError

    def _first_reader(self, i: int) -> tuple[Layer, int] | None:
        """The child that first reads input ``i``, and which of its inputs that is."""
        return None

    @property
    def num_outputs(self) -> int:  # type: ignore[override]
        """How many outputs the module returns (read from the structure: the last
        child of a chain of Sequentials, a functional model's outputs)."""
        layer: Layer = self
        while isinstance(layer, Sequential) and layer._items:
            layer = layer._items[-1][1]
        if isinstance(layer, Model):
            return len(layer.outputs)
        if isinstance(layer, Module):  # an empty Sequential passes its input through
            return len(layer.program().outputs)
        return layer.num_outputs

    def children(self) -> Iterator[tuple[str, Layer]]:
        """``(name, layer)`` for each direct child, in order."""
        raise NotImplementedError

    def output_spec(self, *inputs: TensorSpec) -> TensorSpec | tuple[TensorSpec, ...]:
        """The output spec(s) of the whole module for these input specs (its
        children's rules run in order)."""
        outs = self._resolved(inputs)[0]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def param_specs(self, *inputs: TensorSpec) -> dict[str, ParamSpec]:
        """``{name: ParamSpec}`` of every parameter of the module, named by its
        path inside the module (``"fc.weight"``)."""
        return dict(self._resolved(inputs)[1])

    def _resolved(
        self, inputs: tuple[TensorSpec, ...]
    ) -> tuple[tuple[TensorSpec, ...], dict[str, ParamSpec]]:
        """The module's output specs and parameter specs for ``inputs``, kept per
        input signature (a model is fixed once defined)."""
        cache = self._spec_cache
        with _SPEC_LOCK:
            hit = cache.get(inputs)
        if hit is None:
            tracer = _SpecTracer()
            hit = (trace(self, tracer, inputs, ""), tracer.params)
            with _SPEC_LOCK:
                if len(cache) >= 64:
                    cache.pop(next(iter(cache)))
                cache[inputs] = hit
        return hit

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        raise TypeError(f"{self.kind} runs through a backend: ls.build(model, backend)")


class Sequential(Module):
    """A chain of layers, each fed the previous one's output(s).

    ``Sequential(l0, l1, ...)`` names the children ``"0"``, ``"1"``, ... (a
    child's own ``name=`` wins); ``Sequential({"conv1": ..., "fc": ...})`` names
    them by the mapping. Index with ``net[i]``, ``net["fc"]``, ``net[1:]``.
    """

    def __init__(self, *layers: Any, name: str | None = None) -> None:
        super().__init__(name=name)
        if len(layers) == 1 and isinstance(layers[0], Mapping):
            items = list(layers[0].items())
        else:
            items = [(lay.name if isinstance(lay, Layer) and lay.name else str(i), lay)
                     for i, lay in enumerate(layers)]
        seen: set[str] = set()
        for key, lay in items:
            if not isinstance(lay, Layer):
                raise TypeError(
                    f"Sequential takes lazyshape layers, got {type(lay).__name__} at {key!r}"
                )
            if not isinstance(key, str) or not key or "." in key or "@" in key:
                raise ValueError(
                    f"a child name is a non-empty string without '.' or '@', got {key!r}"
                )
            if key in seen:
                raise ValueError(f"duplicate child name {key!r} in Sequential")
            seen.add(key)
        self._children: dict[str, Layer] = dict(items)
        self._order: list[str] = [k for k, _ in items]
        #: ``(name, child, its kind for the walk: `_LAYER`, `_FLAT` or `_NESTED`)``
        self._items = tuple((k, c, _kind(c)) for k, c in items)
        self._flat_depth = _flat_depth((c, kind) for _, c, kind in self._items)
        self._signature = _structure(type(self), Sequential._steps, tuple(self._order),
                                     tuple(c for _, c in items))
        self._primitives = _primitives(self._signature, [(c, kind) for _, c, kind in self._items])

    def children(self) -> Iterator[tuple[str, Layer]]:
        return iter(self._children.items())

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copied and pickled as the call that makes it again: its walk tells
        # children apart with `is` on names, which unpickled strings are not
        if type(self) is not Sequential:
            return super().__reduce_ex__(protocol)
        return _sequential, (dict(self._children), self.name)

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._children.values())

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._children[key]
        if isinstance(key, slice):
            return Sequential({k: self._children[k] for k in self._order[key]})
        return self._children[self._order[key]]

    def _steps(self, b: Tracer, ins: tuple[Any, ...], prefix: str) -> Steps:
        add = b.add
        enter = getattr(b, "enter", None)
        for key, child, kind in self._items:
            if kind is _LAYER:
                ins = add(child, ins, prefix + key)
            elif kind is _FLAT and getattr(b, "inline", False):
                ins = yield from _inline(b, enter, child, ins, prefix + key + ".")
            else:
                ins = yield child, ins, prefix + key
        return ins

    def _first_reader(self, i: int) -> tuple[Layer, int] | None:
        for child in self._children.values():
            return child, i  # the first child takes every input
        return None

    def default_name(self) -> str:
        return "sequential"

    def __repr__(self) -> str:
        if not self._order:
            return "Sequential()"
        lines = ["Sequential("]
        for key, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({key}): {body}")
        lines.append(")")
        return "\n".join(lines)


def Input(
    shape: Sequence[Any], dtype: Any = "float32", *, name: str | None = None
) -> SymbolicTensor:
    """A symbolic input of a functional model: ``Input(("B", 3, "H", "W"))``.

    A ``str`` dim is a named symbol, ``None`` an unknown dim."""
    spec = TensorSpec(shape, dtype)
    call = _Call(None, ())
    tensor = SymbolicTensor(call, 0, spec, input_name=name or "input")
    call.outputs = (tensor,)
    return tensor


def _as_tensors(x: Any, what: str) -> tuple[SymbolicTensor, ...]:
    items = tuple(x) if isinstance(x, (list, tuple)) else (x,)
    if not items or not all(isinstance(t, SymbolicTensor) for t in items):
        raise TypeError(f"Model {what} are symbolic tensors (from ls.Input or a layer call)")
    return items


class Model(Module):
    """A functional model: ``Model(inputs=x, outputs=y)`` over the layer calls
    that lead from the `Input` tensors ``x`` to ``y``.

    Several inputs and outputs are lists. A layer called twice shares its
    parameters. Nodes are named by their layer's ``name=``, otherwise by a
    stable generated name (``linear``, ``linear_1``, ... in graph order).
    """

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copied and pickled as the call that makes it again (its wiring holds lambdas)
        if type(self) is not Model:
            return super().__reduce_ex__(protocol)
        return _functional, (list(self._inputs), list(self._outputs), self.name)

    def __init__(self, inputs: Any, outputs: Any, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._inputs = _as_tensors(inputs, "inputs")
        self._outputs = _as_tensors(outputs, "outputs")
        for t in self._inputs:
            if t.call.layer is not None:
                raise ValueError("Model inputs must come from ls.Input")
        self._calls = self._toposort()
        self._names = self._name_layers()
        self._wiring, self._out_index, outs = self._wire()
        self._flat_depth = _flat_depth((w[0], w[6]) for w in self._wiring)
        self._signature = _structure(
            type(self), Model._steps,
            (len(self._inputs), outs, tuple((w[1], w[5], w[4]) for w in self._wiring)),
            tuple(w[0] for w in self._wiring))
        self._primitives = _primitives(self._signature, [(w[0], w[6]) for w in self._wiring])

    def _toposort(self) -> list[_Call]:
        order: list[_Call] = []
        state: dict[int, int] = {}  # 1 visiting, 2 done
        inputs = {id(t.call) for t in self._inputs}
        stack: list[tuple[_Call, bool]] = [(t.call, False) for t in reversed(self._outputs)]
        while stack:  # iterative DFS: no recursion limit for deep models
            call, expanded = stack.pop()
            key = id(call)
            if expanded:
                state[key] = 2
                order.append(call)
                continue
            if state.get(key):
                continue
            if call.layer is None:
                if key not in inputs:
                    raise ValueError(
                        f"the outputs depend on an ls.Input ({call.outputs[0].input_name!r}) "
                        "that is not among the model's inputs"
                    )
                state[key] = 2
                continue
            state[key] = 1
            stack.append((call, True))
            for t in reversed(call.inputs):
                if not state.get(id(t.call)):
                    stack.append((t.call, False))
        return order

    def _name_layers(self) -> dict[int, str]:
        names: dict[int, str] = {}
        taken: set[str] = set()
        for call in self._calls:
            lay = call.layer
            assert lay is not None
            if lay.name:
                if "." in lay.name or "@" in lay.name:
                    raise ValueError(
                        f"a layer name in a Model has no '.' or '@' (they separate paths), "
                        f"got {lay.name!r}"
                    )
                if lay.name in taken and id(lay) not in names:
                    raise ValueError(f"two different layers are named {lay.name!r}")
                names[id(lay)] = lay.name
                taken.add(lay.name)
        counts: dict[str, int] = {}
        for call in self._calls:
            lay = call.layer
            assert lay is not None
            if id(lay) in names:
                continue
            stem = lay.default_name()
            while True:
                k = counts.get(stem, 0)
                counts[stem] = k + 1
                cand = stem if k == 0 else f"{stem}_{k}"
                if cand not in taken:
                    break
            names[id(lay)] = cand
            taken.add(cand)
        return names

    def _wire(
        self,
    ) -> tuple[list[_Wire], Callable[[list[Any]], tuple[Any, ...]], tuple[int, ...]]:
        """The graph as local tensor numbers (inputs ``0..n-1``, then each call's
        outputs in call order): ``[(layer, name, input number or -1, getter of the
        input numbers, n outputs, input numbers, its kind for the walk)]``, a
        getter of the output numbers, and those numbers. `_steps` maps the
        numbers to slots by indexing a list (built once here, so tracing a fresh
        model costs no dict of tensor ids)."""
        index: dict[int, int] = {}
        for t in self._inputs:
            index[id(t)] = len(index)
        wiring: list[_Wire] = []
        calls: dict[int, int] = {}  # id(layer) -> calls so far: the k-th is `name@k`
        for call in self._calls:
            lay = call.layer
            assert lay is not None
            ins = [index[id(t)] for t in call.inputs]
            for t in call.outputs:
                index[id(t)] = len(index)
            k = calls.get(id(lay), 0)
            calls[id(lay)] = k + 1
            name = self._names[id(lay)]
            wiring.append((lay, name if k == 0 else f"{name}@{k}",
                           ins[0] if len(ins) == 1 else -1, _getter(ins), len(call.outputs),
                           tuple(ins), _kind(lay)))
        outs = [index[id(t)] for t in self._outputs]
        return wiring, _getter(outs), tuple(outs)

    def _n_inputs(self, n: int) -> int:
        return len(self._inputs)

    def _first_reader(self, i: int) -> tuple[Layer, int] | None:
        for lay, _, _, _, _, idx, _ in self._wiring:
            if i in idx:
                return lay, idx.index(i)
        return None

    def _declared(self) -> tuple[TensorSpec, ...]:
        return tuple(t.spec for t in self._inputs)

    def _steps(self, b: Tracer, ins: tuple[Any, ...], prefix: str) -> Steps:
        if len(ins) != len(self._inputs):
            raise ValueError(f"{self.kind} takes {len(self._inputs)} input(s), got {len(ins)}")
        slots = list(ins)  # local tensor number -> slot
        extend = slots.extend
        add = b.add
        inline = getattr(b, "inline", False)
        enter = getattr(b, "enter", None)
        for lay, name, i0, get, n_out, _, kind in self._wiring:
            args = (slots[i0],) if i0 >= 0 else get(slots)
            if kind is _LAYER:  # (a primitive's outputs are checked against num_outputs)
                extend(add(lay, args, prefix + name))
                continue
            if kind is _FLAT and inline:
                outs = yield from _inline(b, enter, lay, args, prefix + name + ".")
            else:
                outs = yield lay, args, prefix + name
            if len(outs) != n_out:
                raise ValueError(
                    f"{lay.kind} '{prefix + name}' returned {len(outs)} output(s) where the "
                    f"model was defined with {n_out}"
                )
            extend(outs)
        outputs: tuple[Any, ...] = self._out_index(slots)
        return outputs

    @property
    def inputs(self) -> tuple[SymbolicTensor, ...]:
        """The model's input tensors."""
        return self._inputs

    @property
    def outputs(self) -> tuple[SymbolicTensor, ...]:
        """The model's output tensors."""
        return self._outputs

    @property
    def layers(self) -> list[Layer]:
        """The distinct layers, in graph order."""
        seen: dict[int, Layer] = {}
        for call in self._calls:
            assert call.layer is not None
            seen.setdefault(id(call.layer), call.layer)
        return list(seen.values())

    def children(self) -> Iterator[tuple[str, Layer]]:
        return ((self._names[id(lay)], lay) for lay in self.layers)

    def __getitem__(self, name: str) -> Layer:
        for key, lay in self.children():
            if key == name:
                return lay
        raise KeyError(name)

    def default_name(self) -> str:
        return "model"

    def __repr__(self) -> str:
        ins = ", ".join(format_hparam(t.shape) for t in self._inputs)
        lines = [f"Model(inputs=[{ins}]"]
        for key, lay in self.children():
            lines.append(f"  ({key}): " + repr(lay).replace("\n", "\n  "))
        lines.append(")")
        return "\n".join(lines)


def _sequential(children: dict[str, Layer], name: str | None) -> Sequential:
    """``Sequential(children, name=name)``: how a copy or an unpickled one is made."""
    return Sequential(children, name=name)


def _functional(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor],
                name: str | None) -> Model:
    """``Model(inputs, outputs, name=name)``: how a copy or an unpickled one is made."""
    return Model(inputs, outputs, name=name)
