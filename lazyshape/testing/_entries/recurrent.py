"""Harness entries of ``LSTM`` and ``GRU``: a sequence, optionally with initial
states, returning the output sequence (and the final states with
``return_state``).

Oracles: torch's own ``nn.LSTM`` / ``nn.GRU`` in evaluation mode; a
``jax.lax.scan`` recurrence under ``jax.eval_shape`` (the cell is reduced to
its matrix products: what shapes depend on); ONNX ``LSTM`` / ``GRU``, one node
per stacked layer, ``layout=1`` for batch-first.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from lazyshape.layers.recurrent import GRU, LSTM

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import jax_oracle, jax_param, require_features, require_float, torch_oracle
from .._primitives import Specs
from .._registry import Deviation, register
from ..strategies import batch_sizes
from ._common import NON_FLOAT, is_float, spec, spec_of

GATES = {"LSTM": 4, "GRU": 3}


def _states(layer: Any) -> int:
    return 2 if isinstance(layer, LSTM) else 1


def _layers(cls: Any) -> Any:
    return st.builds(
        cls,
        st.integers(1, 4),
        num_layers=st.integers(1, 2),
        batch_first=st.booleans(),
        input_size=st.none() | st.integers(1, 4),
        return_state=st.booleans(),
        bias=st.booleans(),
        bidirectional=st.booleans(),
    )


def _state_shape(layer: Any, b: int) -> tuple[int, int, int]:
    d = 2 if layer.bidirectional else 1
    return (layer.num_layers * d, b, layer.hidden_size)


@st.composite
def _valid(draw: Any, layer: Any) -> Specs:
    b, t = draw(batch_sizes()), draw(st.integers(1, 4))
    f = layer.input_size if layer.input_size is not None else draw(st.integers(1, 4))
    x = spec((b, t, f) if layer.batch_first else (t, b, f))
    if draw(st.booleans()):
        return (x,)
    return (x, *[spec(_state_shape(layer, b)) for _ in range(_states(layer))])


def _invalid(layer: Any) -> Any:
    @st.composite
    def build(draw: Any) -> Specs:
        xs = list(draw(_valid(layer)))
        x = xs[0]
        hows = ["dtype", "unbatched", "empty", "states"]
        if layer.input_size is not None:
            hows.append("features")
        how = draw(st.sampled_from(hows))
        if how == "dtype":
            xs[0] = spec(x.shape, draw(st.sampled_from(NON_FLOAT)))
        elif how == "unbatched":
            xs = [spec(x.shape[1:] if layer.batch_first else (x.shape[0], x.shape[2]))]
        elif how == "empty":
            shape = list(x.shape)
            shape[1 if layer.batch_first else 0] = 0
            xs[0] = spec(shape)
        elif how == "features":
            shape = list(x.shape)
            shape[2] = draw(st.integers(1, 6).filter(lambda f: f != layer.input_size))
            xs[0] = spec(shape)
        else:
            b = x.shape[0 if layer.batch_first else 1]
            bad = list(_state_shape(layer, b))
            bad[draw(st.integers(0, 2))] += 1
            xs = [x, *[spec(bad) for _ in range(_states(layer))]]
        return tuple(xs)

    return build()


def _batch_axes(layer: Any, specs: Specs) -> tuple[int | None, ...]:
    first = 0 if layer.batch_first else 1
    return (first if specs[0].ndim == 3 else None, *[1] * (len(specs) - 1))


# -- torch ---------------------------------------------------------------------------------


def _t_rnn(layer: Any, x: Any, *state: Any) -> Any:
    import torch
    from torch import nn

    if x.ndim != 3:
        raise Deviation("lazyshape requires a batched (3-d) sequence")
    require_float(spec_of(x))
    f = layer.input_size if layer.input_size is not None else x.shape[2]
    mod = getattr(nn, type(layer).__name__)(
        f, layer.hidden_size, layer.num_layers, layer.bias, layer.batch_first,
        0.0, layer.bidirectional, device=x.device).eval()
    hx: Any = None
    if state:
        if len(state) != _states(layer):
            raise ValueError(f"{len(state)} states")
        hx = state if isinstance(layer, LSTM) else state[0]
    with torch.no_grad():
        out, last = mod(x, hx)
    if not layer.return_state:
        return out
    return (out, *last) if isinstance(layer, LSTM) else (out, last)


# -- JAX -------------------------------------------------------------------------------------


def _j_rnn(layer: Any, x: Any, *state: Any) -> Any:
    import jax
    import jax.numpy as jnp

    if x.ndim != 3:
        raise ValueError("expected (B, T, F)")
    require_features(x.shape[2], "an input size")  # (torch rejects it)
    if layer.batch_first:
        x = jnp.swapaxes(x, 0, 1)  # time-major
    if x.shape[0] == 0:
        raise Deviation("an empty sequence: lax.scan runs it, torch (and lazyshape) reject it")
    b = x.shape[1]
    h_size, dirs = layer.hidden_size, 2 if layer.bidirectional else 1
    gh = GATES[type(layer).__name__] * h_size
    if state and len(state) != _states(layer):
        raise ValueError(f"{len(state)} states")
    finals: list[list[Any]] = [[] for _ in range(_states(layer))]
    want = (layer.num_layers * dirs, b, h_size)
    for s in state:  # the scans' initial carries; JAX would clamp s[idx] and broadcast 1s
        if tuple(s.shape) != want:
            raise ValueError(f"a state of shape {tuple(s.shape)}, expected {want}")
    for lyr in range(layer.num_layers):
        f = x.shape[2] if lyr or layer.input_size is None else layer.input_size
        outs = []
        for d in range(dirs):
            idx = lyr * dirs + d
            w_ih, w_hh = jax_param(gh, f), jax_param(gh, h_size)
            init = tuple(s[idx] for s in state) if state else tuple(
                jnp.zeros((b, h_size), x.dtype) for _ in range(_states(layer)))

            def step(carry: Any, xt: Any, w_ih: Any = w_ih, w_hh: Any = w_hh) -> Any:
                # lax.add: no broadcasting, so a state of the wrong shape fails here
                h = jax.lax.add(xt @ w_ih.T, carry[0] @ w_hh.T)[:, :h_size]
                new = (h,) + tuple(jax.lax.add(c, h) for c in carry[1:])
                return new, h

            last, out = jax.lax.scan(step, init, x[::-1] if d else x)
            outs.append(out[::-1] if d else out)
            for acc, s in zip(finals, last, strict=True):
                acc.append(s)
        x = outs[0] if dirs == 1 else jnp.concatenate(outs, axis=-1)
    y = jnp.swapaxes(x, 0, 1) if layer.batch_first else x
    if not layer.return_state:
        return y
    return (y, *(jnp.stack(acc) for acc in finals))


# -- ONNX ---------------------------------------------------------------------------------


def _onnx_rnn(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    op = type(layer).__name__
    s = specs[0]
    dirs = 2 if layer.bidirectional else 1
    gh = GATES[op] * layer.hidden_size
    layout = 1 if layer.batch_first else 0
    x = xs[0]
    f: Any = layer.input_size if layer.input_size is not None else s.shape[-1]
    states: list[list[str]] = [[] for _ in range(_states(layer))]
    for _ in range(layer.num_layers):
        ins = [x, g.input((dirs, gh, f)), g.input((dirs, gh, layer.hidden_size))]
        ins.append(g.input((dirs, 2 * gh)) if layer.bias else "")
        outs = g.node(op, ins, n_out=1 + _states(layer), hidden_size=layer.hidden_size,
                      direction="bidirectional" if dirs == 2 else "forward", layout=layout)
        y = outs[0]
        if layout == 0:  # Y (T, D, B, H) -> (T, B, D*H)
            (y,) = g.node("Transpose", [y], perm=[0, 2, 1, 3])
        (x,) = g.node("Reshape", [y, g.const([0, 0, -1])])
        for acc, st_ in zip(states, outs[1:], strict=True):
            if layout == 1:  # Y_h (B, D, H) -> (D, B, H)
                (st_,) = g.node("Transpose", [st_], perm=[1, 0, 2])
            acc.append(st_)
        f = dirs * layer.hidden_size
    if not layer.return_state:
        return [x]
    finals = [acc[0] if len(acc) == 1 else g.node("Concat", acc, axis=0)[0] for acc in states]
    return [x, *finals]


for _cls in (LSTM, GRU):
    register(
        _cls,
        layers=_layers(_cls),
        inputs=_valid,
        invalid=_invalid,
        oracles=(torch_oracle(_t_rnn), jax_oracle(_j_rnn), onnx_oracle()),
        batch_axes=_batch_axes,
        accepts=lambda s: s.ndim == 3 and is_float(s),
        atol=1e-4,
    )
    BUILDERS[_cls.__name__] = _onnx_rnn
