"""Recurrent layers (LSTM, GRU): PyTorch's stacked, optionally bidirectional
recurrences, parameter names and initialization.

Canonical layout: input ``(B, T, F)`` (``batch_first=True``) or ``(T, B, F)``;
output ``(B, T, D*H)`` (or ``(T, B, D*H)``), ``D`` = 2 when bidirectional;
states ``(num_layers*D, B, H)`` whatever ``batch_first``.
"""

from __future__ import annotations

from .._dims import Dim, eq, format_shape
from .._errors import ShapeError
from .._init import fan_in_uniform
from .._specs import ParamSpec, TensorSpec
from ._common import FLOATING, assume_equal, check_floating, check_input_rank, unify

__all__ = [
    "GATES",
    "check_recurrent_input",
    "check_state",
    "recurrent_output_shape",
    "state_shape",
    "layer_input_size",
    "recurrent_param_names",
    "recurrent_params",
]

#: gates per cell, stacked in the weights' first dim in torch's order
#: (LSTM: input, forget, cell, output; GRU: reset, update, new)
GATES = {"LSTM": 4, "GRU": 3}


# -- validation ------------------------------------------------------------------


def check_recurrent_input(x: TensorSpec, input_size: int | None, batch_first: bool) -> Dim:
    """Validate the input sequence; return its feature size F."""
    check_input_rank(x, 3, "(B, T, F)" if batch_first else "(T, B, F)")
    if x.dtype not in FLOATING:
        check_floating(x)
    steps = x.shape[1 if batch_first else 0]
    if type(steps) is int and steps == 0:
        raise ShapeError(
            "a sequence length T >= 1", f"input shape {format_shape(x.shape)}"
        )
    got = x.shape[2]
    if type(got) is int and got == 0:
        raise ShapeError("an input size F >= 1", f"input shape {format_shape(x.shape)}")
    if input_size is None or got is input_size:
        return got
    same = eq(got, input_size)
    if same is False:
        raise ShapeError(
            f"expected last input dim {input_size} (input_size)",
            f"input shape {format_shape(x.shape)}",
        )
    if same is None:
        assume_equal(got, input_size)
    return input_size


def check_state(
    h: TensorSpec, what: str, x: TensorSpec, expected: tuple[Dim, ...]
) -> None:
    """An initial state ``what`` (``h_0``, ``c_0``) of shape ``(num_layers*D, B, H)``
    and the input's dtype."""
    if h.ndim != 3:
        raise ShapeError(
            f"`{what}` with 3 dims (num_layers*num_directions, B, H) = "
            f"{format_shape(expected)}",
            f"`{what}` shape {format_shape(h.shape)} ({h.ndim} dims)",
        )
    try:
        for got, want in zip(h.shape, expected, strict=True):
            unify(got, want, what)
    except ShapeError:
        raise ShapeError(
            f"`{what}` of shape (num_layers*num_directions, B, H) = {format_shape(expected)}",
            f"`{what}` shape {format_shape(h.shape)}",
        ) from None
    if h.dtype != x.dtype:
        raise ShapeError(f"`{what}` of the input's dtype {x.dtype}", f"`{what}` dtype {h.dtype}")


# -- shapes ----------------------------------------------------------------------


def recurrent_output_shape(
    x: TensorSpec, hidden_size: int, bidirectional: bool
) -> tuple[Dim, ...]:
    """``(B, T, F) -> (B, T, D*H)`` (either batch layout: the last dim changes)."""
    return (x.shape[0], x.shape[1], (2 if bidirectional else 1) * hidden_size)


def state_shape(
    x: TensorSpec, hidden_size: int, num_layers: int, bidirectional: bool, batch_first: bool
) -> tuple[Dim, ...]:
    """``(num_layers*D, B, H)``."""
    batch = x.shape[0 if batch_first else 1]
    return ((2 if bidirectional else 1) * num_layers, batch, hidden_size)


def layer_input_size(layer: int, input_size: Dim, hidden_size: int, bidirectional: bool) -> Dim:
    """The input size of stacked layer ``layer``: F for the first, ``D*H`` after."""
    return input_size if layer == 0 else (2 if bidirectional else 1) * hidden_size


# -- parameters ------------------------------------------------------------------


def recurrent_param_names(layer: int, reverse: bool) -> tuple[str, str, str, str]:
    """torch's names of one layer/direction: ``weight_ih_l0``, ..., ``bias_hh_l1_reverse``."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    return (f"weight_ih{sfx}", f"weight_hh{sfx}", f"bias_ih{sfx}", f"bias_hh{sfx}")


def recurrent_params(
    mode: str,
    input_size: Dim,
    hidden_size: int,
    num_layers: int,
    bias: bool,
    bidirectional: bool,
) -> dict[str, ParamSpec]:
    """For each layer and direction, in torch's order: ``weight_ih (G*H, in)``,
    ``weight_hh (G*H, H)``, ``bias_ih (G*H,)``, ``bias_hh (G*H,)``, G the gate
    count; all ``U(±1/sqrt(H))`` as torch's ``RNNBase.reset_parameters``."""
    gh = GATES[mode] * hidden_size
    init = fan_in_uniform(hidden_size)
    params: dict[str, ParamSpec] = {}
    for layer in range(num_layers):
        fan = layer_input_size(layer, input_size, hidden_size, bidirectional)
        for reverse in (False, True) if bidirectional else (False,):
            w_ih, w_hh, b_ih, b_hh = recurrent_param_names(layer, reverse)
            params[w_ih] = ParamSpec._make((gh, fan), None, init)
            params[w_hh] = ParamSpec._make((gh, hidden_size), None, init)
            if bias:
                params[b_ih] = ParamSpec._make((gh,), None, init)
                params[b_hh] = ParamSpec._make((gh,), None, init)
    return params
