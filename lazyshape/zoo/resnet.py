"""ResNet-18 (He et al., 2016) with torchvision's module names, so a state dict
with torchvision's keys and shapes loads into the torch build."""

from __future__ import annotations

from .._graph import Input, Model, Sequential
from ..layers.activation import ReLU
from ..layers.conv import Conv2d
from ..layers.linear import Linear
from ..layers.merge import Add
from ..layers.norm import BatchNorm2d
from ..layers.pool import AdaptiveAvgPool2d, MaxPool2d
from ..layers.reshape import Flatten


def basic_block(planes: int, stride: int = 1, downsample: bool = False) -> Model:
    """torchvision's ``BasicBlock``: two 3x3 convs with batch norm, plus the
    identity (or a 1x1 strided projection) added before the last ReLU.

    Input ``(B, C, H, W)`` -> ``(B, planes, (H - 1)//stride + 1, ...)``."""
    x = Input((None, None, None, None), name="x")
    relu = ReLU(name="relu")  # one module called twice, as in torchvision
    h = Conv2d(planes, 3, stride=stride, padding=1, bias=False, name="conv1")(x)
    h = relu(BatchNorm2d(name="bn1")(h))
    h = Conv2d(planes, 3, padding=1, bias=False, name="conv2")(h)
    h = BatchNorm2d(name="bn2")(h)
    skip = x
    if downsample:
        skip = Sequential(
            {"0": Conv2d(planes, 1, stride=stride, bias=False), "1": BatchNorm2d()},
            name="downsample",
        )(x)
    y = relu(Add(name="add")(h, skip))
    return Model(x, y, name="block")


def _stage(planes: int, stride: int) -> Sequential:
    down = stride != 1 or planes != 64
    return Sequential(
        {"0": basic_block(planes, stride, downsample=down), "1": basic_block(planes)}
    )


def resnet18(num_classes: int = 1000) -> Sequential:
    """ResNet-18 on ``(B, 3, H, W)`` images -> ``(B, num_classes)`` logits.

    11,689,512 parameters for 1000 classes, whatever H and W (adaptive pooling)."""
    return Sequential(
        {
            "conv1": Conv2d(64, 7, stride=2, padding=3, bias=False),
            "bn1": BatchNorm2d(),
            "relu": ReLU(),
            "maxpool": MaxPool2d(3, stride=2, padding=1),
            "layer1": _stage(64, 1),
            "layer2": _stage(128, 2),
            "layer3": _stage(256, 2),
            "layer4": _stage(512, 2),
            "avgpool": AdaptiveAvgPool2d((1, 1)),
            "flatten": Flatten(),
            "fc": Linear(num_classes),
        }
    )
