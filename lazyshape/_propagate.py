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

import copy
import itertools
import threading
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from ._cost import Cost, nbytes, shape_bytes
from ._dims import (
    Dim,
    Sym,
    bind,
    bind_shape,
    bounds,
    dim_max,
    dim_sum,
    eq,
    format_dim,
    format_shape,
    free_symbols,
    ge,
    is_symbolic,
    prod,
    weighted_sum,
)
from ._errors import ShapeError
from ._graph import Module, Program, first_reader, program_of, trace
from ._layer import (
    ASSUMED,
    Assumed,
    Layer,
    check_param_dtype,
    param_prefix,
    resolve_node,
    shape_input_dtype,
)
from ._partition import Partition, ShardSpec, shard_params
from ._specs import _DTYPES as _ITEMSIZE
from ._specs import FLOATING, ParamSpec, TensorSpec, as_shape, itemsize, normalize_dtype

__all__ = ["infer", "Inference", "LayerRecord", "MemoryEstimate", "as_spec"]

_CACHE_SIZE = 64
#: guards every model's inference cache (``Module._infer_cache``): its keys hold
#: specs, which compare with Python code, during which another thread must not
#: change the dict
_CACHE_LOCK = threading.Lock()

#: what the pass records per node: (layer, path, param path, input specs, output
#: specs, local params)
_Raw = tuple[Layer, str, str, tuple[TensorSpec, ...], tuple[TensorSpec, ...],
             dict[str, ParamSpec]]

