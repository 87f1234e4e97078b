"""Sequence ops for the torch backend: attention and recurrent cells (see
lazyshape_numpy/ops.py for the protocol and lazyshape_numpy/ops_seq.py for
the layouts). They run torch's own kernels: ``F.scaled_dot_product_attention``
and the ``_VF`` LSTM / GRU that ``nn.LSTM`` / ``nn.GRU`` call."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

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
    key gets zeros. ``rng`` (a ``torch.Generator``, or None for torch's global
    RNG) drives the dropout of attention weights."""
    keep = None  # F.scaled_dot_product_attention's bool mask: True = take part
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]
    if causal:
        t, s = q.shape[-2], k.shape[-2]
        lower = torch.ones(t, s, dtype=torch.bool, device=q.device).tril()
        keep = lower if keep is None else keep & lower
    if dropout_p == 0.0 or rng is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout_p)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    from .ops import dropout  # ops star-imports this module: import on use

    return dropout(weights, dropout_p, rng) @ v


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
    out, h, c = torch._VF.lstm(xs, hx, weights, has_bias, 1, 0.0, False, False, False)  # type: ignore[attr-defined]
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
    out, h = torch._VF.gru(xs, hx, weights, has_bias, 1, 0.0, False, False, False)  # type: ignore[attr-defined]
    return (out.flip(0) if reverse else out), h[0]
