"""The reshape family's native modules: ``nn.Flatten``, ``nn.Unflatten``."""

from __future__ import annotations

from torch import nn

import lazyshape as ls

from .native import register_stateless

register_stateless(
    ls.Flatten, nn.Flatten, lambda layer: {"start_dim": layer.start_dim, "end_dim": layer.end_dim}
)
register_stateless(
    ls.Unflatten,
    nn.Unflatten,
    lambda layer: {"dim": layer.dim, "unflattened_size": tuple(layer.sizes)},
)