#: a replayed block recorded whole (`_Pass._replay`): ``(first node, first node
#: of the block it repeats, its path prefix, the length of that block's prefix,
#: its primitive layers)``. The pass's records hold that block's records at its
#: nodes until `_expand` writes the block's own.
_Segment = tuple[int, int, str, int, tuple[Layer, ...]]


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
        "path", "kind", "layer", "inputs", "outputs", "param_path", "prefix", "shared",
        "_params", "_dtype", "_resolved", "_costs", "_grad_inputs", "_inference", "_index",
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
        dtype: str | None = None,
    ) -> None:  # built lazily from the pass's raw tuples (see Inference.layers)
        self.path = path
        self.kind = layer.kind
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        self._params = params
        #: the model's dtype, for parameters that leave theirs to it (None: filled)
        self._dtype = dtype
        self.param_path = param_path
        self.prefix = param_prefix(layer, param_path)
        self.shared = path != param_path
        self._resolved = resolved
        self._costs: tuple[Cost, ...] | None = None
        #: which inputs need a gradient in a training step (set by `Inference`)
        self._grad_inputs: tuple[bool, ...] | None = None
        #: the inference this record belongs to (which knows the wiring), and
        #: this node's place in its execution order
        self._inference: Inference | None = None
        self._index = -1

    @property
    def params(self) -> dict[str, ParamSpec]:
        """``{local name: ParamSpec}``, every dtype filled in."""
        dtype = self._dtype
        if dtype is not None:
            self._params = {k: p if p.dtype is not None else
                            ParamSpec._make(p.shape, dtype, p.init, p.trainable)
                            for k, p in self._params.items()}
            self._dtype = None
        return self._params

    @property
    def resolved(self) -> dict[str, Any]:
        """The hyperparameters with inferred sizes filled in (`Layer.resolved`)."""
        hp = self._resolved
        if hp is None:
            hp = self._resolved = self.layer.resolved(*self.inputs)
        return hp

    @property
    def num_params(self) -> Dim:
        """Elements of this node's own trainable parameters (0 for a later call
        of a shared layer), so that the records add up to
        `Inference.num_params`."""
        if self.shared:
            return 0
        return dim_sum(p.numel for p in self.params.values() if p.trainable)

    @property
    def num_buffers(self) -> Dim:
        """Elements of this node's own buffers (running statistics; 0 for a
        later call of a shared layer): the records add up to
        `Inference.num_buffers`."""
        if self.shared:
            return 0
        return dim_sum(p.numel for p in self.params.values() if not p.trainable)

    @property
    def param_bytes(self) -> Dim:
        """Bytes of this node's own parameters and buffers (0 for a later call
        of a shared layer): the records add up to `Inference.param_bytes`."""
        if self.shared:
            return 0
        return dim_sum(p.numel * itemsize(p.dtype or "float32") for p in self.params.values())

    @property
    def output_bytes(self) -> Dim:
        """Bytes of this node's outputs: ``prod(shape) * itemsize`` summed."""
        return self._bytes(self.outputs)

    def _bytes(self, specs: tuple[TensorSpec, ...]) -> Dim:
        """Bytes of tensors of these specs (`nbytes` is memoised: most nodes share
        their shapes with others)."""
        return dim_sum(nbytes(o) for o in specs)

    @property
    def activation_bytes(self) -> Dim:
        """Bytes of memory this node's outputs take: its `output_bytes`, less a
        view of its input (`Layer.aliases_input`), which takes none; the
        records add up to `Inference.activation_bytes`."""
        if self.layer.aliases_input and self.inputs:
            return self._bytes(self.outputs[1:]) if len(self.outputs) > 1 else 0
        return self._bytes(self.outputs)

    @property
    def costs(self) -> tuple[Cost, ...]:
        """The products this node computes (`Layer.costs`), asked once."""
        costs = self._costs
        if costs is None:
            inf = self._inference
            if inf is not None:
                costs = inf._node_costs()[self._index]
            else:
                costs = _layer_costs(self.layer, self.inputs, self.outputs, self.path)
            self._costs = costs
        return costs

    @property
    def flops(self) -> Dim:
        """Forward FLOPs of this node, as FlopCounterMode counts them: 2 per
        multiply-add of its matrix products, convolutions and attention; an int,
        or an expression in the input symbols (`lazyshape._cost`)."""
        return dim_sum(c.flops for c in self.costs)

    @property
    def macs(self) -> Dim:
        """Multiply-adds of this node's forward: ``flops // 2``."""
        return self.flops // 2

    @property
    def flops_backward(self) -> Dim:
        """FLOPs of this node's backward in a training step, as FlopCounterMode
        counts them: each product's gradient for every factor that needs one (a
        trainable parameter, an input computed from one; the model's inputs
        need none). Records from `Inference.layers` only."""
        need = self._grad_inputs
        if need is None:
            if self._inference is None:
                raise ValueError("flops_backward is known for the records of Inference.layers")
            self._inference._mark_grads()
            need = self._grad_inputs
            assert need is not None
        params = self._params
        internal = any(need) or any(p.trainable for p in params.values())
        total: Dim = 0
        for c in self.costs:
            for factor, flops in c.grads:
                if factor is None:
                    needed = internal
                elif isinstance(factor, int):
                    needed = factor < len(need) and need[factor]
                else:
                    p = params.get(factor)
                    needed = p is not None and p.trainable
                if needed:
                    total = total + flops
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
        sources: Mapping[int, int] | None = None,
        shared_replays: bool = False,
        segments: list[_Segment] | None = None,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.outputs = outputs
        #: the pass's records: a replayed block's nodes (``segments``) hold the
        #: records of the block they repeat until `_raw` is first read; every
        #: node whose rules ran holds its own
        self._records = raw
        self._segments = segments or []
        self._expanded: list[_Raw] | None = None if segments else raw
        #: node -> the node whose rules gave its answer, for a node recorded with
        #: its own record whose rules did not run (`_Pass.sources`)
        self._own_sources = sources or {}
        self._all_sources: Mapping[int, int] | None = None if segments else self._own_sources
        #: whether a node that took another's answer differs from it in owning its
        #: parameters (a layer shared across repeated blocks): then parameter
        #: totals go node by node
        self._shared_replays = shared_replays
        #: ``(node, count)`` for each node whose rules ran (`_counted`)
        self._counts: list[tuple[int, int]] | None = None
        self._layers: tuple[LayerRecord, ...] | None = None
        self._params: dict[str, ParamSpec] | None = None
        self.assumptions = assumptions
        self.bounds = bounds
        self.dtype = dtype
        self._ranges: tuple[dict[str, tuple[int, int | None]], tuple[str, ...]] | None = None
        self._peak: Dim | None = None
        #: the partition over a device mesh (`partitioned`), if any
        self._shards: dict[str, ShardSpec] | None = None
        self._mesh: dict[str, int] = {}
        self._partition: Partition | None = None
        #: each node's `Layer.costs`, in execution order (`_node_costs`)
        self._costs: list[tuple[Cost, ...]] | None = None
        #: the costs of the nodes of `_counted`, in its order (`_counted_costs`)
        self._ran_costs: list[tuple[Cost, ...]] | None = None

    @property
    def _raw(self) -> list[_Raw]:
        """One record per node, in execution order: ``(layer, path, param path,
        input specs, output specs, local params)``."""
        raw = self._expanded
        if raw is None:  # (in place: totals read only the nodes whose rules ran)
            raw = self._records
            for segment in self._segments:
                _expand(raw, segment)
            self._expanded = raw
        return raw

    @property
    def _sources(self) -> Mapping[int, int]:
        """node -> the node whose rules gave its answer, for each node whose rules
        did not run (a repeated block's, `_Pass`)."""
        sources = self._all_sources
        if sources is None:
            every = dict(self._own_sources)
            for segment in self._segments:
                _take_sources(every, segment)
            sources = self._all_sources = every
        return sources

    def _counted_costs(self) -> list[tuple[Cost, ...]]:
        """The products (`Layer.costs`) of each node of `_counted`, in its order:
        one ask per answer of the rules."""
        costs = self._ran_costs
        if costs is None:
            none = _NO_COSTS  # (most layers: asked without a call)
            records = self._records  # (a node whose rules ran holds its own record)
            costs = self._ran_costs = []
            append = costs.append
            for i, _ in self._counted():
                layer, path, _, ins, outs, _ = records[i]
                append(() if type(layer).costs is none else _layer_costs(layer, ins, outs, path))
        return costs

    def _node_costs(self) -> list[tuple[Cost, ...]]:
        """Each node's products (`Layer.costs`), in execution order: a node that
        took another's answer (a repeated block's, `_Pass`) has that node's
        costs, as cost rules are functions of the same attributes and specs."""
        costs = self._costs
        if costs is None:
            ran = dict(zip([i for i, _ in self._counted()], self._counted_costs(), strict=True))
            sources = self._sources
            costs = self._costs = [ran[sources.get(i, i)] for i in range(len(self._records))]
        return costs

    def _counted(self) -> list[tuple[int, int]]:
        """``(node, count)`` for each node whose rules ran, in execution order:
        ``count`` nodes (it, and the nodes of repeated blocks that took its
        answer) have its output specs, parameter specs and costs. Totals sum
        over these, not over every node."""
        counted = self._counts
        if counted is None:
            n = len(self._records)
            sources = self._own_sources
            segments = self._segments
            if not sources and not segments:
                counted = list(zip(range(n), itertools.repeat(1)))
            else:
                counts = [1] * n
                for i, source in sources.items():
                    counts[source] += 1
                    counts[i] = 0
                repeats: dict[tuple[int, int], int] = {}  # (first source node, end) -> times
                for first, start, _, _, layers in segments:
                    end = start + len(layers)
                    counts[first:first + len(layers)] = [0] * len(layers)
                    repeats[start, end] = repeats.get((start, end), 0) + 1
                for (start, end), k in repeats.items():
                    if sources:  # (a block's nodes are counted with their sources')
                        for j in range(start, end):
                            counts[sources.get(j, j)] += k
                    else:
                        counts[start:end] = [c + k for c in counts[start:end]]
                counted = [(i, counts[i]) for i in itertools.compress(range(n), counts)]
            self._counts = counted
        return counted

    @property
    def layers(self) -> tuple[LayerRecord, ...]:
        """One `LayerRecord` per node, in execution order."""
        if self._layers is None:
            dtype = self.dtype
            self._layers = tuple(
                LayerRecord(layer, path, param_path, ins, outs, local, None,
                            dtype if local else None)
                for layer, path, param_path, ins, outs, local in self._raw
            )
            for i, rec in enumerate(self._layers):
                rec._inference = self
                rec._index = i
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
        return self._param_total(True, False)

    @property
    def num_buffers(self) -> Dim:
        """Total buffer elements (non-trainable state, e.g. running statistics)."""
        return self._param_total(False, False)

    @property
    def num_bytes(self) -> Dim:
        """Bytes of all parameters and buffers (the same as `param_bytes`)."""
        return self._param_total(None, True)

    def _param_total(self, trainable: bool | None, in_bytes: bool) -> Dim:
        """Elements (or bytes) of every parameter and buffer once, or of the
        trainable ones only (``trainable`` True) or the buffers only (False):
        concrete sizes added as ints, symbolic ones summed once per spec
        (layers of one size share their specs)."""
        dtype = self.dtype
        const = 0
        # symbolic sizes: layers of one size share their (immutable) specs,
        # each summed once, times its count
        tally: dict[int, list[Any]] = {}  # id(spec) -> [size, count]
        if self._shared_replays:  # node by node
            raw = self._raw
            counted: Iterable[tuple[int, int]] = zip(range(len(raw)), itertools.repeat(1))
        else:  # (a node whose rules ran holds its own record)
            raw, counted = self._records, self._counted()
        for i, k in counted:
            _, path, param_path, _, _, local = raw[i]
            if local and path is param_path:
                for p in local.values():
                    if trainable is not None and p.trainable is not trainable:
                        continue
                    n = p._numel
                    if n is None:
                        n = p.numel
                    if type(n) is int:
                        size = n * _ITEMSIZE[p.dtype or dtype] if in_bytes else n
                        const += size * k
                        continue
                    t = tally.get(id(p))
                    if t is None:
                        tally[id(p)] = [n * _ITEMSIZE[p.dtype or dtype] if in_bytes else n, k]
                    else:
                        t[1] += k
        if not tally:
            return const
        return weighted_sum([(const, 1), *tally.values()])  # type: ignore[list-item]

    @property
    def param_bytes(self) -> Dim:
        """Bytes of all parameters and buffers, each in its dtype."""
        return self.num_bytes

    @property
    def flops(self) -> Dim:
        """Forward FLOPs, as ``torch.utils.flop_counter.FlopCounterMode`` counts
        them (2 per multiply-add of matrix products, convolutions and
        attention; elementwise work not counted): an int, or an expression in
        the input symbols (``2*B*H*W*...``). The sum of the records' `flops`."""
        # equal products (repeated blocks) share one `Cost`: each counted once,
        # times its calls
        tally: dict[int, list[Any]] = {}
        for (_, k), costs in zip(self._counted(), self._counted_costs(), strict=True):
            for c in costs:
                t = tally.get(id(c))
                if t is None:
                    tally[id(c)] = [c.flops, k]
                else:
                    t[1] += k
        return weighted_sum(tally.values())  # type: ignore[arg-type]

    @property
    def macs(self) -> Dim:
        """Multiply-adds of the forward: ``flops // 2``."""
        return self.flops // 2

    @property
    def flops_backward(self) -> Dim:
        """FLOPs of the backward of a training step, as FlopCounterMode counts
        them: every product's gradients for the factors that need one, so a
        layer reading the model's input computes no input gradient. The sum of
        the records' `flops_backward`."""
        self._mark_grads()
        return dim_sum(rec.flops_backward for rec in self.layers)

    @property
    def activation_bytes(self) -> Dim:
        """Bytes of every intermediate an inference forward produces: each
        node's outputs, once (a view of its input, a reshape, adds none); an
        int or an expression."""
        # a layer that keeps its input's shape hands on the same shape tuple:
        # counted by identity first, then each distinct tuple sized once
        tally: dict[int, list[Any]] = {}  # id(shape) -> [shape, dtype, count]
        other: list[tuple[TensorSpec, int]] = []  # (a shape tuple met in another dtype)
        get = tally.get
        raw = self._records  # (a node whose rules ran holds its own record)
        for i, k in self._counted():
            layer, _, _, ins, outs, _ = raw[i]
            if ins and layer.aliases_input:  # a view of its input: no new memory
                outs = outs[1:]
            for o in outs:
                t = get(id(o.shape))
                if t is None:
                    tally[id(o.shape)] = [o.shape, o.dtype, k]
                elif t[1] == o.dtype:
                    t[2] += k
                else:
                    other.append((o, k))
        pairs = [(nbytes(o), k) for o, k in other]
        pairs += [(shape_bytes(shape, dtype), n) for shape, dtype, n in tally.values()]
        return weighted_sum(pairs)

    @property
    def peak_activation_bytes(self) -> Dim:
        """The most bytes of values live at once in an inference forward that
        runs the nodes in order and frees each value after its last reader, as
        an eager framework does: the inputs, and every intermediate still to be
        read. A nested container's input is held by its caller until the
        container returns (a Python frame holds its arguments). Where the
        order of two symbolic candidates depends on the symbols, their
        ``max``."""
        return self._forward_peak()

    @property
    def training_bytes(self) -> Dim:
        """Bytes of a training step with Adam: parameters and buffers, their
        gradients, the optimizer's two moments, and the activations the backward
        keeps (`memory` gives the breakdown, and other optimizers)."""
        return self.memory().total

    def memory(self, optimizer: str = "adam") -> MemoryEstimate:
        """The bytes of a training step, by part (each an int or an expression):
        ``params`` (trainable), ``buffers``, ``gradients`` (one per trainable
        parameter), ``optimizer_state`` (``"adam"`` / ``"adamw"``: two moments
        per parameter; ``"sgd"``: none; ``"sgd_momentum"``: one buffer),
        ``saved_activations`` (what each layer's backward keeps, `Layer.saved`,
        counting a tensor kept by two layers once; the model's inputs are the
        caller's), ``outputs`` (the floating outputs, which the loss reads, and
        their gradients, where the backward starts) and their ``total``."""
        states = _OPTIMIZER_STATES.get(optimizer)
        if states is None:
            raise ValueError(
                f"optimizer is one of {', '.join(map(repr, _OPTIMIZER_STATES))}; got {optimizer!r}"
            )
        trainable: Dim = 0
        buffers: Dim = 0
        for p in self.params.values():
            b = prod(p.shape) * itemsize(p.dtype or self.dtype)
            if p.trainable:
                trainable = trainable + b
            else:
                buffers = buffers + b
        saved = self._saved_bytes()
        state = states * trainable
        outputs: Dim = 0
        for o in self.outputs:
            if o.dtype in FLOATING:
                outputs = outputs + 2 * nbytes(o)
        return MemoryEstimate(trainable, buffers, trainable, state, saved, outputs,
                              2 * trainable + buffers + state + saved + outputs)

    def _storages(self) -> tuple[Program, list[int], list[Dim]]:
        """The program, each value slot's storage (a view shares its input's)
        and each storage's bytes (the inputs' first)."""
        program = program_of(self.model, len(self.inputs))
        store = [-1] * program.n_slots
        sizes: list[Dim] = []
        for i, spec in enumerate(self.inputs):
            store[i] = len(sizes)
            sizes.append(nbytes(spec))
        for node, rec in zip(program.nodes, self.layers, strict=True):
            for k, (slot, spec) in enumerate(zip(node.outs, rec.outputs, strict=True)):
                if k == 0 and node.ins and rec.layer.aliases_input:
                    store[slot] = store[node.ins[0]]
                else:
                    store[slot] = len(sizes)
                    sizes.append(nbytes(spec))
        return program, store, sizes

    def _forward_peak(self) -> Dim:
        if self._peak is not None:
            return self._peak
        program, store, sizes = self._storages()
        n_in = len(self.inputs)
        last = _last_uses(program, store)
        keep = set(range(n_in)) | {store[s] for s in program.outputs}
        frees: dict[int, list[int]] = {}  # node index -> storages it is the last to need
        for st, k in last.items():
            if st not in keep:
                frees.setdefault(k, []).append(st)
        live: Dim = 0
        for b in sizes[:n_in]:
            live = live + b
        peaks: list[Dim] = [live]
        seen = set(range(n_in))
        for k, node in enumerate(program.nodes):
            for slot in node.outs:
                st = store[slot]
                if st not in seen:
                    seen.add(st)
                    live = live + sizes[st]
                    if st not in last and st not in keep:  # never read: freed at once
                        frees.setdefault(k, []).append(st)
            _note_peak(peaks, live)
            for st in frees.get(k, ()):
                live = live - sizes[st]
        peak = peaks[0]
        for p in peaks[1:]:
            peak = dim_max(peak, p)
        self._peak = peak
        return peak

    def _saved_bytes(self) -> Dim:
        """Bytes the backward of a training step keeps (see `memory`)."""
        self._mark_grads()
        program, store, sizes = self._storages()
        kept: set[int] = set()
        extra: Dim = 0
        for node, rec in zip(program.nodes, self.layers, strict=True):
            need = rec._grad_inputs
            assert need is not None
            if not any(need) and not any(p.trainable for p in rec._params.values()):
                continue  # autograd records nothing here
            saved = rec.layer.saved(rec.inputs, rec.outputs)
            kept.update(store[node.ins[i]] for i in saved.inputs if i < len(node.ins))
            kept.update(store[node.outs[j]] for j in saved.outputs if j < len(node.outs))
            extra = extra + saved.extra
        total: Dim = extra
        for st in sorted(kept):
            if st >= len(self.inputs):  # the model's inputs are the caller's
                total = total + sizes[st]
        return total

    def _mark_grads(self) -> None:
        """Fill each record's ``_grad_inputs``: which inputs depend on a trainable
        parameter (the model's inputs do not; integer and bool values never)."""
        records = self.layers
        if records and records[0]._grad_inputs is not None:
            return
        program = program_of(self.model, len(self.inputs))
        need = [False] * program.n_slots
        for node, rec in zip(program.nodes, records, strict=True):
            flags = tuple(need[i] for i in node.ins)
            rec._grad_inputs = flags
            out = any(flags) or any(p.trainable for p in rec._params.values())
            if out:
                for slot, spec in zip(node.outs, rec.outputs, strict=True):
                    need[slot] = spec.dtype in FLOATING

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

    def partitioned(self, partition: Partition, mesh_shape: Mapping[str, int]) -> Inference:
        """This inference with its parameters split over a device mesh of
        ``mesh_shape`` (``{"dp": 8, "tp": 8}``) by ``partition``: the result's
        `shards`, `param_bytes_per_device` and `memory_per_device` say what one
        device holds. Raises `ShapeError` naming the parameter for a rule that
        does not fit it (see `Partition`)."""
        shards = shard_params(self.params, partition, mesh_shape, self.dtype)
        out = copy.copy(self)
        out._shards = shards
        out._mesh = dict(mesh_shape)
        out._partition = partition
        return out

    @property
    def shards(self) -> dict[str, ShardSpec]:
        """``{parameter name: ShardSpec}``: each parameter's mesh axes per dim and
        the shard one device holds (from `partitioned`, or ``infer(...,
        partition=, mesh_shape=)``)."""
        if self._shards is None:
            raise ValueError("no partition: use ls.infer(..., partition=..., mesh_shape=...)")
        return self._shards

    @property
    def param_bytes_per_device(self) -> Dim:
        """Bytes of parameters and buffers one device holds under the partition."""
        return dim_sum(s.shard_bytes for s in self.shards.values())

    def memory_per_device(self, optimizer: str = "adam") -> MemoryEstimate:
        """`memory` for one device of the mesh: parameters, gradients and
        optimizer state as their shards; the activations kept for backward and
        the outputs split over the mesh axes of the logical axis ``"batch"``
        (the partition's ``mesh_axes``, else a mesh axis named ``"batch"`` or
        ``"dp"``), and not over the others (an upper bound for tensor
        parallelism, which splits some of them too)."""
        whole = self.memory(optimizer)
        states = _OPTIMIZER_STATES[optimizer]
        trainable: Dim = 0
        buffers: Dim = 0
        params = self.params
        for name, s in self.shards.items():
            if params[name].trainable:
                trainable = trainable + s.shard_bytes
            else:
                buffers = buffers + s.shard_bytes
        ways = 1
        for axis in self._batch_axes():
            ways *= self._mesh[axis]
        saved = whole.saved_activations // ways if ways > 1 else whole.saved_activations
        outputs = whole.outputs // ways if ways > 1 else whole.outputs
        state = states * trainable
        return MemoryEstimate(trainable, buffers, trainable, state, saved, outputs,
                              2 * trainable + buffers + state + saved + outputs)

    def _batch_axes(self) -> tuple[str, ...]:
        assert self._partition is not None
        mapped = self._partition.mesh_axes.get("batch")
        if mapped is not None:
            return mapped
        return tuple(a for a in ("batch", "dp") if a in self._mesh)[:1]

    def solve(
        self,
        budget: int | float | str,
        *,
        metric: str = "training_bytes",
        for_: str = "B",
        optimizer: str = "adam",
        **fixed: int,
    ) -> int:
        """The largest value of the input symbol ``for_`` for which ``metric``
        fits ``budget``, the other symbols bound to ``fixed``:
        ``inf.solve("80GiB", for_="B", H=224, W=224)`` is the largest batch
        whose training step fits 80 GiB.

        ``metric`` is any of this inference's figures, or a part of `memory`
        (``"saved_activations"``, with ``optimizer``): ``"training_bytes"``,
        ``"peak_activation_bytes"``, ``"activation_bytes"``,
        ``"param_bytes"``, ``"flops"``, ``"flops_backward"``, ``"macs"``.
        ``budget`` is a number (bytes or FLOPs) or a size such as ``"80GiB"``.
        The answer is exact on the expression: ``metric`` at the answer is
        within the budget, at the answer + 1 it is not (or the answer is the
        top of ``for_``'s valid range). Raises ValueError when even the lowest
        valid value does not fit, or when a symbol is left unbound."""
        from ._memory import parse_bytes

        limit = parse_bytes(budget)
        if metric in MemoryEstimate._fields:
            expr = getattr(self.memory(optimizer), metric)
        elif metric in _METRICS:
            expr = getattr(self, metric)
        else:
            raise ValueError(
                f"metric is one of {', '.join(map(repr, (*_METRICS, *MemoryEstimate._fields)))}"
                f"; got {metric!r}"
            )
        names = self._symbol_names()
        symbol = {name: sym for sym, name in names.items()}
        if for_ not in symbol:
            raise ValueError(f"{for_!r} is not a symbol of the inputs ({', '.join(symbol)})")
        env = {symbol[k]: v for k, v in fixed.items() if k in symbol}
        unknown = sorted(set(fixed) - symbol.keys())
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not symbols of the inputs "
                             f"({', '.join(symbol)})")
        left = sorted(names[s] for s in free_symbols(expr) if s not in env and names[s] != for_)
        if left:
            raise ValueError(f"{metric} also depends on {', '.join(left)}: give "
                             + ", ".join(f"{n}=..." for n in left))
        lo, hi = self.valid_ranges[for_]
        sym = symbol[for_]

        def fits(v: int) -> bool:
            got = bind(expr, {**env, sym: v})
            assert type(got) is int
            return got <= limit

        if not fits(lo):
            raise ValueError(
                f"{metric} does not fit {budget!r} even at {for_}={lo} "
                f"({format_dim(bind(expr, {**env, sym: lo}))})"
            )
        top = 2**62 if hi is None else hi
        good, step = lo, 1
        while good + step <= top and fits(good + step):  # grow, then bisect
            good += step
            step *= 2
        bad = min(good + step, top + 1)
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
        return good

    def __repr__(self) -> str:
        outs = ", ".join(format_shape(o.shape) for o in self.outputs)
        return (
            f"Inference({len(self.layers)} layers, outputs {outs}, "
            f"{format_dim(self.num_params)} params)"
        )


