"""EfficientNet-B0 (Tan & Le, 2019) with torchvision's module names, so a state
dict of torchvision's ``efficientnet_b0`` loads into the torch build; and its
blocks: `squeeze_excitation` and `mbconv`."""

from __future__ import annotations

from .._graph import Input, Model, Sequential
from .._layer import Layer
from ..layers.activation import Dropout, DropPath, Sigmoid, SiLU
from ..layers.conv import Conv2d
from ..layers.linear import Linear
from ..layers.merge import Add, Multiply
from ..layers.pool import AdaptiveAvgPool2d
from ..layers.reshape import Flatten
from .mobilenet import conv_norm_activation

#: ``(expand ratio, kernel, first stride, out channels, repeats)`` of B0's stages
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
)


def squeeze_excitation(channels: int, squeeze_channels: int) -> Model:
    """torchvision's ``SqueezeExcitation``: the input scaled per channel by
    ``sigmoid(fc2(silu(fc1(mean over H, W))))``, ``fc1``/``fc2`` 1x1
    convolutions through ``squeeze_channels``.

    ``(B, channels, H, W) -> (B, channels, H, W)``."""
    x = Input((None, channels, None, None), name="x")
    s = AdaptiveAvgPool2d(1, name="avgpool")(x)
    s = SiLU(name="activation")(Conv2d(squeeze_channels, 1, name="fc1")(s))
    s = Sigmoid(name="scale_activation")(Conv2d(channels, 1, name="fc2")(s))
    return Model(x, Multiply(name="scale")(s, x), name="squeeze_excitation")


def mbconv(in_channels: int, out_channels: int, kernel_size: int, stride: int,
           expand_ratio: int, stochastic_depth: float = 0.0) -> Model:
    """torchvision's ``MBConv``: a 1x1 expansion (skipped for a ratio of 1), a
    depthwise ``kernel_size`` convolution with ``stride``, squeeze-and-excitation
    through ``max(1, in_channels // 4)`` channels and a linear 1x1 projection
    (the ``block`` Sequential); the input is added back, after stochastic depth
    with probability ``stochastic_depth``, when ``stride == 1`` and the channel
    counts agree.

    ``(B, in_channels, H, W) -> (B, out_channels, (H - 1)//stride + 1, ...)``."""
    hidden = in_channels * expand_ratio
    layers: list[Layer] = []
    if expand_ratio != 1:
        layers.append(conv_norm_activation(hidden, 1, activation=SiLU))
    layers += [
        conv_norm_activation(hidden, kernel_size, stride=stride, groups=hidden,
                             activation=SiLU),
        squeeze_excitation(hidden, max(1, in_channels // 4)),
        conv_norm_activation(out_channels, 1, activation=None),
    ]
    x = Input((None, in_channels, None, None), name="x")
    h = Sequential({str(i): layer for i, layer in enumerate(layers)}, name="block")(x)
    if stride == 1 and in_channels == out_channels:
        h = DropPath(stochastic_depth, "row", name="stochastic_depth")(h)
        h = Add(name="add")(h, x)
    return Model(x, h, name="mbconv")


def efficientnet_b0(num_classes: int = 1000, dropout: float = 0.2,
                    stochastic_depth: float = 0.2) -> Sequential:
    """EfficientNet-B0 (torchvision's ``efficientnet_b0``) on ``(B, 3, H, W)``
    images -> ``(B, num_classes)`` logits; block ``i`` of ``n`` drops its
    residual branch with probability ``stochastic_depth * i / n`` in training.

    5,288,548 parameters for 1000 classes, whatever H and W."""
    total = sum(n for *_, n in EFFICIENTNET_B0_STAGES)
    features: list[Layer] = [conv_norm_activation(32, 3, stride=2, activation=SiLU)]
    channels, block = 32, 0
    for t, k, s, c, n in EFFICIENTNET_B0_STAGES:
        stage = []
        for i in range(n):
            stage.append(mbconv(channels, c, k, s if i == 0 else 1, t,
                                stochastic_depth * block / total))
            channels = c
            block += 1
        features.append(Sequential({str(i): b for i, b in enumerate(stage)}))
    features.append(conv_norm_activation(1280, 1, activation=SiLU))
    return Sequential(
        {
            "features": Sequential({str(i): f for i, f in enumerate(features)}),
            "avgpool": AdaptiveAvgPool2d(1),
            "flatten": Flatten(),
            "classifier": Sequential({"0": Dropout(dropout), "1": Linear(num_classes)}),
        }
    )
