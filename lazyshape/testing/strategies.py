"""Hypothesis strategies for dims, shapes, specs, layers and whole models.

Every strategy is an ordinary hypothesis strategy: combine them with ``map``,
``flatmap``, ``st.tuples`` and ``@st.composite``. Sizes are small by default
(sides of at most 6, ranks of at most 4) so that the computations the
properties run stay cheap.

- `dims`, `shapes`, `specs`: ints, symbols (``B``, ``H``) and expressions over
  them (``2*H``, ``(H - 1)//2 + 1``, ``max(W, 3)``);
- `layers`: random layers of the registered kinds, hyperparameters drawn from
  each kind's entry; `inputs` / `invalid_inputs`: input specs a given layer
  accepts / must reject; `probes`: mutations of valid inputs (rank, zero and
  changed sizes, dtypes) whose validity an oracle decides;
- `symbolize`: the same inputs with dims replaced by symbols and expressions,
  with the binding that gives the concrete inputs back;
- `models`: random `Sequential`s and functional DAGs with merges, with input
  specs they accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.strategies import SearchStrategy

import lazyshape as ls
from lazyshape._dims import Dim, Sym
from lazyshape._errors import ShapeError
from lazyshape._layer import Layer
from lazyshape._specs import TensorSpec

from ._primitives import (
    FLOAT_DTYPES,
    PROBE_DTYPES,
    SYMBOLS,
    Specs,
    batch_sizes,
    default_inputs,
    dims,
    dtypes,
    shapes,
    sides,
    specs,
)
from ._registry import LayerEntry, entries, entry_for

__all__ = [
    "SYMBOLS",
    "FLOAT_DTYPES",
    "PROBE_DTYPES",
    "dims",
    "shapes",
    "specs",
    "dtypes",
    "layers",
    "inputs",
    "invalid_inputs",
    "probes",
    "symbolize",
    "models",
    "default_inputs",
    "accepted_inputs",
    "accepted_ranks",
    "PROBE_SIDES",
    "batch_sizes",
    "sides",
    "MAX_ELEMENTS",
]

#: symbol names the strategies draw from
# -- layers and their inputs -----------------------------------------------------


def _entries_of(kinds: Sequence[str | type] | None) -> list[LayerEntry]:
    table = entries()
    if kinds is None:
        return [table[k] for k in sorted(table)]
    out = []
    for k in kinds:
        name = k if isinstance(k, str) else k.__name__
        if name not in table:
            raise KeyError(f"no harness entry for layer kind {name!r}; registered: {sorted(table)}")
        out.append(table[name])
    return out


def layers(kinds: Sequence[str | type] | None = None) -> SearchStrategy[Layer]:
    """A layer of one of ``kinds`` (default: every registered kind), with
    hyperparameters drawn from the kind's entry."""
    chosen = _entries_of(kinds)
    return st.sampled_from(chosen).flatmap(lambda e: e.layers)


def inputs(layer: Layer) -> SearchStrategy[Specs]:
    """Tuples of input specs ``layer`` accepts (from its kind's entry)."""
    entry = entry_for(layer)
    return default_inputs(layer) if entry is None else entry.inputs(layer)


#: the side every dim takes, in turn, when `accepted_inputs` probes a layer
PROBE_SIDES = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16)
#: the ranks and input counts `accepted_inputs` probes
PROBE_RANKS = (0, 1, 2, 3, 4, 5)
PROBE_ARITIES = (1, 2, 3)


def _accepts(layer: Layer, xs: Specs) -> bool:
    try:
        out = ls.infer(layer, *xs, batch_dim=None).outputs
    except ShapeError:
        return False
    except Exception:  # noqa: BLE001 - a rule crashing here is not an accepted input;
        return False  # the examples drawn elsewhere report the crash (property b)
    return all(_numel(o) <= MAX_ELEMENTS for o in out if not o.is_symbolic)


