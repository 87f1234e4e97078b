"""The layer registry of the harness: one `LayerEntry` per layer kind.

Supporting a layer kind in the harness is one entry: a strategy of layers
(its hyperparameters), a function from a layer to a strategy of input specs it
accepts, optionally one to input specs it must reject, and optionally external
oracles (``torch``, ``jax``, ``onnx``) that compute the output spec with a
framework no one here wrote. Built-in kinds register themselves from
``_entries/<family>.py``; user layers call `register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from lazyshape._layer import Layer
from lazyshape._specs import TensorSpec

from ._primitives import Specs, default_inputs

__all__ = ["LayerEntry", "Oracle", "register", "entry_for", "entries", "kinds"]

#: ``oracle(layer, specs) -> ((shape, dtype), ...)``: the output(s) the framework
#: computes for concrete inputs; raising means the framework rejects them.
OracleFn = Callable[[Layer, Specs], Any]


@dataclass(frozen=True)
class Oracle:
    """An external reference for a layer kind's shape rule.

    ``fn(layer, specs)`` returns the framework's output spec(s) as
    ``((shape, dtype), ...)`` (or raises when the framework rejects the inputs;
    `NotApplicable` when it has nothing to say about them).

    - ``dtypes``: whether the oracle models dtypes (torch does; the JAX oracle
      runs every float input as float32 and only judges shapes);
    - ``rejects``: whether a failure of the oracle is meaningful (ONNX shape
      inference infers what it can and seldom rejects: only its successes count).
    """

    name: str
    fn: OracleFn
    dtypes: bool = True
    rejects: bool = True


class NotApplicable(Exception):
    """Raised by an oracle that has nothing to say about these inputs (an
    attribute the framework's op lacks, a layout it cannot express)."""


class Deviation(Exception):
    """Raised by an oracle where lazyshape documents a deliberate deviation
    from the framework and rejects what the framework accepts (torch runs
    ``relu`` on ints and convolutions on unbatched inputs; lazyshape requires
    floating, batched inputs). Counts as the framework rejecting."""


@dataclass(frozen=True)
class LayerEntry:
    """How the harness draws and checks one layer kind.

    - ``layer_type``: the layer class (entries are looked up by exact type,
      then by the nearest registered base class);
    - ``layers``: strategy of layers of this kind (hyperparameters drawn);
    - ``inputs(layer)``: strategy of input-spec tuples the layer accepts;
    - ``invalid(layer)``: strategy of input-spec tuples it must reject (or None);
    - ``oracles``: external references (see `Oracle`);
    - ``batch_axes(layer, specs)``: the batch axis of each input (None: no
      batch dim), for the batch-independence property (default: axis 0 of
      every input of rank >= 2);
    - ``values(layer, index, spec, rng)``: a NumPy array for input ``index``
      (default: standard normal for floats, small non-negative ints, random bools);
    - ``rtol`` / ``atol``: tolerance of the cross-backend agreement;
    - ``accepts(spec)``: a cheap pre-filter used when chaining random models
      (does a single input of this spec have a chance?).
    """

    layer_type: type[Layer]
    layers: SearchStrategy[Layer]
    inputs: Callable[[Layer], SearchStrategy[Specs]]
    invalid: Callable[[Layer], SearchStrategy[Specs]] | None = None
    oracles: tuple[Oracle, ...] = ()
    batch_axes: Callable[[Layer, Specs], tuple[int | None, ...]] | None = None
    values: Callable[[Layer, int, TensorSpec, np.random.Generator], Any] | None = None
    rtol: float = 1e-4
    atol: float = 1e-5
    accepts: Callable[[TensorSpec], bool] | None = None
    #: number of inputs when used in a Sequential chain (None: not chainable)
    chain_arity: int | None = 1

    @property
    def kind(self) -> str:
        return self.layer_type.__name__

    def batch_axes_of(self, layer: Layer, specs: Specs) -> tuple[int | None, ...]:
        if self.batch_axes is None:
            return default_batch_axes(layer, specs)
        return self.batch_axes(layer, specs)


def default_batch_axes(layer: Layer, specs: Specs) -> tuple[int | None, ...]:
    """Axis 0 of every input of rank >= 2 (a vector has no batch dim)."""
    return tuple(0 if s.ndim >= 2 else None for s in specs)


_ENTRIES: dict[type[Layer], LayerEntry] = {}
_LOADED = False




def _load_builtins() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from ._entries import FAMILIES

    for family in FAMILIES:
        importlib.import_module(f"lazyshape.testing._entries.{family}")


def _as_layers(layer_type: type[Layer], hparams: Any) -> SearchStrategy[Layer]:
    if isinstance(hparams, SearchStrategy):
        return hparams.map(lambda hp: layer_type(**hp))
    if isinstance(hparams, Mapping):
        return st.builds(layer_type, **hparams)
    if hparams is None:
        return st.builds(layer_type)
    raise TypeError(
        "hparams is a strategy of layers or of keyword dicts, or a dict of strategies; "
        f"got {type(hparams).__name__}"
    )


def register(
    layer_type: type[Layer] | None = None,
    *,
    hparams: Any = None,
    layers: SearchStrategy[Layer] | None = None,
    inputs: Callable[[Layer], SearchStrategy[Specs]] | None = None,
    invalid: Callable[[Layer], SearchStrategy[Specs]] | None = None,
    oracles: Sequence[Oracle] = (),
    **options: Any,
) -> Any:
    """Register how the harness draws and checks a layer kind; returns the entry
    (or, used as a class decorator without ``layer_type``, the class).

    ``hparams``: a dict of strategies for the constructor's keyword arguments
    (``{"out_features": st.integers(1, 8)}``) or a strategy of such dicts; or
    ``layers``: a strategy of layers of this kind. ``inputs(layer)``: a strategy of tuples of input
    `TensorSpec`s the layer accepts (default: one float32 input of rank 1 to
    4). ``invalid(layer)``: tuples it must reject. Other options are the
    fields of `LayerEntry`.

    Example::

        @lazyshape.testing.register(
            hparams={"out_features": st.integers(1, 8)},
            inputs=lambda layer: st.tuples(lazyshape.testing.specs(min_ndim=1)),
        )
        class MyLinear(ls.Layer): ...
    """
    if layer_type is None:

        def deco(cls: type[Layer]) -> type[Layer]:
            register(cls, hparams=hparams, layers=layers, inputs=inputs, invalid=invalid,
                     oracles=oracles, **options)
            return cls

        return deco
    if inputs is None:
        inputs = default_inputs
    entry = LayerEntry(
        layer_type=layer_type,
        layers=layers if layers is not None else _as_layers(layer_type, hparams),
        inputs=inputs,
        invalid=invalid,
        oracles=tuple(oracles),
        **options,
    )
    _ENTRIES[layer_type] = entry
    return entry


def entry_for(layer: Layer | type[Layer]) -> LayerEntry | None:
    """The entry of a layer (or layer class): exact type first, then the
    nearest registered base class."""
    _load_builtins()
    tp = layer if isinstance(layer, type) else type(layer)
    found = _ENTRIES.get(tp)
    if found is not None:
        return found
    for base in tp.__mro__[1:]:
        if base in _ENTRIES:
            return _ENTRIES[base]
    return None


def entries() -> dict[str, LayerEntry]:
    """``{kind: entry}`` of every registered kind (built-in ones loaded)."""
    _load_builtins()
    return {tp.__name__: e for tp, e in _ENTRIES.items()}


def kinds() -> list[str]:
    """Names of the registered layer kinds."""
    return sorted(entries())
