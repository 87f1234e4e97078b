"""``ls.export`` on torch: ``torch.export.export`` of the built module with a
``torch.export.Dim`` per lazyshape symbol, its range from the rules.

torch's tracer treats a size of 1 as a special case in places (its
``nn.MultiheadAttention`` branches on it): when torch reports that a range
including 1 cannot be served, the symbols it names start at 2, as torch
itself suggests; every other bound is the rules'."""

from __future__ import annotations

import re
from typing import Any

_UNSERVED = re.compile(r"Not all values of (\w+) ")


def _example(spec: Any) -> Any:
    import torch

    from lazyshape.backend import normalize_dtype

    shape = tuple(int(d) for d in spec.shape)
    dtype = getattr(torch, normalize_dtype(spec.dtype))
    if dtype.is_floating_point:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    return torch.zeros(shape, dtype=dtype)  # ids: 0 is in range for any vocabulary


def export(model: Any, plan: Any) -> Any:
    """The ``torch.export.ExportedProgram`` of ``model`` (materialized) on the
    plan's example inputs, each symbol a ``Dim(name, min=, max=)``."""
    import torch
    import torch.fx.experimental._config as fx_config
    from torch.export import Dim

    lows = {name: lo for name, (lo, _) in plan.ranges.items()}
    args = tuple(_example(s) for s in plan.examples)
    training = model.training
    model.eval()
    try:
        while True:
            dims = {name: Dim(name, min=lows[name], max=hi) if hi is not None
                    else Dim(name, min=lows[name]) for name, (_, hi) in plan.ranges.items()}
            dynamic = tuple({axis: dims[name] for axis, name in axes.items()} or None
                            for axes in plan.dims)
            try:
                # a size of 1 is otherwise ordinary: the ranges from the rules
                # include sizes for which a size inside the model is 1 (a 7x7
                # input to two unpadded 3x3 and 5x5 convolutions: 1x1)
                with fx_config.patch(backed_size_oblivious=True):  # type: ignore[attr-defined]
                    return torch.export.export(model, args, dynamic_shapes=dynamic)
            except Exception as e:
                raise_ = [n for n in _UNSERVED.findall(str(e)) if lows.get(n) == 1]
                if not raise_:
                    raise
                for name in raise_:
                    lows[name] = 2
    finally:
        model.train(training)
