"""The reshape family's native modules: ``nn.Flatten``, ``nn.Unflatten``, and
`Permute` and `Transpose` (torch.nn has neither: `Permute` is torchvision's)."""

from __future__ import annotations

import torch
from torch import nn

import lazyshape as ls

from .native import register_stateless


class Permute(nn.Module):
    """``Permute``'s native module, as ``torchvision.ops.misc.Permute``:
    ``torch.permute(x, dims)``."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Transpose(nn.Module):
    """``Transpose``'s native module: ``torch.transpose(x, dim0, dim1)``."""

    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dim0 = dim0
        self.dim1 = dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.transpose(x, self.dim0, self.dim1)

    def extra_repr(self) -> str:
        return f"dim0={self.dim0}, dim1={self.dim1}"


register_stateless(ls.Flatten, nn.Flatten)
register_stateless(ls.Unflatten, nn.Unflatten, rename={"sizes": "unflattened_size"})
register_stateless(ls.Permute, Permute)
register_stateless(ls.Transpose, Transpose)
