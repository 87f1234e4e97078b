"""Recurrent ops for torch tensors: ``lstm`` and ``gru``, one layer and direction at
a time.

``nn.LSTM`` and ``nn.GRU`` as the native modules (returning the sequence, or
``(output, state)`` with ``return_state``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lazyshape.backend import (
    LayerRecord,
)
from lazyshape.layers.recurrent import GRU as LsGRU
from lazyshape.layers.recurrent import LSTM as LsLSTM

from .native import register, sizes

__all__ = ["lstm", "gru"]


def _state(h: Any | None, x: Any, hidden: int) -> Any:
    """``(1, B, H)``: a given ``(B, H)`` state, or zeros."""
    if h is None:
        return torch.zeros(1, x.shape[1], hidden, dtype=x.dtype, device=x.device)
    return h.unsqueeze(0)


def _weights(w_ih: Any, w_hh: Any, b_ih: Any | None, b_hh: Any | None) -> tuple[list[Any], bool]:
    if b_ih is None:
        return [w_ih, w_hh], False
    return [w_ih, w_hh, b_ih, b_hh], True


def lstm(
    x: Any,
    h0: Any | None,
    c0: Any | None,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any | None,
    b_hh: Any | None,
    reverse: bool,
) -> Any:
    """One LSTM layer in one direction over ``x (T, B, F)``: returns
    ``(out (T, B, H), h_n (B, H), c_n (B, H))``."""
    hidden = w_hh.shape[1]
    weights, has_bias = _weights(w_ih, w_hh, b_ih, b_hh)
    hx = (_state(h0, x, hidden), _state(c0, x, hidden))
    xs = x.flip(0) if reverse else x
    out, h, c = torch._VF.lstm(xs, hx, weights, has_bias, 1, 0.0, False, False, False)
    return (out.flip(0) if reverse else out), h[0], c[0]


def gru(
    x: Any,
    h0: Any | None,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any | None,
    b_hh: Any | None,
    reverse: bool,
) -> Any:
    """One GRU layer in one direction over ``x (T, B, F)``: returns
    ``(out (T, B, H), h_n (B, H))``."""
    hidden = w_hh.shape[1]
    weights, has_bias = _weights(w_ih, w_hh, b_ih, b_hh)
    xs = x.flip(0) if reverse else x
    hx = _state(h0, x, hidden)
    out, h = torch._VF.gru(xs, hx, weights, has_bias, 1, 0.0, False, False, False)
    return (out.flip(0) if reverse else out), h[0]


class _ReturnState:
    """Mixin for ``nn.LSTM`` / ``nn.GRU``: forward takes the initial states as
    separate inputs and returns the output only, or with ``return_state`` torch's
    own ``(output, state)``."""

    return_state: bool

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> Any:
        hx: Any = None
        if state:
            hx = state[0] if len(state) == 1 else tuple(state)
        out, last = super().forward(x, hx)  # type: ignore[misc]
        if not self.return_state:
            return out
        return out, last  # torch's own structure: (out, (h_n, c_n)) / (out, h_n)


class LSTM(_ReturnState, nn.LSTM):  # type: ignore[misc]
    """``nn.LSTM`` returning the output sequence (or ``(output, (h_n, c_n))``)."""

    def __init__(self, *args: Any, return_state: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.return_state = return_state


class GRU(_ReturnState, nn.GRU):  # type: ignore[misc]
    """``nn.GRU`` returning the output sequence (or ``(output, h_n)``)."""

    def __init__(self, *args: Any, return_state: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.return_state = return_state


def _recurrent(cls: type[nn.Module]) -> Any:
    def factory(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
        if sizes(rec, "input_size") is None:
            return None
        hp = dict(rec.resolved)
        if hp["num_layers"] == 1:  # torch warns that dropout after the last layer does nothing
            hp["dropout"] = 0.0
        return cls(**hp, dtype=dtype, device=device)

    return factory


register(LsLSTM)(_recurrent(LSTM))


register(LsGRU)(_recurrent(GRU))

