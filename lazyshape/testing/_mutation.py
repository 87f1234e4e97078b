"""A self-test for layer authors: are the examples strong enough to catch a
wrong rule? `mutation_score` derives wrong versions (mutants) of the author's
own rule, runs `check_layer` on each with the same settings, and reports which
survived.

The mutants, each a subclass of the layer class overriding one rule:

- ``out[k]+1`` / ``out[k]-1``: output dim ``k`` (0, -1, -2) one more or less;
- ``dtype float32``: every output dtype replaced by float32;
- ``floor<->ceil``: every division in the rule's output dims rounded the other
  way (the rule run on symbolic inputs gives its output dims as expressions;
  they are bound with `bind_rounding_up`);
- ``accepts below edge``: an input the rule rejects is accepted when the same
  input with one dim one larger is (the edge widened by one);
- ``rejects at edge``: an input the rule accepts is rejected when the same
  input with one dim one smaller is not (the edge narrowed by one);
- ``param[k]+1``: dim ``k`` (0, -1) of the first parameter one larger.

A mutant that changed nothing on any example (an output of lower rank, a layer
without parameters) is reported as not applicable, not as a survivor.
"""

from __future__ import annotations

import contextvars
import copy
import functools
from collections.abc import Callable, Mapping
from types import MethodType
from typing import Any

import lazyshape as ls
from lazyshape._dims import Sym, bind_rounding_up
from lazyshape._errors import ShapeError
from lazyshape._layer import ASSUMED, Layer
from lazyshape._specs import ParamSpec, TensorSpec

from ._check import check_layer
from ._registry import entry_for
from ._report import LayerCheckError

__all__ = ["mutation_score", "MutationReport", "MUTANTS"]


