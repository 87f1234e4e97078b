"""Recurrent ops for JAX arrays: ``lstm`` and ``gru``, one layer and direction at
a time."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["lstm", "gru"]


def _input_gates(x: Any, w_ih: Any, b_ih: Any | None, b_hh: Any | None) -> Any:
    gi = jnp.matmul(x, w_ih.T)
    if b_ih is not None:
        gi = gi + b_ih
    if b_hh is not None:
        gi = gi + b_hh
    return gi


def _zeros(h: Any | None, x: Any, hidden: int) -> Any:
    return jnp.zeros((x.shape[1], hidden), x.dtype) if h is None else h


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
    gi = _input_gates(x, w_ih, b_ih, b_hh)
    w_hh_t = w_hh.T

    def step(carry: Any, g: Any) -> Any:
        h, c = carry
        i, f, gg, o = jnp.split(g + jnp.matmul(h, w_hh_t), 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    init = (_zeros(h0, x, hidden), _zeros(c0, x, hidden))
    (h, c), out = jax.lax.scan(step, init, gi, reverse=reverse)
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
    ``(out (T, B, H), h_n (B, H))``."""
    hidden = w_hh.shape[1]
    gi = _input_gates(x, w_ih, b_ih, None)
    w_hh_t = w_hh.T

    def step(h: Any, g: Any) -> Any:
        gh = jnp.matmul(h, w_hh_t)
        if b_hh is not None:
            gh = gh + b_hh
        i_r, i_z, i_n = jnp.split(g, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
        r = jax.nn.sigmoid(i_r + h_r)
        z = jax.nn.sigmoid(i_z + h_z)
        n = jnp.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, h

    h, out = jax.lax.scan(step, _zeros(h0, x, hidden), gi, reverse=reverse)
    return out, h

