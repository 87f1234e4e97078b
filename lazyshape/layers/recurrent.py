"""``LSTM`` and ``GRU``: PyTorch's recurrent layers whose input size is inferred.

They return the output sequence, so they stack in a `Sequential`; with
``return_state=True`` they return ``(output, state)`` as torch does.

PyTorch's stacked, optionally bidirectional recurrences, parameter names
and initialization. The module holds the rules (pure functions of specs
and hyperparameters), then the layer classes.

Canonical layout: input ``(B, T, F)`` (``batch_first=True``) or ``(T, B, F)``;
output ``(B, T, D*H)`` (or ``(T, B, D*H)``), ``D`` = 2 when bidirectional;
states ``(num_layers*D, B, H)`` whatever ``batch_first``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._cost import INTERNAL, Cost, Saved, matmul_cost
from .._dims import Dim, eq, format_shape
from .._errors import ShapeError
from .._init import fan_in_uniform
from .._layer import Context, Layer
from .._specs import ParamSpec, TensorSpec, itemsize
from ._common import (
    FLOATING,
    assume_equal,
    check_floating,
    check_rank,
    positive_int,
    probability,
    unify,
)

__all__ = [
    "LSTM",
    "GRU",
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
#: stacked layers one recurrent layer may hold (each adds four parameter tensors)
MAX_STACKED_LAYERS = 65_536


# -- validation ------------------------------------------------------------------


def check_recurrent_input(x: TensorSpec, input_size: int | None, batch_first: bool) -> Dim:
    """Validate the input sequence; return its feature size F."""
    check_rank(x, 3, "(B, T, F)" if batch_first else "(T, B, F)")
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


# -- layers ----------------------------------------------------------------------


class _Recurrent(Layer):
    """Shared by `LSTM` and `GRU`: hyperparameters, shape and parameter rules,
    and the stacked, optionally bidirectional forward over one-layer ops."""

    hparam_names = (
        "input_size",
        "hidden_size",
        "num_layers",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
        "return_state",
    )
    expected_ndim = 3
    needs_context = True
    #: the initial / final states: ``("h_0",)`` (GRU) or ``("h_0", "c_0")`` (LSTM)
    _states: ClassVar[tuple[str, ...]] = ()
    #: the cell type (`GATES` key)
    _mode: ClassVar[str] = ""

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        batch_first: bool = True,
        *,
        input_size: int | None = None,
        return_state: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = self.kind
        self.hidden_size = positive_int(hidden_size, "hidden_size", kind)
        self.num_layers = positive_int(num_layers, "num_layers", kind, MAX_STACKED_LAYERS)
        if input_size is not None:
            positive_int(input_size, "input_size", kind)
        self.input_size = input_size
        for key, value in (
            ("batch_first", batch_first),
            ("return_state", return_state),
            ("bidirectional", bidirectional),
        ):
            if not isinstance(value, bool):
                raise ShapeError(f"`{key}` a bool", f"`{key}` (={value!r})", kind=kind)
        self.batch_first = batch_first
        self.return_state = return_state
        self.bidirectional = bidirectional
        self.bias = bool(bias)
        self.dropout = probability(dropout, "dropout", kind)

    @property
    def num_outputs(self) -> int:  # type: ignore[override]
        """1 (the output sequence), or 1 + the number of states with ``return_state``."""
        return 1 + len(self._states) if self.return_state else 1

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    # -- rules ----------------------------------------------------------------

    def _check(self, x: TensorSpec, state: tuple[TensorSpec, ...]) -> Any:
        size = check_recurrent_input(x, self.input_size, self.batch_first)
        if state and len(state) != len(self._states):
            names = ", ".join(self._states)
            raise ShapeError(
                f"1 input (the sequence) or {1 + len(self._states)} (the sequence, {names})",
                f"{1 + len(state)} inputs",
            )
        shape = state_shape(
            x, self.hidden_size, self.num_layers, self.bidirectional, self.batch_first
        )
        for spec, what in zip(state, self._states, strict=False):
            check_state(spec, what, x, shape)
        return size, shape

    def output_spec(self, x: TensorSpec, *state: TensorSpec) -> Any:
        _, shape = self._check(x, state)
        out = TensorSpec._make(
            recurrent_output_shape(x, self.hidden_size, self.bidirectional), x.dtype
        )
        if not self.return_state:
            return out
        return (out, *(TensorSpec._make(shape, x.dtype) for _ in self._states))

    def param_specs(self, x: TensorSpec, *state: TensorSpec) -> dict[str, ParamSpec]:
        size, _ = self._check(x, state)
        return recurrent_params(
            self._mode, size, self.hidden_size, self.num_layers, self.bias, self.bidirectional
        )

    # -- computation ----------------------------------------------------------

    def _cell(
        self, params: Mapping[str, Any], x: Any, init: tuple[Any, ...], layer: int, reverse: bool
    ) -> tuple[Any, ...]:
        """``(out (T, B, H), *final states (B, H))`` of one layer in one direction."""
        raise NotImplementedError

    def forward(self, params: Mapping[str, Any], x: Any, *state: Any, ctx: Context) -> Any:
        if self.batch_first:
            x = ops.permute_dims(x, (1, 0, 2))  # time-major for the ops
        dirs = self._directions
        finals: list[list[Any]] = [[] for _ in self._states]
        keep = None
        for layer in range(self.num_layers):
            if layer and keep is not None:
                x = x * keep[layer - 1]
            outs = []
            for d in range(dirs):
                idx = layer * dirs + d
                init = tuple(s[idx] for s in state) if state else (None,) * len(self._states)
                out, *last = self._cell(params, x, init, layer, d == 1)
                outs.append(out)
                for acc, h in zip(finals, last, strict=True):
                    acc.append(h)
            x = outs[0] if dirs == 1 else ops.concat(outs, axis=-1)
            if (
                layer == 0 and self.num_layers > 1 and ctx.training and self.dropout > 0.0
            ):  # one draw for every layer boundary: a JAX key gives one mask per call
                ones = ops.ones_like(x)
                keep = ops.dropout(ops.stack([ones] * (self.num_layers - 1)), self.dropout, ctx.rng)
        y = ops.permute_dims(x, (1, 0, 2)) if self.batch_first else x
        if not self.return_state:
            return y
        return (y, *(ops.stack(acc, axis=0) for acc in finals))

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim == 3:
            hp["input_size"] = inputs[0].shape[2]
        return hp

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        """Per layer and direction: the input projection of every step at once,
        then one hidden-state product per step. The first step's hidden state
        is the given state (input 1), or zeros that need no gradient."""
        x = inputs[0]
        t, b, f = (x.shape[1], x.shape[0], x.shape[2]) if self.batch_first else x.shape
        h = self.hidden_size
        gh = GATES[self._mode] * h
        costs: list[Cost] = []
        if type(t) is int and t == 0:
            return ()
        for layer in range(self.num_layers):
            fan = layer_input_size(layer, f, h, self.bidirectional)
            for reverse in (False, True) if self.bidirectional else (False,):
                w_ih, w_hh, _, _ = recurrent_param_names(layer, reverse)
                costs.append(matmul_cost(t * b, gh, fan, 0 if layer == 0 else INTERNAL, w_ih))
                first = 2 * b * gh * h
                costs.append(Cost(first, ((1, first), (w_hh, first)) if len(inputs) > 1
                                  else ((w_hh, first),)))
                costs.append(matmul_cost(b, gh, h, INTERNAL, w_hh, t - 1))
        return tuple(costs)

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        """An estimate of what autograd keeps of the step-by-step recurrence: per
        step, layer and direction, the gates after their activations and three
        hidden-sized values (the previous hidden and cell states, the cell's
        tanh); and each stacked layer's input sequence."""
        x = inputs[0]
        t, b = (x.shape[1], x.shape[0]) if self.batch_first else (x.shape[0], x.shape[1])
        h, dirs, size = self.hidden_size, self._directions, itemsize(x.dtype or "float32")
        per_step = (GATES[self._mode] + 3) * h * size
        layers_in = (self.num_layers - 1) * dirs * h * size
        return Saved((0,), (), t * b * (self.num_layers * dirs * per_step + layers_in))


