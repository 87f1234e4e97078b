"""ConvNeXt (Liu et al., 2022) with torchvision's module names, so a state dict of
torchvision's ``convnext_tiny`` loads into the torch build; and its blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import init as _init
from .. import ops
from .._dims import format_shape
from .._errors import ShapeError
from .._graph import Input, Model, Sequential
from .._layer import Layer
from .._specs import FLOATING, ParamSpec, TensorSpec
from ..layers.activation import GELU, DropPath
from ..layers.conv import Conv2d
from ..layers.embedding import LearnedTensor
from ..layers.linear import Linear
from ..layers.merge import Add, Multiply
from ..layers.norm import LayerNorm
from ..layers.pool import AdaptiveAvgPool2d
from ..layers.reshape import Flatten, Permute

#: ``(channels, blocks)`` of convnext_tiny's four stages
CONVNEXT_TINY_STAGES = ((96, 3), (192, 3), (384, 9), (768, 3))


class LayerNorm2d(Layer):
    """torchvision's ``LayerNorm2d``: layer norm over the channels of
    ``(B, C, H, W)`` (each position normalized across C), ``weight``/``bias``
    ``(C,)``. ``(B, C, H, W) -> (B, C, H, W)``."""

    hparam_names = ("eps",)

    def __init__(self, eps: float = 1e-6, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.eps = eps

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        if x.ndim != 4:
            raise ShapeError("an input of shape (B, C, H, W)",
                             f"input shape {format_shape(x.shape)}")
        if x.dtype not in FLOATING:
            raise ShapeError("a floating-point input", f"dtype {x.dtype}")
        return x

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        c = x.shape[1]
        return {"weight": ParamSpec._make((c,), None, _init.ones()),
                "bias": ParamSpec._make((c,), None, _init.zeros())}

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        mean = ops.mean(x, axis=1, keepdims=True)
        centered = x - mean
        var = ops.mean(centered * centered, axis=1, keepdims=True)
        y = centered / ops.sqrt(var + self.eps)
        w = ops.reshape(params["weight"], (-1, 1, 1))
        b = ops.reshape(params["bias"], (-1, 1, 1))
        return y * w + b


def cn_block(dim: int, layer_scale: float = 1e-6, stochastic_depth: float = 0.0) -> Model:
    """torchvision's ``CNBlock``: a 7x7 depthwise convolution, then, channels
    last, a layer norm and a GELU MLP of width ``4 * dim`` (the ``block``
    Sequential); scaled per channel by the learned ``layer_scale`` ``(dim, 1,
    1)``, dropped with probability ``stochastic_depth`` in training, and added
    back. ``(B, dim, H, W) -> (B, dim, H, W)``."""
    x = Input((None, dim, None, None), name="x")
    block = Sequential(
        {
            "0": Conv2d(dim, 7, padding=3, groups=dim),
            "1": Permute(0, 2, 3, 1),
            "2": LayerNorm(eps=1e-6),
            "3": Linear(4 * dim),
            "4": GELU(),
            "5": Linear(dim),
            "6": Permute(0, 3, 1, 2),
        },
        name="block",
    )
    h = block(x)
    scale = LearnedTensor(("C", 1, 1), init=_init.constant(layer_scale), name="layer_scale")(h)
    h = DropPath(stochastic_depth, "row", name="stochastic_depth")(
        Multiply(name="scale")(scale, h))
    return Model(x, Add(name="add")(h, x), name="cn_block")


def convnext(
    stages: tuple[tuple[int, int], ...] = CONVNEXT_TINY_STAGES,
    num_classes: int = 1000,
    stochastic_depth: float = 0.1,
    layer_scale: float = 1e-6,
) -> Sequential:
    """torchvision's ``ConvNeXt`` on ``(B, 3, H, W)`` images -> ``(B, num_classes)``
    logits: a 4x4 patchify stem, ``stages`` of `cn_block` (``(channels,
    blocks)``) with a layer norm and 2x2 strided convolution between them;
    block ``i`` of ``n`` drops with probability ``stochastic_depth * i / (n - 1)``."""
    total = sum(n for _, n in stages)
    features: list[Layer] = [
        Sequential({"0": Conv2d(stages[0][0], 4, stride=4), "1": LayerNorm2d()})
    ]
    block = 0
    for s, (dim, n) in enumerate(stages):
        blocks = []
        for _ in range(n):
            blocks.append(cn_block(dim, layer_scale, stochastic_depth * block / (total - 1.0)))
            block += 1
        features.append(Sequential({str(i): b for i, b in enumerate(blocks)}))
        if s + 1 < len(stages):
            features.append(Sequential(
                {"0": LayerNorm2d(), "1": Conv2d(stages[s + 1][0], 2, stride=2)}))
    return Sequential(
        {
            "features": Sequential({str(i): f for i, f in enumerate(features)}),
            "avgpool": AdaptiveAvgPool2d(1),
            "classifier": Sequential(
                {"0": LayerNorm2d(), "1": Flatten(1), "2": Linear(num_classes)}),
        }
    )


def convnext_tiny(num_classes: int = 1000) -> Sequential:
    """ConvNeXt-Tiny (torchvision's ``convnext_tiny``): 28,589,128 parameters."""
    return convnext(CONVNEXT_TINY_STAGES, num_classes)
