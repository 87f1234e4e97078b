"""An LSTM sequence classifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._dims import format_shape
from .._errors import ShapeError
from .._graph import Sequential
from .._layer import Layer
from .._specs import TensorSpec
from ..layers.linear import Linear
from ..layers.recurrent import LSTM


class LastStep(Layer):
    """The last time step of a sequence: ``(B, T, F) -> (B, F)``."""

    hparam_names = ()

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        if x.ndim != 3:
            raise ShapeError("an input of shape (B, T, F)", f"input shape {format_shape(x.shape)}")
        return TensorSpec._make((x.shape[0], x.shape[2]), x.dtype)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x[:, -1, :]


def lstm_classifier(num_classes: int = 5, hidden_size: int = 64, num_layers: int = 2) -> Sequential:
    """``(B, T, F)`` features -> ``(B, num_classes)`` logits: a stacked LSTM, its
    last step, a linear head."""
    return Sequential(
        {
            "lstm": LSTM(hidden_size, num_layers=num_layers),
            "last": LastStep(),
            "head": Linear(num_classes),
        }
    )