def accepted_ranks(layer: Layer, dtype: str = "float32") -> tuple[int, dict[int, tuple[int, ...]]]:
    """What ``layer``'s rule accepts, found by asking it: for the first input
    count (1, 2, 3) it accepts anything at, ``(count, {rank: sides})`` where
    ``sides`` are the sizes ``s`` of `PROBE_SIDES` for which ``count`` inputs of
    shape ``(s,) * rank`` (``dtype``) are accepted; ``(0, {})`` when nothing is.
    Costs one ``ls.infer`` per (count, rank, side) until a count is found."""
    for arity in PROBE_ARITIES:
        found: dict[int, tuple[int, ...]] = {}
        for rank in PROBE_RANKS:
            sides = PROBE_SIDES if rank else (1,)
            ok = tuple(
                side for side in sides
                if _accepts(layer, (TensorSpec((side,) * rank, dtype),) * arity)
            )
            if ok:
                found[rank] = ok
        if found:
            return arity, found
    return 0, {}


def accepted_inputs(layer: Layer, dtype: str = "float32") -> SearchStrategy[Specs] | None:
    """Input tuples ``layer`` is likely to accept, for a layer that declares
    none: the ranks and input count its rule accepts (`accepted_ranks`), each
    dim drawn from the sides accepted at that rank, so a rank-3 ``(N, C, L)``
    layer gets rank-3 inputs long enough for its kernel as often as a rank-1
    layer gets vectors. Every draw is still a candidate the rule decides on
    (mixed sides may be rejected). None when the rule accepts no probe."""
    arity, found = accepted_ranks(layer, dtype)
    if not found:
        return None

    def shape_of(rank: int) -> SearchStrategy[tuple[int, ...]]:
        return st.tuples(*[st.sampled_from(found[rank]) for _ in range(rank)])

    one = st.sampled_from(sorted(found)).flatmap(
        lambda rank: shape_of(rank).map(lambda shape: TensorSpec(shape, dtype))
    )
    return st.tuples(*[one] * arity)


def invalid_inputs(layer: Layer) -> SearchStrategy[Specs]:
    """Tuples of input specs ``layer`` must reject (from its kind's entry;
    `probes` of valid inputs when the entry declares none)."""
    entry = entry_for(layer)
    if entry is None or entry.invalid is None:
        raise LookupError(f"no invalid-input strategy registered for {type(layer).__name__}")
    return entry.invalid(layer)


def _mutate_one(draw: Any, spec: TensorSpec, dtype_pool: Sequence[str]) -> TensorSpec:
    shape = list(spec.shape)
    op = draw(st.sampled_from(["rank+", "rank-", "zero", "resize", "dtype", "one"]))
    if op == "rank+":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 3)))
    elif op == "rank-" and shape:
        del shape[draw(st.integers(0, len(shape) - 1))]
    elif op in ("zero", "resize", "one") and shape:
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = {"zero": 0, "one": 1}.get(op) or draw(st.integers(1, 8))
    elif op == "dtype" and dtype_pool:
        return TensorSpec._make(spec.shape, draw(st.sampled_from(list(dtype_pool))))
    return TensorSpec._make(tuple(shape), spec.dtype)


def probes(
    specs_: Specs, dtypes: Sequence[str] = PROBE_DTYPES, max_mutations: int = 2
) -> SearchStrategy[Specs]:
    """Mutations of valid inputs ``specs_``: a dim added or dropped, a size zeroed,
    set to 1 or changed, a dtype switched to one of ``dtypes``. Whether the
    result is valid is for an oracle to say."""

    @st.composite
    def build(draw: Any) -> Specs:
        out = list(specs_)
        for _ in range(draw(st.integers(1, max_mutations))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] = _mutate_one(draw, out[i], dtypes)
        return tuple(out)

    return build()


# -- symbolic versions of concrete inputs ------------------------------------------


