"""The reshape family's native modules: ``nn.Flatten``, ``nn.Unflatten``."""

from __future__ import annotations

from torch import nn

import lazyshape as ls

from .native import register_stateless

register_stateless(ls.Flatten, nn.Flatten)
register_stateless(ls.Unflatten, nn.Unflatten, rename={"sizes": "unflattened_size"})
