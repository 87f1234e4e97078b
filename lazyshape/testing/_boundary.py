"""Boundary probes: where a rule starts to accept, against the framework.

For an input the rule accepts, each int dim is lowered until the rule rejects:
the smallest size it accepts, ``b``, and the one below, ``b - 1``. The layer's
own ``forward`` then runs at both *without the rule* (`raw_forward`: parameters
from its ``param_specs``, arrays of a framework): the framework must accept at
``b`` and reject at ``b - 1`` (an empty result counts as rejecting: lazyshape
refuses empty outputs where frameworks return them). A rule off by one at its
edge, accepting too-short inputs or refusing an output of size 1, disagrees
with the framework exactly there, where random sizes rarely land.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import lazyshape as ls
from lazyshape._layer import Context, Layer
from lazyshape._specs import TensorSpec

from ._oracles import FLOATING, as_numpy_dtype
from ._primitives import Specs

__all__ = ["accepts", "smallest_accepted", "raw_forward", "rejects", "describe_raw", "with_dim",
           "BOUNDARY_BACKENDS"]

#: the backends a boundary is judged on, in order of preference: torch's
#: kernels raise where an input is too small; NumPy's would return empty arrays
BOUNDARY_BACKENDS = ("torch", "jax")


def accepts(layer: Layer, specs: Specs) -> bool:
    """Whether ``layer``'s rule accepts ``specs`` (a crash counts as not)."""
    try:
        ls.infer(layer, *specs, batch_dim=None)
    except Exception:  # noqa: BLE001 - ShapeError, or a crash another property reports
        return False
    return True


def with_dim(specs: Specs, i: int, k: int, size: int) -> Specs:
    """``specs`` with dim ``k`` of input ``i`` set to ``size``."""
    shape = list(specs[i].shape)
    shape[k] = size
    out = list(specs)
    out[i] = TensorSpec(tuple(shape), specs[i].dtype)
    return tuple(out)


def smallest_accepted(layer: Layer, specs: Specs, i: int, k: int) -> int:
    """The smallest size of dim ``k`` of input ``i`` the rule accepts, going down
    from the size in ``specs`` (which it accepts); 0 when it accepts down to 0."""
    size = int(specs[i].shape[k])
    while size > 0 and accepts(layer, with_dim(specs, i, k, size - 1)):
        size -= 1
    return size


def raw_forward(layer: Layer, specs: Specs, backend: str, seed: int = 0) -> Any:
    """The output shapes of ``layer.forward`` on ``backend`` arrays of ``specs``,
    its parameters made from ``layer.param_specs`` (small uniform values) —
    the rule is not asked; or the exception the framework (or the parameter
    rule) raised."""
    rng = np.random.default_rng(seed)
    try:
        local = layer.param_specs(*specs) if layer.has_params else {}
        params = {}
        for name, p in local.items():
            dtype = p.dtype or "float32"
            shape = tuple(int(d) for d in p.shape)
            drawn: np.ndarray[Any, Any] = (
                rng.uniform(-0.1, 0.1, shape) if dtype in FLOATING else np.zeros(shape)
            )
            params[name] = ls.asarray(drawn.astype(as_numpy_dtype(dtype)), backend)
        xs = []
        for s in specs:
            shape = tuple(int(d) for d in s.shape)
            floating = s.dtype in FLOATING
            x: np.ndarray[Any, Any] = (
                rng.standard_normal(shape) if floating else rng.integers(0, 2, shape)
            )
            xs.append(ls.asarray(x.astype(as_numpy_dtype(s.dtype)), backend))
        if layer.needs_context:
            y = layer.forward(params, *xs, ctx=Context(training=False))
        else:
            y = layer.forward(params, *xs)
    except Exception as e:  # noqa: BLE001 - the framework's rejection, whatever its type
        return e
    ys = y if isinstance(y, (tuple, list)) else (y,)
    return tuple(tuple(int(d) for d in getattr(a, "shape", ())) for a in ys)


def rejects(got: Any) -> bool:
    """Whether a `raw_forward` result is a rejection: an exception, or an empty output."""
    if isinstance(got, BaseException):
        return True
    return any(0 in shape for shape in got)


def describe_raw(got: Any) -> str:
    if isinstance(got, BaseException):
        text = str(got).strip().splitlines()[0] if str(got).strip() else ""
        return f"{type(got).__name__}: {text}"[:160]
    return "; ".join(str(s) for s in got)