@st.composite
def symbolize(
    draw: Any, specs_: Specs, batch_axes: Sequence[int | None] | None = None
) -> tuple[Specs, dict[str, int]]:
    """The concrete inputs ``specs_`` with some dims replaced by symbols or
    expressions over them (``S``, ``S + 2``, ``2*S``), and ``{symbol: value}``
    such that binding gives ``specs_`` back. Equal sizes may share a symbol.
    The batch dims (``batch_axes``, default 0) become ``B`` when they agree."""
    env: dict[str, int] = {}
    shared: dict[int, Dim] = {}
    share = draw(st.booleans())
    counter = [0]

    def fresh(value: int) -> Sym:
        counter[0] += 1
        name = f"S{counter[0]}"
        env[name] = value
        return Sym(name)

    axes = list(batch_axes) if batch_axes is not None else [0] * len(specs_)
    batch_values = {
        s.shape[a] for s, a in zip(specs_, axes, strict=False) if a is not None and a < s.ndim
    }
    batch_sym = len(batch_values) == 1 and next(iter(batch_values)) >= 1 and draw(st.booleans())
    # at least one dim becomes symbolic when any can
    places = [(i, k) for i, s in enumerate(specs_) for k, d in enumerate(s.shape) if int(d) >= 1]
    forced = draw(st.sampled_from(places)) if places and not batch_sym else None
    out: list[TensorSpec] = []
    for i, (spec, axis) in enumerate(zip(specs_, axes, strict=False)):
        shape: list[Dim] = []
        for k, d in enumerate(spec.shape):
            assert type(d) is int
            if batch_sym and k == axis:
                env["B"] = d
                shape.append(Sym("B"))
                continue
            if d < 1 or ((i, k) != forced and not draw(st.booleans())):
                shape.append(d)
                continue
            if share and d in shared:
                shape.append(shared[d])
                continue
            how = draw(st.sampled_from(["sym", "plus", "times"]))
            e: Dim
            if how == "plus" and d > 1:
                c = draw(st.integers(1, d - 1))
                e = fresh(d - c) + c
            elif how == "times" and d % 2 == 0:
                e = fresh(d // 2) * 2
            else:
                e = fresh(d)
            shared[d] = e
            shape.append(e)
        out.append(TensorSpec._make(tuple(shape), spec.dtype))
    return tuple(out), env


# -- whole models ----------------------------------------------------------------

#: the largest tensor (in elements) a random model keeps
MAX_ELEMENTS = 2048


def _numel(spec: TensorSpec) -> int:
    n = 1
    for d in spec.shape:
        n *= int(d)
    return n


def _try(layer: Layer, xs: Specs) -> TensorSpec | None:
    """The single output spec of ``layer`` on ``xs``, or None when it rejects them."""
    try:
        out = ls.infer(layer, *xs, batch_dim=None).outputs
    except ShapeError:
        return None
    if len(out) != 1 or out[0].is_symbolic or _numel(out[0]) > MAX_ELEMENTS:
        return None
    return out[0]


def _chainable(kinds: Sequence[str | type] | None) -> list[LayerEntry]:
    return [e for e in _entries_of(kinds) if e.chain_arity == 1]


def _next_layer(
    draw: Any, spec: TensorSpec, pool: list[LayerEntry], tries: int = 4
) -> tuple[Layer, TensorSpec] | None:
    fits = [e for e in pool if e.accepts is None or e.accepts(spec)]
    if not fits:
        return None
    for _ in range(tries):
        entry = draw(st.sampled_from(fits))
        layer = draw(entry.layers)
        out = _try(layer, (spec,))
        if out is not None:
            return layer, out
    return None


def _start_spec(draw: Any) -> TensorSpec:
    ndim = draw(st.integers(2, 4))
    shape = (draw(batch_sizes()), *draw(hnp.array_shapes(min_dims=ndim - 1, max_dims=ndim - 1,
                                                          min_side=1, max_side=5)))
    return TensorSpec._make(shape, "float32")


@st.composite
def _sequential(draw: Any, max_layers: int, kinds: Any) -> tuple[Layer, Specs]:
    pool = _chainable(kinds)
    spec = start = _start_spec(draw)
    chain: list[Layer] = []
    for _ in range(draw(st.integers(1, max_layers))):
        nxt = _next_layer(draw, spec, pool)
        if nxt is None:
            break
        layer, spec = nxt
        chain.append(layer)
    if not chain:
        chain.append(ls.Identity())
    if len(chain) >= 3 and draw(st.booleans()):  # nest a block: dotted paths ("1.0")
        i = draw(st.integers(0, len(chain) - 2))
        j = draw(st.integers(i + 1, len(chain)))
        chain[i:j] = [ls.Sequential(*chain[i:j])]
    return ls.Sequential(*chain), (start,)


class _Tensor:
    """A tensor of a random DAG under construction: its symbolic tensor and its
    concrete spec."""

    __slots__ = ("sym", "spec")

    def __init__(self, sym: Any, spec: TensorSpec) -> None:
        self.sym = sym
        self.spec = spec


def _symbolic_input(spec: TensorSpec, index: int, symbolic: bool) -> Any:
    if not symbolic:
        return ls.Input(spec.shape, spec.dtype)
    shape = ["B" if k == 0 else f"D{index}_{k}" for k in range(spec.ndim)]
    return ls.Input(shape, spec.dtype)


@st.composite
def _dag(draw: Any, max_layers: int, kinds: Any) -> tuple[Layer, Specs]:
    pool = _chainable(kinds)
    n_inputs = draw(st.integers(1, 2))
    first = _start_spec(draw)
    in_specs = [first]
    if n_inputs == 2:  # a second input: same shape, or another last dim
        last = draw(st.sampled_from([first.shape[-1], draw(sides(1, 5))]))
        in_specs.append(TensorSpec._make((*first.shape[:-1], last), "float32"))
    symbolic = draw(st.booleans())
    try:
        ins = [_symbolic_input(s, i, symbolic) for i, s in enumerate(in_specs)]
        live = [_Tensor(t, s) for t, s in zip(ins, in_specs, strict=True)]
        for _ in range(draw(st.integers(1, max_layers))):
            if len(live) >= 2 and draw(st.integers(0, 2)) == 0:
                merged = _merge(draw, live)
                if merged is not None:
                    live.append(merged)
                continue
            src = draw(st.sampled_from(live))
            nxt = _next_layer(draw, src.spec, pool)
            if nxt is None:
                continue
            layer, out = nxt
            live.append(_Tensor(layer(src.sym), out))
        outs = [live[-1].sym]
        if len(live) > 2 and draw(st.booleans()):
            other = draw(st.sampled_from(live[len(ins):-1] or live[-1:]))
            if other.sym is not outs[0]:
                outs.append(other.sym)
        model = ls.Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0])
    except ShapeError:
        if symbolic:  # a rule that needs concrete sizes at definition: declare them
            again: tuple[Layer, Specs] = draw(_dag(max_layers, kinds))
            return again
        raise
    return model, tuple(in_specs)


