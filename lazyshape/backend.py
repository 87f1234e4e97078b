"""``lazyshape.backend``: everything a backend needs from the core, in one public
module. The built-in backends (``lazyshape_numpy``, ``lazyshape_torch``,
``lazyshape_jax``) use only this module, the public ``lazyshape`` namespace and
the layer families (``lazyshape.layers.<family>``); a third-party backend needs
nothing else.

A backend is an object implementing `Backend` (name, array modules, build,
``asarray``, ``to_numpy``, placeholders, an evaluation forward), registered in
the ``lazyshape.backends`` entry-point group or with `register_backend`. Its
built model usually:

- holds a `Runtime` (resolution with a per-signature cache, the shape-change
  policy, partial shapes for placeholders, checkpoint checks, initial values in
  every rng mode) and derives from `BuiltModel`;
- allocates each parameter from the `ParamSpec`s of an `Inference` (drawn
  with the backend's RNG through `Runtime.primitives`, or the portable streams
  through `Runtime.portable_values`);
- runs the flat `Program` (`run_program`, or its bound steps: `bind_program`,
  `chain_steps`, `run_steps`), where each node's `LayerRecord` (same index)
  says what the node is: its local parameter specs and its resolved
  hyperparameters, from which a backend builds its native objects;
- keeps per-layer-type overrides (native modules, fast paths) in a
  `NativeRegistry`.

`check_backend` checks a backend object against the protocol and the op set.
"""

from __future__ import annotations

import inspect
from typing import Any

from ._backends import Backend as Backend
from ._backends import backend_for as backend_for
from ._backends import backends as backends
from ._backends import get_backend as get_backend
from ._backends import register_backend as register_backend
from ._backends import to_numpy as to_numpy
from ._backends import unregister_backend as unregister_backend
from ._dims import Dim as Dim
from ._dims import format_shape as format_shape
from ._errors import ShapeError as ShapeError
from ._graph import PNode as PNode
from ._graph import Program as Program
from ._graph import Tracer as Tracer
from ._graph import trace as trace
from ._init import Constant as Constant
from ._init import Initializer as Initializer
from ._init import Normal as Normal
from ._init import Orthogonal as Orthogonal
from ._init import TruncNormal as TruncNormal
from ._init import Uniform as Uniform
from ._init import numpy_dtype as numpy_dtype
from ._init import portable_generator as portable_generator
from ._init import sample_numpy as sample_numpy
from ._layer import Context as Context
from ._layer import Layer as Layer
from ._layer import format_hparam as format_hparam
from ._propagate import Inference as Inference
from ._propagate import LayerRecord as LayerRecord
from ._runtime import RNG_MODES as RNG_MODES
from ._runtime import Binder as Binder
from ._runtime import BuildConfig as BuildConfig
from ._runtime import BuiltModel as BuiltModel
from ._runtime import NativeRegistry as NativeRegistry
from ._runtime import Runtime as Runtime
from ._runtime import Step as Step
from ._runtime import bind_program as bind_program
from ._runtime import chain_steps as chain_steps
from ._runtime import node_values as node_values
from ._runtime import pack_outputs as pack_outputs
from ._runtime import passthrough as passthrough
from ._runtime import render_model as render_model
from ._runtime import run_program as run_program
from ._runtime import run_steps as run_steps
from ._specs import ParamSpec as ParamSpec
from ._specs import Placeholder as Placeholder
from ._specs import TensorSpec as TensorSpec
from ._specs import normalize_dtype as normalize_dtype

__all__ = [
    "Backend", "BuildConfig", "BuiltModel", "Binder", "Constant", "Context", "Dim",
    "Inference", "Initializer", "Layer", "LayerRecord", "NativeRegistry", "Normal", "OPS",
    "Orthogonal", "PNode", "ParamSpec", "Placeholder", "Program", "RNG_MODES", "Runtime",
    "ShapeError", "Step", "TensorSpec", "TruncNormal", "Uniform", "backend_for", "backends",
    "bind_program", "chain_steps", "check_backend", "format_hparam", "format_shape",
    "get_backend", "node_values", "normalize_dtype", "numpy_dtype", "pack_outputs",
    "passthrough", "portable_generator", "register_backend", "render_model", "run_program",
    "run_steps", "sample_numpy", "to_numpy", "trace", "Tracer", "unregister_backend",
]

#: the NN operations every backend's ``ops`` module provides, with the
#: parameters of the ``ls.ops`` function of the same name (which dispatches to it)
OPS = (
    "relu", "gelu", "sigmoid", "silu", "leaky_relu", "softmax", "dropout", "linear", "pad",
    "conv", "conv_transpose", "max_pool", "avg_pool", "adaptive_avg_pool", "embedding",
    "scaled_dot_product_attention", "dot_product_attention", "rotary_embedding", "lstm", "gru",
)

def _parameters(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def check_backend(backend: Backend) -> None:
    """Check a backend object against the protocol: every `Backend` member, with
    the protocol's parameter names, and an ``ops()`` module providing every
    operation of `OPS` with the parameters of its ``ls.ops`` counterpart.
    Raises `AssertionError` listing every difference."""
    from . import ops as ls_ops

    problems: list[str] = []
    for attr in ("name", "array_modules", "order"):
        if not hasattr(backend, attr):
            problems.append(f"no attribute `{attr}`")
    for name, member in vars(Backend).items():
        if name.startswith("_") or not callable(member):
            continue
        mine = getattr(backend, name, None)
        if mine is None or not callable(mine):
            problems.append(f"no method `{name}`")
        elif _parameters(mine) != _parameters(member)[1:]:  # (bound: no `self`)
            problems.append(
                f"`{name}{inspect.signature(mine)}`; the protocol has "
                f"`{name}{inspect.signature(member)}`"
            )
    if not problems and backend.available():
        module = backend.ops()
        for op in OPS:
            fn = getattr(module, op, None)
            want = _parameters(getattr(ls_ops, op))
            if fn is None:
                problems.append(f"ops has no `{op}`")
            elif _parameters(fn) != want:
                problems.append(f"ops.{op}{inspect.signature(fn)}; expected parameters {want}")
    if problems:
        raise AssertionError(
            f"backend {getattr(backend, 'name', backend)!r} does not implement the protocol:\n  "
            + "\n  ".join(problems)
        )
