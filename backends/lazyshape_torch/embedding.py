"""Embedding ops for torch tensors: ``embedding``.

``nn.Embedding`` as the native module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import nn

from lazyshape._specs import ParamSpec
from lazyshape.layers.embedding import Embedding

from .native import register

__all__ = ["embedding"]


def embedding(ids: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """``F.embedding``: ``(*) -> (*, dim)``; the ``padding_idx`` row gets no gradient."""
    return F.embedding(ids, weight, padding_idx)


@register(Embedding)
def _embedding(
    layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any
) -> nn.Module:
    num_embeddings, embedding_dim = specs["weight"].shape
    return nn.Embedding(
        int(num_embeddings), int(embedding_dim), padding_idx=layer.padding_idx,
        dtype=dtype, device=device,
    )