def _merge(draw: Any, live: list[_Tensor]) -> _Tensor | None:
    a = draw(st.sampled_from(live))
    b = draw(st.sampled_from(live))
    sa, sb = a.spec, b.spec
    if sa.ndim != sb.ndim or sa.ndim == 0:
        return None
    if sa.shape[:-1] == sb.shape[:-1] and sa.shape[-1] != sb.shape[-1]:
        kind = draw(st.sampled_from(["concat", "project"]))
        if kind == "concat":
            out = TensorSpec._make((*sa.shape[:-1], sa.shape[-1] + sb.shape[-1]), sa.dtype)
            return _Tensor(ls.Concat(dim=-1)(a.sym, b.sym), out)
        b = _Tensor(ls.Linear(int(sa.shape[-1]))(b.sym), sa)
        sb = sa
    if sa.shape != sb.shape:
        return None
    kind = draw(st.sampled_from(["add", "multiply", "concat"]))
    if kind == "concat":
        axis = draw(st.integers(1, sa.ndim - 1)) if sa.ndim > 1 else 0
        shape = list(sa.shape)
        shape[axis] = int(shape[axis]) * 2
        if _numel(TensorSpec._make(tuple(shape), sa.dtype)) > MAX_ELEMENTS:
            return None
        return _Tensor(ls.Concat(dim=axis)(a.sym, b.sym), TensorSpec._make(tuple(shape), sa.dtype))
    merge = ls.Add() if kind == "add" else ls.Multiply()
    return _Tensor(merge(a.sym, b.sym), sa)


def models(
    max_layers: int = 5,
    *,
    kinds: Sequence[str | type] | None = None,
    functional: bool | None = None,
) -> SearchStrategy[tuple[Layer, Specs]]:
    """``(model, input specs)``: a random `Sequential` (sometimes with a nested
    block) or functional DAG (one or two inputs, merges by Add, Multiply and
    Concat, sometimes two outputs, `Input`s declared concrete or symbolic),
    built from layers of ``kinds`` (default: every registered chainable kind),
    that accepts the input specs. Tensors stay under `MAX_ELEMENTS` elements."""
    seq = _sequential(max_layers, kinds)
    dag = _dag(max_layers, kinds)
    if functional is None:
        return st.one_of(seq, dag)
    return dag if functional else seq
