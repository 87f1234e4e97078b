"""Embedding ops for torch tensors: ``embedding``.

``nn.Embedding`` as the native module."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from lazyshape.backend import (
    LayerRecord,
)
from lazyshape.layers.embedding import Embedding

from .native import register

__all__ = ["embedding"]


def embedding(ids: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """``F.embedding``: ``(*) -> (*, dim)``; the ``padding_idx`` row gets no gradient."""
    return F.embedding(ids, weight, padding_idx)


@register(Embedding)
def _embedding(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module:
    return nn.Embedding(**rec.resolved, dtype=dtype, device=device)

