"""``ls.export``: a built (or unbuilt) model exported by its framework with
lazyshape's own symbols as the dynamic dims.

The core plans (`ExportPlan`): which dim of which input is which symbol, each
symbol's valid range (`Inference.valid_ranges`, derived from the rules),
symbols the rules found equal (one dynamic dim), and example sizes inside the
ranges for which the whole model resolves; the backend (its ``export``) hands
that to its framework: ``torch.export`` with ``Dim(name, min=, max=)``,
``jax.export`` with ``symbolic_shape`` and constraints.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._backends import get_backend
from ._dims import Sym, bind, format_shape
from ._errors import ShapeError
from ._layer import Layer
from ._propagate import Inference, infer
from ._specs import TensorSpec

__all__ = ["export", "ExportPlan"]


@dataclass(frozen=True)
class ExportPlan:
    """What a backend needs to export a model.

    ``inputs``: the symbolic input specs; ``dims``: per input, ``{axis: symbol
    name}`` for its dynamic dims (the others are static); ``ranges``: ``{name:
    (lowest, highest or None)}``, inclusive; ``examples``: concrete input specs
    inside the ranges, one distinct size per symbol, for which the model
    resolves; ``conditions``: what must also hold and is not a range (text);
    ``inference``: the symbolic inference."""

    inputs: tuple[TensorSpec, ...]
    dims: tuple[dict[int, str], ...]
    ranges: dict[str, tuple[int, int | None]]
    examples: tuple[TensorSpec, ...]
    conditions: tuple[str, ...]
    inference: Inference


def _backend_of(model: Any) -> str | None:
    rt = getattr(model, "_rt", None)
    return getattr(getattr(rt, "config", None), "backend", None) or None


def export(model: Any, *inputs: Any, backend: str | None = None) -> Any:
    """Export ``model`` with the named symbols of ``inputs`` as dynamic dims.

    ``model``: a built model (``ls.build(...)``, materialized or not) or a
    lazyshape model, built on ``backend``. ``inputs``: one spec per input, a
    shape such as ``("B", 3, "H", "W")`` or a `TensorSpec` (default: a
    functional model's declared inputs); each dim is a size (static) or a
    symbol name (dynamic). Each symbol's valid range comes from the rules (a
    LeNet needs ``H >= 16``; GPT-2 ``T <= 1024``); symbols the rules found
    equal are one dynamic dim. An unmaterialized model is materialized at
    example sizes inside the ranges.

    Returns the framework's exported program: a ``torch.export.ExportedProgram``
    on torch, a ``jax.export.Exported`` of ``apply(variables, *xs)`` on JAX.
    Raises `ShapeError` when the inputs don't fit the model, and `ValueError`
    when a parameter's shape depends on a dynamic dim, a dim is an anonymous
    ``None`` or an expression, or the backend has no export format."""
    owner = _backend_of(model)
    if owner is not None:
        if backend is not None and backend != owner:
            raise ValueError(f"the model was built on {owner!r}; got backend={backend!r}")
        built, layer, name = model, model._rt.model, owner
    elif isinstance(model, Layer):
        if backend is None:
            raise ValueError("ls.export of an unbuilt model needs backend= ('torch' or 'jax')")
        built, layer, name = None, model, backend
    else:
        raise TypeError(f"ls.export takes a built or lazyshape model, got {type(model).__name__}")
    target = get_backend(name)
    dtype = built._rt.config.dtype if built is not None else "float32"
    plan = plan_export(layer, inputs, dtype)
    if built is None:
        from ._build import build

        built = build(layer, name)
    if not built.initialized:
        built.materialize(*plan.examples)
    try:
        return target.export(built, plan)
    except NotImplementedError as e:
        raise ValueError(
            f"the {name} backend has no export format ({e}); build on 'torch' or 'jax'"
        ) from None


def plan_export(layer: Layer, inputs: tuple[Any, ...], dtype: str = "float32") -> ExportPlan:
    """The `ExportPlan` of ``layer`` on symbolic ``inputs`` (see `export`)."""
    inf = infer(layer, *inputs, dtype=dtype)
    specs = inf.inputs
    # symbols the rules found equal are one dynamic dim
    parent: dict[str, str] = {}

    def find(s: str) -> str:
        while parent.get(s, s) != s:
            s = parent[s]
        return s

    for _, a, b in inf.assumptions:
        if isinstance(a, Sym) and isinstance(b, Sym):
            ra, rb = sorted((find(a.name), find(b.name)))
            if ra != rb:
                parent[rb] = ra
    dims: list[dict[int, str]] = []
    for i, s in enumerate(specs):
        axes: dict[int, str] = {}
        for k, d in enumerate(s.shape):
            if type(d) is int:
                continue
            if not isinstance(d, Sym) or d.name.startswith("?"):
                what = "an unnamed dim (None)" if isinstance(d, Sym) else f"the expression {d}"
                raise ValueError(
                    f"input {i} dim {k} is {what}: export takes a size or a symbol name per dim"
                )
            axes[k] = find(d.name)
        dims.append(axes)
    for name, needs in inf.unresolved.items():
        raise ValueError(
            f"`{name}` of shape {format_shape(inf.params[name].shape)} depends on "
            f"{', '.join(sorted(needs))}: a parameter's size cannot be dynamic; give those "
            "dims a size"
        )
    ranges: dict[str, tuple[int, int | None]] = {}
    for sym, (lo, hi) in inf.valid_ranges.items():
        rep = find(sym)
        old_lo, old_hi = ranges.get(rep, (1, None))
        new_hi = hi if old_hi is None else old_hi if hi is None else min(hi, old_hi)
        ranges[rep] = (max(lo, old_lo), new_hi)
    names = sorted({n for axes in dims for n in axes.values()})
    reps = {sym: find(sym) for sym in inf.valid_ranges}
    examples = _examples(layer, inf, specs, dims, names, ranges, reps)
    return ExportPlan(specs, tuple(dims), {n: ranges.get(n, (1, None)) for n in names},
                      examples, inf.conditions, inf)


def _candidates(lo: int, hi: int | None) -> list[int]:
    start = max(lo, 2)  # 0 and 1 are special to tracers: never an example size
    pool = set(range(start, start + 12)) | {8, 16, 32, 64, 128, 224, 256}
    return sorted(v for v in pool if v >= start and (hi is None or v <= hi))


def _combinations(lists: list[list[int]]) -> Iterator[tuple[int, ...]]:
    """Value combinations, those with smaller indices first (distinct values first)."""
    combos = sorted(itertools.product(*(range(len(c)) for c in lists)),
                    key=lambda idx: (sum(idx), idx))
    distinct: list[tuple[int, ...]] = []
    rest: list[tuple[int, ...]] = []
    for idx in combos[:5000]:
        values = tuple(c[i] for c, i in zip(lists, idx, strict=True))
        (distinct if len(set(values)) == len(values) else rest).append(values)
    yield from distinct
    yield from rest


def _examples(
    layer: Layer,
    inf: Inference,
    specs: tuple[TensorSpec, ...],
    dims: list[dict[int, str]],
    names: list[str],
    ranges: dict[str, tuple[int, int | None]],
    rep: dict[str, str],
) -> tuple[TensorSpec, ...]:
    """Example input specs: the first combination of candidate sizes for which
    the model resolves, preferring one where no size inside the model that
    depends on a symbol is 0 or 1 (tracers specialize those)."""
    lists = [_candidates(*ranges.get(n, (1, None))) for n in names]
    if any(not c for c in lists):
        empty = [n for n, c in zip(names, lists, strict=True) if not c]
        raise ValueError(f"no example size of at least 2 inside the valid range of {empty}")
    inner = [d for r in inf.layers for o in r.outputs for d in o.shape if type(d) is not int]
    fallback = None
    for values in _combinations(lists):
        env = dict(zip(names, values, strict=True))
        concrete = tuple(
            TensorSpec._make(tuple(env[axes[k]] if k in axes else d
                                   for k, d in enumerate(s.shape)), s.dtype)
            for s, axes in zip(specs, dims, strict=True)
        )
        try:
            infer(layer, *concrete, dtype=inf.dtype)
        except ShapeError:
            continue
        full = {sym: env[r] for sym, r in rep.items() if r in env}
        try:
            sizes = [bind(d, full) for d in inner]
        except ZeroDivisionError:
            continue
        if all(type(v) is not int or v > 1 for v in sizes):
            return concrete
        fallback = fallback or concrete
    if fallback is not None:
        return fallback
    raise ValueError(f"no example sizes for {names} inside their ranges satisfy the model")