def _as_tuple(out: Any) -> tuple[TensorSpec, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _like(original: Any, outs: tuple[TensorSpec, ...]) -> Any:
    return outs if isinstance(original, (tuple, list)) else outs[0]


def _bump(shape: tuple[Any, ...], k: int, delta: int) -> tuple[Any, ...] | None:
    if not -len(shape) <= k < len(shape):
        return None
    out = list(shape)
    out[k] = out[k] + delta
    return tuple(out)


class _Mutant:
    """One way of getting a rule wrong: ``output`` rewrites the rule's output for
    its inputs, ``params`` its parameters; None means "unchanged"."""

    def __init__(self, name: str, output: Callable[..., Any] | None = None,
                 params: Callable[..., Any] | None = None) -> None:
        self.name = name
        self.output = output
        self.params = params


def _out_dim(k: int, delta: int) -> _Mutant:
    def output(rule: Callable[..., Any], specs: tuple[TensorSpec, ...]) -> Any:
        original = rule(*specs)
        outs = _as_tuple(original)
        shape = _bump(outs[0].shape, k, delta)
        if shape is None:
            return None
        return _like(original, (TensorSpec(shape, outs[0].dtype), *outs[1:]))

    return _Mutant(f"out[{k}]{delta:+d}", output=output)


def _float32(rule: Callable[..., Any], specs: tuple[TensorSpec, ...]) -> Any:
    original = rule(*specs)
    outs = _as_tuple(original)
    if all(o.dtype == "float32" for o in outs):
        return None
    return _like(original, tuple(TensorSpec(o.shape, "float32") for o in outs))


def _symbolic(rule: Callable[..., Any], specs: tuple[TensorSpec, ...]) -> Any:
    """The rule on ``specs`` with every positive int dim a symbol (in a context
    of its own: its assumptions stay out of the running pass)."""

    def call() -> Any:
        ASSUMED.set(None)
        return rule(*specs)

    return contextvars.copy_context().run(call)


def _rounded_the_other_way(rule: Callable[..., Any], specs: tuple[TensorSpec, ...]) -> Any:
    original = rule(*specs)
    values: dict[str, int] = {}
    sym_specs = []
    for i, s in enumerate(specs):
        shape: list[Any] = []
        for k, d in enumerate(s.shape):
            if type(d) is int and d > 0:
                name = f"_in{i}_{k}"
                values[name] = d
                shape.append(Sym(name))
            else:
                shape.append(d)
        sym_specs.append(TensorSpec(tuple(shape), s.dtype))
    try:
        symbolic = _as_tuple(_symbolic(rule, tuple(sym_specs)))
    except Exception:  # noqa: BLE001 - a rule that can't run symbolically: no mutant
        return None
    outs = _as_tuple(original)
    changed = False
    new = []
    for out, sym in zip(outs, symbolic, strict=False):
        shape = list(out.shape)
        for k, (d, e) in enumerate(zip(out.shape, sym.shape, strict=False)):
            if type(d) is int and type(e) is not int:
                flipped = bind_rounding_up(e, values)
                if type(flipped) is int and flipped >= 0 and flipped != d:
                    shape[k] = flipped
                    changed = True
        new.append(TensorSpec(tuple(shape), out.dtype))
    return _like(original, (*new, *outs[len(new):])) if changed else None


def _dims(specs: tuple[TensorSpec, ...]) -> list[tuple[int, int]]:
    return [(i, k) for i, s in enumerate(specs) for k, d in enumerate(s.shape)
            if type(d) is int]


def _moved(specs: tuple[TensorSpec, ...], i: int, k: int, delta: int) -> tuple[TensorSpec, ...]:
    shape = list(specs[i].shape)
    shape[k] += delta
    return (*specs[:i], TensorSpec(tuple(shape), specs[i].dtype), *specs[i + 1:])


def _widened(rule: Callable[..., Any], specs: tuple[TensorSpec, ...]) -> Any:
    try:
        rule(*specs)
        return None  # accepted anyway: nothing to widen
    except ShapeError:
        pass
    for i, k in _dims(specs):
        try:
            return rule(*_moved(specs, i, k, 1))  # one more along a dim is accepted
        except ShapeError:
            continue
    return None


def _narrowed(rule: Callable[..., Any], specs: tuple[TensorSpec, ...]) -> Any:
    rule(*specs)  # (a rejection stays one)
    for i, k in _dims(specs):
        if specs[i].shape[k] == 0:
            continue
        try:
            rule(*_moved(specs, i, k, -1))
        except ShapeError:  # the edge: refuse it too
            raise ShapeError("one more along the edge dim (a mutant)", f"{specs}") from None
    return None


def _param_dim(k: int) -> _Mutant:
    def params(rule: Callable[..., Any], specs: tuple[TensorSpec, ...]) -> Any:
        local: Mapping[str, ParamSpec] = rule(*specs)
        if not local:
            return None
        name, p = next(iter(local.items()))
        shape = _bump(tuple(p.shape), k, 1)
        if shape is None:
            return None
        out = dict(local)
        out[name] = ParamSpec(shape, p.dtype, p.init, trainable=p.trainable)
        return out

    return _Mutant(f"param[{k}]+1", params=params)


#: every mutant `mutation_score` derives, by name
MUTANTS: tuple[_Mutant, ...] = (
    *[_out_dim(k, d) for k in (0, -1, -2) for d in (1, -1)],
    _Mutant("dtype float32", output=_float32),
    _Mutant("floor<->ceil", output=_rounded_the_other_way),
    # (the parameter rule too: a rule may check its inputs in both)
    _Mutant("accepts below edge", output=_widened, params=_widened),
    _Mutant("rejects at edge", output=_narrowed),
    _param_dim(0),
    _param_dim(-1),
)


def _rewritten(cls: type[Layer], method: str, rewrite: Callable[..., Any],
               applied: list[bool]) -> Callable[..., Any]:
    """``cls``'s rule ``method`` through ``rewrite``; ``applied[0]`` turns True the
    first time the rewrite changes an answer."""

    def rule_method(self: Layer, *specs: TensorSpec) -> Any:
        rule = MethodType(getattr(cls, method), self)
        changed = rewrite(rule, specs)
        if changed is None:
            return rule(*specs)
        applied[0] = True
        return changed

    rule_method.__name__ = method
    return rule_method


def _mutant_class(cls: type[Layer], mutant: _Mutant, applied: list[bool]) -> type[Layer]:
    """A subclass of ``cls`` whose rule is ``mutant``'s; ``applied[0]`` turns True
    the first time the mutation changes an answer."""
    attrs: dict[str, Any] = {"__module__": cls.__module__}
    if mutant.output is not None:
        attrs["output_spec"] = _rewritten(cls, "output_spec", mutant.output, applied)
    if mutant.params is not None:
        attrs["param_specs"] = _rewritten(cls, "param_specs", mutant.params, applied)
    mutated = type(cls.__name__, (cls,), attrs)
    mutated.__qualname__ = cls.__qualname__
    return mutated


def _recast(layer: Layer, cls: type[Layer]) -> Layer:
    """A copy of ``layer`` (drawn from its kind's entry) as an instance of the
    mutant subclass ``cls``."""
    out = copy.copy(layer)
    out.__class__ = cls
    return out


class MutationReport:
    """What `mutation_score` found: ``killed`` (mutant name -> the property that
    caught it), ``survived`` (names of the mutants no example caught),
    ``not_applicable`` (mutants that changed no answer); ``score`` is the
    share of applicable mutants killed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.killed: dict[str, str] = {}
        self.survived: list[str] = []
        self.not_applicable: list[str] = []

    @property
    def score(self) -> float:
        n = len(self.killed) + len(self.survived)
        return len(self.killed) / n if n else 1.0

    def __str__(self) -> str:
        lines = [f"{self.kind}: {len(self.killed)} of {len(self.killed) + len(self.survived)} "
                 f"mutants killed ({self.score:.0%})"]
        lines += [f"  killed    {name} (property {p})" for name, p in self.killed.items()]
        lines += [f"  SURVIVED  {name}" for name in self.survived]
        lines += [f"  n/a       {name}" for name in self.not_applicable]
        return "\n".join(lines)

    __repr__ = __str__


def mutation_score(layer_class: type[Layer], inputs: Any = None, **check_kwargs: Any
                   ) -> MutationReport:
    """Derive the `MUTANTS` of ``layer_class``'s rule and run `check_layer` on
    each (``inputs`` and ``check_kwargs`` as for `check_layer`: ``hparams``,
    ``max_examples``, ...). The layer itself must pass first (its own failure
    is raised). Returns a `MutationReport`; a survivor means the examples
    (inputs, hyperparameters, count) are too weak to catch that mistake."""
    if not (isinstance(layer_class, type) and issubclass(layer_class, ls.Layer)):
        raise TypeError(f"mutation_score takes a layer class; got {layer_class!r}")
    check_layer(layer_class, inputs, **check_kwargs)
    report = MutationReport(layer_class.__name__)
    entry = entry_for(layer_class)
    registered = entry is not None and entry.layer_type is layer_class
    for mutant in MUTANTS:
        applied = [False]
        cls = _mutant_class(layer_class, mutant, applied)
        layers: Any = cls
        if registered and "hparams" not in check_kwargs:
            assert entry is not None
            layers = entry.layers.map(functools.partial(_recast, cls=cls))
        try:
            check_layer(layers, inputs, **check_kwargs)
        except LayerCheckError as e:
            report.killed[mutant.name] = e.property
            continue
        (report.survived if applied[0] else report.not_applicable).append(mutant.name)
    return report
