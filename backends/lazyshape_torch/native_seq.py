"""Native torch modules for the sequence layers (registered into native.NATIVE).

Each is a thin subclass of the torch module (``nn.MultiheadAttention``,
``nn.LSTM``, ``nn.GRU``): construction, parameters, ``state_dict`` keys and
initialization are torch's own (bit-identical to the hand-written module after
the same ``torch.manual_seed``); only ``forward`` returns what the lazyshape
layer returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lazyshape._specs import ParamSpec
from lazyshape.layers.attention import MultiheadAttention as LsMultiheadAttention
from lazyshape.layers.recurrent import GRU as LsGRU
from lazyshape.layers.recurrent import LSTM as LsLSTM

from .native import register

__all__ = ["MultiheadAttention", "LSTM", "GRU"]


class MultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose forward takes ``(x)`` (self-attention),
    ``(query, key, value)`` or ``(query, key, value, key_padding_mask)`` and
    returns the attended output only; ``causal=True`` adds the causal mask."""

    def __init__(self, embed_dim: int, num_heads: int, *, causal: bool = False, **kw: Any) -> None:
        super().__init__(embed_dim, num_heads, **kw)
        self.causal = causal

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if key is None:
            key = value = query
        assert value is not None
        mask = None
        if self.causal:
            t = 1 if self.batch_first else 0
            mask = torch.ones(
                query.shape[t], key.shape[t], dtype=torch.bool, device=query.device
            ).triu(1)
        out, _ = super().forward(
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            attn_mask=mask,
            is_causal=self.causal,
        )
        return out

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"batch_first={self.batch_first}, causal={self.causal}"
        )


class _ReturnState:
    """Mixin for ``nn.LSTM`` / ``nn.GRU``: forward takes the initial states as
    separate inputs and returns the output only, or with ``return_state`` torch's
    own ``(output, state)``."""

    return_state: bool

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> Any:  # type: ignore[override]
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


@register(LsMultiheadAttention)
def _attention(
    layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any
) -> nn.Module:
    embed_dim = int(specs["out_proj.weight"].shape[0])
    kdim = vdim = None
    if "k_proj_weight" in specs:
        kdim = int(specs["k_proj_weight"].shape[1])
        vdim = int(specs["v_proj_weight"].shape[1])
    return MultiheadAttention(
        embed_dim,
        layer.num_heads,
        causal=layer.causal,
        dropout=layer.dropout,
        bias="in_proj_bias" in specs,
        kdim=kdim,
        vdim=vdim,
        batch_first=layer.batch_first,
        dtype=dtype,
        device=device,
    )


def _recurrent(cls: type[nn.Module]) -> Any:
    def factory(
        layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any
    ) -> nn.Module:
        gates_h, input_size = specs["weight_ih_l0"].shape
        return cls(
            int(input_size),
            int(specs["weight_hh_l0"].shape[1]),
            num_layers=layer.num_layers,
            bias="bias_ih_l0" in specs,
            batch_first=layer.batch_first,
            # torch warns that dropout after the last layer does nothing: pass none
            dropout=layer.dropout if layer.num_layers > 1 else 0.0,
            bidirectional="weight_ih_l0_reverse" in specs,
            return_state=layer.return_state,
            dtype=dtype,
            device=device,
        )

    return factory


register(LsLSTM)(_recurrent(LSTM))
register(LsGRU)(_recurrent(GRU))
