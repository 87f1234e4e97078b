"""The merge family's native modules: `Add`, `Multiply` and `Concat`, plain
modules doing what a hand-written ``forward`` writes (``out + identity``,
``torch.cat``), so a residual block costs what torchvision's does.

Inputs of different dtypes are promoted first, by lazyshape's table
(``ls.ops.promote_types``), as the rules promise; inputs of one dtype (the
usual case) go straight to the operator."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import lazyshape as ls
from lazyshape.backend import normalize_dtype

from . import init
from .native import fresh, register

__all__ = ["Add", "Multiply", "Concat"]


def _promoted(xs: tuple[Any, ...]) -> tuple[Any, ...]:
    dtype = xs[0].dtype
    for x in xs:
        if x.dtype is not dtype:
            target = init.torch_dtype(ls.ops.promote_types(*[normalize_dtype(x.dtype) for x in xs]))
            return tuple(x.to(target) for x in xs)
    return xs


class Add(nn.Module):
    """The elementwise sum of the inputs, broadcast: ``(*S_i) -> broadcast(S_i)``.
    With ``inplace`` (set by the build where nothing else reads the first
    input: see `inplace`), inputs of one shape and dtype are summed into the
    first, as torchvision's ``out += identity``."""

    def __init__(self) -> None:
        super().__init__()
        self.inplace = False

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        if self.inplace and len(xs) == 2 and out.shape == xs[1].shape and (
                out.dtype is xs[1].dtype):
            return out.add_(xs[1])
        xs = _promoted(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Multiply(nn.Module):
    """The elementwise product of the inputs, broadcast: ``(*S_i) -> broadcast(S_i)``."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        xs = _promoted(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(nn.Module):
    """``torch.cat`` of the inputs along ``dim``: the sizes along ``dim`` add up."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(_promoted(xs), dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


@register(ls.Add, ls.Multiply, ls.Concat, exact=True)
def _merge(rec: Any, **kw: Any) -> nn.Module:
    layer = rec.layer
    if isinstance(layer, ls.Concat):
        return fresh(Concat, dim=rec.resolved["dim"])
    return fresh(Add if isinstance(layer, ls.Add) else Multiply)
