"""Keras 3 versions of the reference models (imported only in a process with
``KERAS_BACKEND=jax``: see `benchmarks._worker`).

`layers_of` makes the layer objects (the definition: untimed, no sizes);
`wire` calls them on a symbolic ``keras.Input`` and makes the functional
``keras.Model``: that is where Keras infers every shape and builds (creates)
its variables. ResNet-18 is channels-last, with ``ZeroPadding2D`` giving
torch's paddings exactly.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers as kl

from .models import REFERENCE, channels_last

__all__ = ["layers_of", "wire", "block"]


def _chain_layers(key: str) -> list[Any]:
    plan = REFERENCE[key].plan
    assert plan is not None
    table = {
        "linear": lambda n: kl.Dense(n),
        "relu": lambda: kl.ReLU(),
        "layernorm": lambda: kl.LayerNormalization(epsilon=1e-5),
        "gelu": lambda: kl.Activation(lambda x: keras.activations.gelu(x, approximate=False)),
    }
    return [table[kind](*args) for kind, *args in plan.steps]  # type: ignore[operator]


def _resnet_layers() -> dict[str, Any]:
    def bn() -> Any:
        return kl.BatchNormalization(epsilon=1e-5, momentum=0.9)

    out: dict[str, Any] = {
        "pad1": kl.ZeroPadding2D(3), "conv1": kl.Conv2D(64, 7, 2, use_bias=False),
        "bn1": bn(), "relu": kl.ReLU(), "padpool": kl.ZeroPadding2D(1),
        "maxpool": kl.MaxPooling2D(3, 2), "avgpool": kl.GlobalAveragePooling2D(),
        "fc": kl.Dense(1000),
    }
    blocks = []
    for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for i in range(2):
            s = stride if i == 0 else 1
            b = {
                "pad1": kl.ZeroPadding2D(1), "conv1": kl.Conv2D(planes, 3, s, use_bias=False),
                "bn1": bn(), "relu1": kl.ReLU(), "pad2": kl.ZeroPadding2D(1),
                "conv2": kl.Conv2D(planes, 3, use_bias=False), "bn2": bn(), "add": kl.Add(),
                "relu2": kl.ReLU(),
            }
            if i == 0 and (stride != 1 or planes != 64):
                b["down"] = kl.Conv2D(planes, 1, s, use_bias=False)
                b["down_bn"] = bn()
            blocks.append(b)
    out["blocks"] = blocks
    return out


def layers_of(key: str) -> Any:
    """Fresh layer objects of model ``key`` (no sizes)."""
    if key == "C":
        return _resnet_layers()
    if REFERENCE[key].plan is None:
        raise NotImplementedError(f"no Keras model {key!r}")
    return _chain_layers(key)


def wire(key: str, layers: Any) -> Any:
    """The functional model on a symbolic input of the reference shape."""
    shape = channels_last(key, REFERENCE[key].input_shape)
    x = keras.Input(shape=shape[1:], batch_size=shape[0])
    if key != "C":
        h = x
        for layer in layers:
            h = layer(h)
        return keras.Model(x, h)
    r = layers
    h = r["maxpool"](r["padpool"](r["relu"](r["bn1"](r["conv1"](r["pad1"](x))))))
    for b in r["blocks"]:
        y = b["relu1"](b["bn1"](b["conv1"](b["pad1"](h))))
        y = b["bn2"](b["conv2"](b["pad2"](y)))
        skip = b["down_bn"](b["down"](h)) if "down" in b else h
        h = b["relu2"](b["add"]([y, skip]))
    return keras.Model(x, r["fc"](r["avgpool"](h)))


def block(model: Any) -> None:
    """Wait until every variable's value is computed (JAX dispatches asynchronously)."""
    import jax

    jax.block_until_ready([v.value for v in model.weights])