class LSTM(_Recurrent):
    """Long short-term memory, as ``torch.nn.LSTM``.

    Input ``(B, T, F)`` (``batch_first=True``, the default) or ``(T, B, F)``;
    output ``(B, T, D*H)``, ``D`` = 2 when ``bidirectional``. ``input_size``
    (F) is inferred from the input when omitted, checked when given. Optional
    initial states: ``lstm(x, h_0, c_0)``, each ``(num_layers*D, B, H)``; zeros
    otherwise. With ``return_state=True`` it returns ``(output, (h_n, c_n))``.
    ``dropout`` applies between stacked layers in training.

    Parameters are torch's: ``weight_ih_l{k}`` ``(4H, F)`` (``(4H, D*H)`` for
    ``k > 0``), ``weight_hh_l{k}`` ``(4H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
    ``(4H,)`` (``..._reverse`` for the backward direction), gates in torch's
    order (i, f, g, o), all initialized ``U(±1/sqrt(H))``.
    """

    _states = ("h_0", "c_0")
    _mode = "LSTM"

    def _cell(
        self, params: Mapping[str, Any], x: Any, init: tuple[Any, ...], layer: int, reverse: bool
    ) -> tuple[Any, ...]:
        w_ih, w_hh, b_ih, b_hh = recurrent_param_names(layer, reverse)
        out: tuple[Any, ...] = ops.lstm(
            x, init[0], init[1], params[w_ih], params[w_hh], params.get(b_ih),
            params.get(b_hh), reverse,
        )
        return out

    def pack_outputs(self, outs: tuple[Any, ...]) -> Any:
        """``(output, (h_n, c_n))`` as torch returns."""
        return (outs[0], (outs[1], outs[2])) if len(outs) == 3 else super().pack_outputs(outs)


class GRU(_Recurrent):
    """Gated recurrent unit, as ``torch.nn.GRU``.

    Input ``(B, T, F)`` (``batch_first=True``, the default) or ``(T, B, F)``;
    output ``(B, T, D*H)``. ``input_size`` is inferred when omitted, checked
    when given. Optional initial state: ``gru(x, h_0)``, ``(num_layers*D, B, H)``.
    With ``return_state=True`` it returns ``(output, h_n)``.

    Parameters are torch's: ``weight_ih_l{k}`` ``(3H, F)``, ``weight_hh_l{k}``
    ``(3H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(3H,)``, gates in torch's
    order (r, z, n), all initialized ``U(±1/sqrt(H))``.
    """

    _states = ("h_0",)
    _mode = "GRU"

    def _cell(
        self, params: Mapping[str, Any], x: Any, init: tuple[Any, ...], layer: int, reverse: bool
    ) -> tuple[Any, ...]:
        w_ih, w_hh, b_ih, b_hh = recurrent_param_names(layer, reverse)
        out: tuple[Any, ...] = ops.gru(
            x, init[0], params[w_ih], params[w_hh], params.get(b_ih), params.get(b_hh), reverse
        )
        return out

    def pack_outputs(self, outs: tuple[Any, ...]) -> Any:
        """``(output, h_n)`` as torch returns."""
        return (outs[0], outs[1]) if len(outs) == 2 else super().pack_outputs(outs)