def _expand(raw: list[_Raw], segment: _Segment) -> None:
    """Write the records of a replayed block (``segment``) at its nodes of
    ``raw``, from those of the block it repeats: its own layers and paths, that
    block's specs. (Its parameter path is its path: a block holding a later call
    of a shared layer is recorded node by node.)"""
    first, start, prefix, cut, layers = segment
    for t, layer in enumerate(layers):
        _, was, _, ins, outs, local = raw[start + t]
        path = prefix + was[cut:]
        raw[first + t] = (layer, path, path, ins, outs, local)


def _take_sources(sources: dict[int, int], segment: _Segment) -> None:
    """File in ``sources`` the node each node of a replayed block (``segment``)
    took its answer from: its counterpart's own source, or its counterpart."""
    first, start, _, _, layers = segment
    for t in range(len(layers)):
        sources[first + t] = sources.get(start + t, start + t)


#: the base class's cost rule (no products)
_NO_COSTS = Layer.costs


def _layer_costs(layer: Layer, ins: tuple[TensorSpec, ...], outs: tuple[TensorSpec, ...],
                 path: str) -> tuple[Cost, ...]:
    """``layer.costs(ins, outs)``; a failing rule (a custom layer's) is a
    `TypeError` naming the node."""
    if type(layer).costs is _NO_COSTS:
        return ()
    try:
        return layer.costs(ins, outs)
    except Exception as e:
        raise TypeError(
            f"the cost rule of {layer.kind} at '{path}' failed: {type(e).__name__}: {e}"
        ) from e

