"""Recurrent ops for NumPy arrays: ``lstm`` and ``gru``, one layer and direction at
a time."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["lstm", "gru"]


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
    ``(out (T, B, H), h_n (B, H), c_n (B, H))``; zero initial state when
    ``h0``/``c0`` are None; ``reverse`` runs from the last step to the first."""
    steps, batch, hidden = x.shape[0], x.shape[1], w_hh.shape[1]
    gi = _input_gates(x, w_ih, b_ih, b_hh)
    h = np.zeros((batch, hidden), x.dtype) if h0 is None else h0
    c = np.zeros((batch, hidden), x.dtype) if c0 is None else c0
    out = np.empty((steps, batch, hidden), x.dtype)
    w_hh_t = w_hh.T
    for t in _order(steps, reverse):
        gates = gi[t] + h @ w_hh_t
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out[t] = h
    return out, h, c


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
    ``(out (T, B, H), h_n (B, H))``, torch's update
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h = (1 - z) n + z h``."""
    steps, batch, hidden = x.shape[0], x.shape[1], w_hh.shape[1]
    gi = _input_gates(x, w_ih, b_ih, None)
    h = np.zeros((batch, hidden), x.dtype) if h0 is None else h0
    out = np.empty((steps, batch, hidden), x.dtype)
    w_hh_t = w_hh.T
    for t in _order(steps, reverse):
        gh = h @ w_hh_t
        if b_hh is not None:
            gh = gh + b_hh
        i_r, i_z, i_n = np.split(gi[t], 3, axis=-1)
        h_r, h_z, h_n = np.split(gh, 3, axis=-1)
        r = _sigmoid(i_r + h_r)
        z = _sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        out[t] = h
    return out, h


def _input_gates(x: Any, w_ih: Any, b_ih: Any | None, b_hh: Any | None) -> Any:
    """``x @ w_ih^T + b_ih (+ b_hh)`` for every step at once: ``(T, B, G*H)``."""
    gi = x @ w_ih.T
    if b_ih is not None:
        gi = gi + b_ih
    if b_hh is not None:
        gi = gi + b_hh
    return gi


def _sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` without overflow warnings (as ops.sigmoid)."""
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _order(steps: int, reverse: bool) -> range:
    return range(steps - 1, -1, -1) if reverse else range(steps)

