"""A GPT-2-small-shaped stack: token and learned position embeddings, pre-norm
blocks of causal self-attention and a GELU MLP, a final LayerNorm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import init as _init
from .._dims import format_shape
from .._errors import ShapeError
from .._graph import Input, Model, Sequential
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ..layers._common import at_most
from ..layers.activation import GELU
from ..layers.attention import MultiheadAttention
from ..layers.embedding import Embedding
from ..layers.linear import Linear
from ..layers.merge import Add
from ..layers.norm import LayerNorm


class PositionEmbedding(Layer):
    """Adds a learned position embedding: ``(B, T, E) -> (B, T, E)``, weight
    ``(max_len, E)`` initialized ``normal(std=0.02)``; ``T <= max_len``."""

    hparam_names = ("max_len", "embed_dim")

    def __init__(self, max_len: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.max_len = max_len
        self.embed_dim = None

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        if x.ndim != 3:
            raise ShapeError("an input of shape (B, T, E)", f"input shape {format_shape(x.shape)}")
        if not at_most(x.shape[1], self.max_len):
            raise ShapeError(
                f"at most `max_len` (={self.max_len}) positions",
                f"input shape {format_shape(x.shape)}",
            )
        return x

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return {"weight": ParamSpec((self.max_len, x.shape[2]), init=_init.normal(std=0.02))}

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x + params["weight"][: x.shape[1]]

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        return {"max_len": self.max_len, "embed_dim": inputs[0].shape[2] if inputs else None}


def gpt_block(embed_dim: int, num_heads: int, mlp_dim: int) -> Model:
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``+ mlp(ln_2(.))``."""
    x = Input(("B", "T", embed_dim), name="x")
    a = MultiheadAttention(num_heads, causal=True, name="attn")(LayerNorm(name="ln_1")(x))
    h = Add(name="add_1")(x, a)
    m = Sequential(
        {"c_fc": Linear(mlp_dim), "act": GELU("tanh"), "c_proj": Linear(embed_dim)}, name="mlp"
    )(LayerNorm(name="ln_2")(h))
    return Model(x, Add(name="add_2")(h, m), name="block")


def gpt2(
    vocab_size: int = 50257,
    max_len: int = 1024,
    num_layers: int = 12,
    embed_dim: int = 768,
    num_heads: int = 12,
    mlp_dim: int = 3072,
) -> Sequential:
    """GPT-2 small by default: token ids ``(B, T)`` -> hidden states ``(B, T, 768)``
    (no language-model head: GPT-2 ties it to the token embedding)."""
    blocks = Sequential(
        {str(i): gpt_block(embed_dim, num_heads, mlp_dim) for i in range(num_layers)}
    )
    return Sequential(
        {
            "wte": Embedding(vocab_size, embed_dim),
            "wpe": PositionEmbedding(max_len),
            "h": blocks,
            "ln_f": LayerNorm(),
        }
    )