#: what `Inference.solve` can solve for
_METRICS = ("training_bytes", "peak_activation_bytes", "activation_bytes", "param_bytes",
            "flops", "flops_backward", "macs")

#: optimizer -> state tensors per trainable parameter
_OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 0, "sgd_momentum": 1}


class MemoryEstimate(NamedTuple):
    """The bytes of a training step, by part (`Inference.memory`)."""

    params: Dim
    buffers: Dim
    gradients: Dim
    optimizer_state: Dim
    saved_activations: Dim
    outputs: Dim
    total: Dim


def _last_uses(program: Program, store: list[int]) -> dict[int, int]:
    """``{storage: index of the last node that needs it}``: its last reader, or,
    when that reader sits in nested containers that its producer is not in, the
    last node of the outermost of them (the container's caller holds its
    inputs until it returns)."""
    nodes = program.nodes
    end: dict[str, int] = {}  # container path -> index of its last node
    made: dict[int, str] = {}  # storage -> path of the node that made it
    for k, node in enumerate(nodes):
        parts = node.path.split(".")
        for i in range(1, len(parts)):
            end[".".join(parts[:i])] = k
        for slot in node.outs:
            made.setdefault(store[slot], node.path)
    last: dict[int, int] = {}
    for k, node in enumerate(nodes):
        parts = node.path.split(".")
        for slot in node.ins:
            st = store[slot]
            producer = made.get(st, "")
            until = k
            for i in range(1, len(parts)):
                prefix = ".".join(parts[:i])
                if not (producer == prefix or producer.startswith(prefix + ".")):
                    until = end[prefix]  # the outermost container the producer is not in
                    break
            if until > last.get(st, -1):
                last[st] = until
    return last


