"""The resample family's native modules: ``nn.Upsample``, ``nn.PixelShuffle``,
``nn.PixelUnshuffle`` (torch's own, from the resolved hyperparameters, which
are their arguments)."""

from __future__ import annotations

from torch import nn

import lazyshape as ls

from .native import register_stateless

register_stateless(ls.Upsample, nn.Upsample)
register_stateless(ls.PixelShuffle, nn.PixelShuffle)
register_stateless(ls.PixelUnshuffle, nn.PixelUnshuffle)
