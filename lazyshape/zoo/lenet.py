"""LeNet-5 (LeCun et al., 1998), lazily sized: the first `Linear`'s input size
follows from the image size."""

from __future__ import annotations

from .._graph import Sequential
from ..layers.activation import ReLU
from ..layers.conv import Conv2d
from ..layers.linear import Linear
from ..layers.pool import MaxPool2d
from ..layers.reshape import Flatten


def lenet5(num_classes: int = 10) -> Sequential:
    """LeNet-5 on ``(B, 1, H, W)`` images -> ``(B, num_classes)`` logits.

    On 28x28 inputs the first `Linear` takes ``16*4*4 = 256`` features, on 32x32
    ``16*5*5 = 400``: the same definition, no arithmetic by hand."""
    return Sequential(
        {
            "conv1": Conv2d(6, 5),
            "relu1": ReLU(),
            "pool1": MaxPool2d(2),
            "conv2": Conv2d(16, 5),
            "relu2": ReLU(),
            "pool2": MaxPool2d(2),
            "flatten": Flatten(),
            "fc1": Linear(120),
            "relu3": ReLU(),
            "fc2": Linear(84),
            "relu4": ReLU(),
            "fc3": Linear(num_classes),
        }
    )
