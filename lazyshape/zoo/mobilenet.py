"""MobileNetV2 (Sandler et al., 2018) with torchvision's module names, so a state
dict of torchvision's ``mobilenet_v2`` loads into the torch build; and the
blocks it is made of, for models of one's own: `conv_norm_activation` (a
convolution, batch norm and activation: torchvision's ``Conv2dNormActivation``)
and `inverted_residual` (the depthwise-separable block with an expansion)."""

from __future__ import annotations

from collections.abc import Callable

from .._graph import Input, Model, Sequential
from .._layer import Layer
from ..layers.activation import Dropout, ReLU6
from ..layers.conv import Conv2d
from ..layers.linear import Linear
from ..layers.merge import Add
from ..layers.norm import BatchNorm2d
from ..layers.pool import AdaptiveAvgPool2d
from ..layers.reshape import Flatten

#: ``(expansion t, channels c, repeats n, first stride s)`` of each stage
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def conv_norm_activation(
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    activation: Callable[[], Layer] | None = ReLU6,
) -> Sequential:
    """torchvision's ``Conv2dNormActivation``: ``0`` a bias-free convolution
    (padding ``(kernel_size - 1) // 2``), ``1`` a batch norm, ``2`` the
    activation (none when ``activation`` is None). ``groups`` equal to the
    input channels makes it depthwise.

    ``(B, C, H, W) -> (B, out_channels, (H - 1)//stride + 1, (W - 1)//stride + 1)``
    for an odd kernel."""
    layers: dict[str, Layer] = {
        "0": Conv2d(out_channels, kernel_size, stride=stride,
                    padding=(kernel_size - 1) // 2, groups=groups, bias=False),
        "1": BatchNorm2d(),
    }
    if activation is not None:
        layers["2"] = activation()
    return Sequential(layers)


def inverted_residual(in_channels: int, out_channels: int, stride: int,
                      expand_ratio: int) -> Model:
    """torchvision's ``InvertedResidual``: a 1x1 expansion to
    ``in_channels * expand_ratio`` channels (skipped for a ratio of 1), a 3x3
    depthwise convolution with ``stride``, a linear 1x1 projection to
    ``out_channels`` with batch norm (the ``conv`` Sequential); the input is
    added back when ``stride == 1`` and the channel counts agree.

    ``(B, in_channels, H, W) -> (B, out_channels, (H - 1)//stride + 1, ...)``."""
    hidden = in_channels * expand_ratio
    layers: list[Layer] = []
    if expand_ratio != 1:
        layers.append(conv_norm_activation(hidden, 1))
    layers += [
        conv_norm_activation(hidden, 3, stride=stride, groups=hidden),
        Conv2d(out_channels, 1, bias=False),
        BatchNorm2d(),
    ]
    x = Input((None, in_channels, None, None), name="x")
    h = Sequential({str(i): layer for i, layer in enumerate(layers)}, name="conv")(x)
    if stride == 1 and in_channels == out_channels:
        h = Add(name="add")(x, h)
    return Model(x, h, name="block")


def mobilenet_v2(num_classes: int = 1000, dropout: float = 0.2) -> Sequential:
    """MobileNetV2 (width 1.0, torchvision's ``mobilenet_v2``) on ``(B, 3, H, W)``
    images -> ``(B, num_classes)`` logits.

    3,504,872 parameters for 1000 classes, whatever H and W."""
    features: list[Layer] = [conv_norm_activation(32, 3, stride=2)]
    channels = 32
    for t, c, n, s in MOBILENET_V2_STAGES:
        for i in range(n):
            features.append(inverted_residual(channels, c, s if i == 0 else 1, t))
            channels = c
    features.append(conv_norm_activation(1280, 1))
    return Sequential(
        {
            "features": Sequential({str(i): f for i, f in enumerate(features)}),
            "avgpool": AdaptiveAvgPool2d((1, 1)),
            "flatten": Flatten(),
            "classifier": Sequential({"0": Dropout(dropout), "1": Linear(num_classes)}),
        }
    )
