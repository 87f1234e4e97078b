"""ResNet-18 and ResNet-50 (He et al., 2016) with torchvision's module names, so
a state dict with torchvision's keys and shapes loads into the torch build."""

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


def bottleneck(planes: int, stride: int = 1, downsample: bool = False) -> Model:
    """torchvision's ``Bottleneck`` (ResNet v1.5: the stride on the 3x3 conv):
    1x1 down to ``planes``, 3x3, 1x1 up to ``4 * planes``, each with batch norm,
    plus the identity (or a 1x1 strided projection) before the last ReLU.

    Input ``(B, C, H, W)`` -> ``(B, 4*planes, (H - 1)//stride + 1, ...)``."""
    x = Input((None, None, None, None), name="x")
    relu = ReLU(name="relu")  # one module called three times, as in torchvision
    h = relu(BatchNorm2d(name="bn1")(Conv2d(planes, 1, bias=False, name="conv1")(x)))
    h = Conv2d(planes, 3, stride=stride, padding=1, bias=False, name="conv2")(h)
    h = relu(BatchNorm2d(name="bn2")(h))
    h = BatchNorm2d(name="bn3")(Conv2d(4 * planes, 1, bias=False, name="conv3")(h))
    skip = x
    if downsample:
        skip = Sequential(
            {"0": Conv2d(4 * planes, 1, stride=stride, bias=False), "1": BatchNorm2d()},
            name="downsample",
        )(x)
    return Model(x, relu(Add(name="add")(h, skip)), name="block")


def _stage(planes: int, stride: int, blocks: int = 2, bottlenecks: bool = False) -> Sequential:
    if bottlenecks:  # the first block always projects: 64 -> 256 channels in layer1
        first = bottleneck(planes, stride, downsample=True)
        rest = [bottleneck(planes) for _ in range(blocks - 1)]
    else:
        first = basic_block(planes, stride, downsample=stride != 1 or planes != 64)
        rest = [basic_block(planes) for _ in range(blocks - 1)]
    return Sequential({str(i): b for i, b in enumerate([first, *rest])})


def _resnet(num_classes: int, blocks: tuple[int, ...], bottlenecks: bool) -> Sequential:
    stages = {
        f"layer{i + 1}": _stage(64 * 2**i, 1 if i == 0 else 2, n, bottlenecks)
        for i, n in enumerate(blocks)
    }
    return Sequential(
        {
            "conv1": Conv2d(64, 7, stride=2, padding=3, bias=False),
            "bn1": BatchNorm2d(),
            "relu": ReLU(),
            "maxpool": MaxPool2d(3, stride=2, padding=1),
            **stages,
            "avgpool": AdaptiveAvgPool2d((1, 1)),
            "flatten": Flatten(),
            "fc": Linear(num_classes),
        }
    )


def resnet18(num_classes: int = 1000) -> Sequential:
    """ResNet-18 on ``(B, 3, H, W)`` images -> ``(B, num_classes)`` logits.

    11,689,512 parameters for 1000 classes, whatever H and W (adaptive pooling)."""
    return _resnet(num_classes, (2, 2, 2, 2), bottlenecks=False)


def resnet50(num_classes: int = 1000) -> Sequential:
    """ResNet-50 (torchvision's ``resnet50``: bottleneck blocks, v1.5) on
    ``(B, 3, H, W)`` images -> ``(B, num_classes)`` logits.

    25,557,032 parameters for 1000 classes, whatever H and W."""
    return _resnet(num_classes, (3, 4, 6, 3), bottlenecks=True)