def _note_peak(peaks: list[Dim], live: Dim) -> None:
    """Add ``live`` to the candidates for a peak, dropping what is provably
    below another candidate (the list holds the candidates no other bounds)."""
    for i, p in enumerate(peaks):
        if p is live or ge(p, live) is True:
            return
        if ge(live, p) is True:
            peaks[i] = live
            peaks[:] = [q for q in peaks if q is live or ge(live, q) is not True]
            return
    peaks.append(live)


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


def _batch_symbols(inputs: tuple[TensorSpec, ...], batch_dim: int | None) -> frozenset[str]:
    """The symbols of the inputs' (symbolic) ``batch_dim``; none for None."""
    batch: frozenset[str] = frozenset()
    if batch_dim is None:
        return batch
    for s in inputs:
        if s.ndim > batch_dim and is_symbolic(s.shape[batch_dim]):
            batch |= free_symbols(s.shape[batch_dim])
    return batch


def _check_batch_independence(
    layer: Layer, path: str, ins: tuple[TensorSpec, ...], local: dict[str, ParamSpec],
    batch: frozenset[str],
) -> ShapeError | None:
    """The error for the first of a node's parameters whose shape depends on a
    ``batch`` symbol; None when none does. The pass asks for every node with
    parameters of a symbolic shape, as it goes, and raises the first node's
    error only when every node has resolved (a rule's error comes first)."""
    for name, p in local.items():
        for d in p.shape:
            if type(d) is not int:
                break
        else:
            continue  # all-int shape: the common case, no symbol to look at
        if not p.symbols & batch:
            continue
        return ShapeError(
            "parameter shapes that do not depend on the batch dim",
            f"`{name}` of shape {format_shape(p.shape)} from input shapes "
            + ", ".join(format_shape(s.shape) for s in ins),
            kind=layer.kind,
            path=path,
        )
    return None


