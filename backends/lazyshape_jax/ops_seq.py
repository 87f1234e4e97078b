"""Sequence ops for the JAX backend: attention and recurrent cells (see
lazyshape_numpy/ops.py for the protocol and lazyshape_numpy/ops_seq.py for
the layouts). The recurrences are one ``jax.lax.scan`` each, so they trace
once whatever the sequence length and work under jit, grad and vmap."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["scaled_dot_product_attention", "lstm", "gru"]


def scaled_dot_product_attention(
    q: Any,
    k: Any,
    v: Any,
    key_padding_mask: Any | None,
    causal: bool,
    dropout_p: float,
    rng: Any,
) -> Any:
    """``softmax(q @ k^T / sqrt(D)) @ v`` for ``q (B, H, T, D)``, ``k, v (B, H, S, D)``;
    ``key_padding_mask`` (bool ``(B, S)``) True = ignore; a query that sees no
    key gets zeros. ``rng`` is the PRNG key of the attention-weight dropout."""
    scale = jnp.asarray(1.0 / math.sqrt(q.shape[-1]), q.dtype)
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2)) * scale
    masked = None
    if key_padding_mask is not None:
        masked = key_padding_mask[:, None, None, :]
    if causal:
        upper = jnp.triu(jnp.ones((q.shape[-2], k.shape[-2]), bool), 1)
        masked = upper if masked is None else masked | upper
    if masked is not None:
        scores = jnp.where(masked, jnp.asarray(-jnp.inf, q.dtype), scores)
    top = jnp.max(scores, axis=-1, keepdims=True, initial=-jnp.inf)
    e = jnp.exp(scores - jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0)))
    total = jnp.sum(e, axis=-1, keepdims=True)
    weights = e / jnp.where(total > 0, total, 1)
    if dropout_p > 0.0:
        from .ops import dropout  # ops star-imports this module: import on use

        weights = dropout(weights, dropout_p, rng)
    return jnp.matmul(weights, v)


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