class _Pass:
    """The propagation pass, run as the model's structure is walked.

    It has the interface of the program compiler (`_graph._Builder.add`), so
    `_graph.trace` walks the model's structure with it: where the compiler
    hands out value slots, the pass hands out the specs themselves and runs
    each primitive layer's rules (`resolve_node`) as it is reached. Shape
    inference therefore builds no program; paths, shared-layer ownership and
    parameter names come out exactly as the compiled program's
    (`tests/test_graph.py` checks it).

    Everything the pass needs travels with it: the model's dtype, the log its
    rules report assumptions to (bound to `ASSUMED` for the run), and the
    containers walked so far.

    **Repeated blocks resolve once.** A layer's rules are functions of its
    attributes and its input specs (`Layer.memo_rules`). So a container
    (`_graph` asks `enter` before walking one) of the class and structure
    (`Module._signature`) of one walked before in the pass, on equal input
    specs, is not walked again: its primitives are paired in order with that
    container's nodes, and each whose layer has equal attributes (``vars``,
    compared as values; its ``name`` aside) takes that node's outputs,
    parameter specs and assumptions (re-filed at its own path) without running
    its rules. The checks that follow the rules (the parameters' dtype against
    the inputs', batch independence) are functions of the same values, so
    they are skipped too. Attributes the rules do not read
    (`Layer.shape_free_attributes`, a block's drop probability) may differ. A
    primitive whose other attributes differ (an epsilon) runs its rules on that
    node's inputs; if its outputs differ, the replay is undone and the
    container walked. So a model's repeated blocks (ViT's encoder layers, a
    Llama's decoder layers, a ConvNeXt stage) cost a comparison per node after
    the first block.

    A replayed block whose layers are all first calls, each equal to its
    counterpart (itself a first call), is recorded whole (`segments`): its
    nodes hold the records of the block it repeats until `Inference._raw`
    writes their own (`_expand`); totals sum over the nodes whose rules ran
    and need them only when a layer is shared between repeated blocks. Before
    a block that holds such a block is repeated, its records are written
    (`_materialize`). The record lives and dies with the pass: nothing is
    shared between calls of `infer` or between threads.
    `sources` and `segments` say which node each one took its answer from, so
    `Inference` asks a repeated node's costs once too.
    """

    __slots__ = ("owners", "raw", "assumptions", "bounds", "dtype", "log", "batch", "batch_error",
                 "sources", "logs", "walked", "shared_replays", "segments")
    inline = True  # walks into every container (see `_graph.trace`)

    def __init__(self, dtype: str, batch: frozenset[str] = frozenset()) -> None:
        #: the model's dtype: the parameters' that `ParamSpec.dtype` None leaves to it
        self.dtype = dtype
        #: the batch dim's symbols, on which no parameter shape may depend
        self.batch = batch
        #: the error for the first node whose parameters depend on them (raised
        #: by `infer` once every node has resolved)
        self.batch_error: ShapeError | None = None
        #: layer -> the index in `raw` of its first call
        self.owners: dict[Layer, int] = {}
        self.raw: list[_Raw] = []
        #: node -> the node whose rules gave its answer, for a node whose rules
        #: did not run (a repeated block's) recorded with its own record
        self.sources: dict[int, int] = {}
        #: the replayed blocks recorded whole, in order: their nodes in `raw` hold
        #: the records of the block they repeat (`_expand` writes their own)
        self.segments: list[_Segment] = []
        #: node -> what its rules assumed, for a node whose rules assumed anything
        self.logs: dict[int, tuple[Assumed, ...]] = {}
        #: what the rules of the node running now assumed (drained after each node)
        self.log: list[Assumed] = []
        self.assumptions: list[tuple[str, Dim, Dim]] = []
        self.bounds: list[tuple[str, Dim, str, Dim]] = []
        #: (container class, input shapes and dtypes) -> the containers walked on
        #: them (`_Walked`)
        self.walked: dict[tuple[Any, ...], list[_Walked]] = {}
        #: whether a replayed node, or the node it took its answer from, is a
        #: later call of a shared layer (`Inference._shared_replays`)
        self.shared_replays = False

    def add(
        self, layer: Layer, ins: tuple[TensorSpec, ...], path: str
    ) -> tuple[TensorSpec, ...]:
        """Run ``layer`` (a container: trace it) on ``ins``; its output specs.

        Records the call; its parameters get their canonical names only when
        `Inference.params` is first read."""
        outs, local = resolve_node(layer, ins, path, self.dtype)
        logged = self._drain(path) if self.log else ()
        if local:
            dtype = self.dtype  # floating inputs must have the parameters' dtype
            if ins[0].dtype != dtype or len(ins) > 1:
                check_param_dtype(layer, ins, local, dtype, path)
            if self.batch and self.batch_error is None:
                for p in local.values():  # (an all-int shape depends on no symbol)
                    sym = p._symbolic  # (`is_symbolic`, once asked)
                    if sym is None:
                        sym = p.is_symbolic
                    if sym:
                        self.batch_error = _check_batch_independence(
                            layer, path, ins, local, self.batch)
                        break
        # the layer's first call (layers hash by identity): a later call of a shared
        # layer gets that call's parameters
        raw = self.raw
        index = len(raw)
        first = self.owners.setdefault(layer, index)
        param_path = path if first == index else self._shared(layer, path, first, local)
        raw.append((layer, path, param_path, ins, outs, local))
        if logged:
            self.logs[index] = logged
        return outs

    def _shared(self, layer: Layer, path: str, first: int, local: dict[str, ParamSpec]) -> str:
        """The parameter path of a later call of a shared layer (first called at
        node ``first``), whose parameter specs must be the first call's."""
        param_path = self.raw[first][1]
        for node, start, prefix, cut, layers in reversed(self.segments):
            if node <= first:  # (its first call in a replayed block: that block's path)
                if first < node + len(layers):
                    param_path = prefix + self.raw[start + first - node][1][cut:]
                break
        if local:
            _check_shared(layer, path, param_path, self.raw[first][5], local)
        return param_path

    def _drain(self, path: str) -> tuple[Assumed, ...]:
        """File what the node at ``path`` assumed, each once (its shape rule and
        its parameter rule may assume the same): equalities and bounds. Returns
        what was filed."""
        log = self.log
        filed: list[Assumed] = []
        for item in log:
            if item not in filed:
                filed.append(item)
        log.clear()
        self._file(path, filed)
        return tuple(filed)

    def _file(self, path: str, logged: Iterable[Assumed]) -> None:
        for op, a, b in logged:
            if op == "==":
                self.assumptions.append((path, a, b))
            else:
                self.bounds.append((path, a, op, b))

    def enter(self, container: Module, ins: tuple[TensorSpec, ...], prefix: str
              ) -> tuple[tuple[TensorSpec, ...] | None, Any]:
        """Before ``container`` is walked on ``ins`` (its paths under ``prefix``):
        its outputs when it repeats one walked before (its nodes recorded from
        that one's), else None; and what `leave` needs to remember it."""
        sig = container._signature  # (a container walked inline has one, maybe None)
        if sig is None:
            return None, None
        key = _walk_key(container, ins)
        walked = self.walked.get(key)
        if walked is None:
            walked = self.walked[key] = []
        else:
            for before in walked:
                if before[0] is sig or before[0] == sig:
                    if self._replay(container, before, prefix):
                        return before[4], None
                    break
        return None, (walked, sig, len(self.raw))

    def leave(self, outs: tuple[TensorSpec, ...], prefix: str, mark: Any) -> None:
        """After a container was walked to ``outs`` (its paths under ``prefix``),
        with ``mark`` from `enter`: remember it."""
        if mark is not None:
            walked, sig, start = mark
            if len(walked) == _WALKED:
                del walked[0]
            segments = self.segments  # (whether it holds a block recorded whole)
            nested = bool(segments) and segments[-1][0] >= start
            walked.append((sig, start, len(self.raw), prefix, outs, nested))

    def _replay(self, container: Module, before: _Walked, prefix: str) -> bool:
        """Record ``container``'s nodes from those of the container ``before``
        (of its structure, on its inputs); False, with nothing recorded, when a
        primitive's rules answer otherwise than that container's did."""
        _, start, end, was, _, nested = before
        layers = container._primitives
        if layers is None or len(layers) != end - start:  # (equal signatures: never)
            return False
        if nested:
            self._materialize(start, end)  # (its records are read)
        raw, sources, logs, owners = self.raw, self.sources, self.logs, self.owners
        n = len(raw)
        cut = len(was)
        olds = raw[start:end]
        # the common case: every layer is a first call whose attributes equal its
        # counterpart's, a first call too: the block is recorded whole
        index = n
        for layer, rec in zip(layers, olds, strict=False):  # (lengths checked)
            was_layer = rec[0]
            if (layer is was_layer or rec[2] is not rec[1] or not layer.memo_rules
                    or owners.setdefault(layer, index) != index
                    or not _same_attributes(was_layer, layer)):
                break
            index += 1
        else:
            raw += olds
            self.segments.append((n, start, prefix, cut, layers))
            if logs:
                for j in range(start, end):
                    if j in logs:
                        logged = logs[n + j - start] = logs[j]
                        self._file(prefix + raw[j][1][cut:], logged)
            return True
        for layer in layers[:index - n + 1]:  # (the owners filed above)
            if owners.get(layer, -1) >= n:
                del owners[layer]
        undo = (n, len(self.assumptions), len(self.bounds), self.batch_error)
        for j, layer, (old, old_path, old_params, ins, outs, local) in zip(
                range(start, end), layers, olds, strict=False):
            path = prefix + old_path[cut:]
            if not (layer is old or layer.memo_rules and _same_attributes(old, layer)):
                if self.add(layer, ins, path) != outs:  # (an error is this node's own)
                    self._undo(*undo)
                    return False
                continue
            # as `add` records it, with the answer of node `j`
            index = len(raw)
            first = owners.setdefault(layer, index)
            if first != index or old_params is not old_path:
                self.shared_replays = True
            param_path = path if first == index else self._shared(layer, path, first, local)
            raw.append((layer, path, param_path, ins, outs, local))
            sources[index] = sources.get(j, j)
            if j in logs:
                logged = logs[index] = logs[j]
                self._file(path, logged)
        return True

    def _materialize(self, start: int, end: int) -> None:
        """Give the nodes of the replayed blocks among nodes ``start`` to
        ``end`` their own records (a block repeated again: its records are read)."""
        keep: list[_Segment] = []
        for segment in self.segments:
            if start <= segment[0] < end:
                _expand(self.raw, segment)
                _take_sources(self.sources, segment)
            else:
                keep.append(segment)
        self.segments[:] = keep

    def _undo(self, n: int, n_assumed: int, n_bounds: int, batch_error: ShapeError | None
              ) -> None:
        """Forget the nodes from ``n`` on (each with its own record: a block
        being replayed node by node), and what was filed with them."""
        for layer, *_ in self.raw[n:]:
            if self.owners.get(layer, -1) >= n:
                del self.owners[layer]
        del self.raw[n:]
        for nodes in (self.sources, self.logs):
            for i in [i for i in nodes if i >= n]:
                del nodes[i]
        del self.assumptions[n_assumed:], self.bounds[n_bounds:]
        self.batch_error = batch_error

    def run(self, model: Layer, specs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        """The model's output specs (a single layer's parameters get no prefix)."""
        token = ASSUMED.set(self.log)  # (a plain set/reset: cheaper than a `with` block)
        try:
            if isinstance(model, Module):
                return trace(model, self, specs, "")
            return self.add(model, specs, model.name or "")
        finally:
            ASSUMED.reset(token)


#: how many walked containers `_Pass` keeps per class and input specs (the latest)
_WALKED = 4

#: ``(signature, first node, end node, path prefix, outputs, whether it holds a
#: replayed block recorded whole)`` of a walked container
_Walked = tuple[Any, int, int, str, tuple[TensorSpec, ...], bool]


def _walk_key(container: Module, ins: tuple[TensorSpec, ...]) -> tuple[Any, ...]:
    """``container``'s class and its inputs' shapes and dtypes (plain tuples:
    hashed and compared without a spec's own methods); one input's are
    ``(class, shape, dtype)``."""
    if len(ins) == 1:
        x = ins[0]
        return type(container), x.shape, x.dtype
    return (type(container), *[(x.shape, x.dtype) for x in ins])


def _same_attributes(first: Layer, other: Layer) -> bool:
    """Whether two layers of one class have equal attributes (``vars``, as
    values), their ``name`` and the class's `Layer.shape_free_attributes`
    aside; False for an attribute whose comparison is not a plain truth value
    (an array)."""
    try:
        a, b = first.__dict__, other.__dict__
        if a == b:
            return True
        if a.keys() != b.keys():
            return False
        aside = type(first).shape_free_attributes
        for k, v in a.items():
            if k != "name" and k not in aside:
                w = b[k]
                if w is not v and w != v:
                    return False
        return True
    except Exception:  # (an array's `==` is elementwise)
        return False


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
    partition: Partition | None = None,
    mesh_shape: Mapping[str, int] | None = None,
) -> Inference:
    """Resolve every shape of ``model`` from its inputs, allocating nothing.

    Each input is a shape tuple (``("B", 20)``, ``(2, 20)``, with ``None`` for
    unknown dims), a `TensorSpec`, or an array of any backend (only its shape and
    dtype are read). A functional `Model` may be called with no inputs: its
    `Input` specs are used. ``dtype`` is the parameters' dtype where the layer
    leaves it to the model. When the ``batch_dim`` of the inputs is symbolic,
    a parameter whose shape depends on it is a `ShapeError` at that layer.

    With ``partition`` (a `Partition`) and ``mesh_shape`` (``{"dp": 2, "tp":
    4}``), the result also says how the parameters split over a device mesh:
    `Inference.shards`, `Inference.param_bytes_per_device` and
    `Inference.memory_per_device` (see `Inference.partitioned`).

    Raises `ShapeError` naming the layer path for any shape problem, and naming
    the parameter for a partition that does not fit it.
    """
    result = _infer(model, inputs, dtype, batch_dim)
    if partition is None:
        if mesh_shape is not None:
            raise ValueError("mesh_shape= goes with partition= (a ls.Partition)")
        return result
    if mesh_shape is None:
        raise ValueError("partition= needs mesh_shape= ({axis: size}, e.g. {'dp': 2, 'tp': 4})")
    return result.partitioned(partition, mesh_shape)


def _infer(model: Layer, inputs: tuple[Any, ...], dtype: Any, batch_dim: int | None
           ) -> Inference:
    dtype = normalize_dtype(dtype)
    specs = _inputs(model, inputs, dtype)
    cache = model._infer_cache if isinstance(model, Module) else None
    key = (specs, dtype, batch_dim)
    if cache is not None:
        with _CACHE_LOCK:
            hit = cache.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
    run = _Pass(dtype, _batch_symbols(specs, batch_dim))
    outputs = run.run(model, specs)
    if run.batch_error is not None:
        raise run.batch_error
    result = Inference(model, specs, outputs, run.raw, tuple(run.assumptions), dtype,
                       tuple(run.bounds), run.sources, run.shared_replays, run.segments)
    if cache is not None:
        with _CACHE_LOCK:
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))  # the oldest entry
            cache[key] = result
    return result
