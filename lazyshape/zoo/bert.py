"""BERT's encoder (Devlin et al., 2019) with Hugging Face transformers' parameter
names (``BertModel``), so its state dict loads into the torch build; the sizes
come from a mapping with ``BertConfig``'s key names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import init as _init
from .. import ops
from .._cost import Cost, Saved
from .._dims import format_shape
from .._errors import ShapeError
from .._graph import Input, Model, Sequential
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ..layers.activation import GELU, Dropout, Tanh
from ..layers.attention import attention_costs, attention_saved
from ..layers.embedding import Embedding
from ..layers.linear import Linear
from ..layers.merge import Add
from ..layers.norm import LayerNorm
from .gpt import PositionEmbedding

#: ``BertConfig``'s defaults (bert-base): the keys `bert` reads
BERT_BASE: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}


def _sequence(x: TensorSpec, what: str) -> None:
    if x.ndim != 3:
        raise ShapeError(f"{what} of shape (B, T, E)", f"input shape {format_shape(x.shape)}")


class BertSelfAttention(Layer):
    """``BertSelfAttention``: query, key and value projections of ``(B, T, E)``
    (each ``weight (E, E)``, ``bias (E,)``), scaled dot-product attention over
    ``num_heads`` heads -> the context ``(B, T, E)`` (before the output
    projection, which is a `Linear` of its own in BERT)."""

    hparam_names = ("num_heads", "dropout")
    needs_context = True

    def __init__(self, num_heads: int, dropout: float = 0.0, *, name: str | None = None
                 ) -> None:
        super().__init__(name=name)
        self.num_heads = num_heads
        self.dropout = dropout

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        _sequence(x, "an input")
        e = x.shape[2]
        if type(e) is int and e % self.num_heads:
            raise ShapeError(f"an embedding dim divisible by `num_heads` (={self.num_heads})",
                             f"input shape {format_shape(x.shape)}")
        return x

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        e = x.shape[2]
        w = _init.normal(std=0.02)
        return {f"{p}.{k}": ParamSpec((e, e) if k == "weight" else (e,),
                                      init=w if k == "weight" else _init.zeros())
                for p in ("query", "key", "value") for k in ("weight", "bias")}

    def forward(self, params: Mapping[str, Any], x: Any, *, ctx: Any) -> Any:
        b, t, e = x.shape
        h = self.num_heads
        d = e // h

        def heads(p: str) -> Any:
            y = ops.linear(x, params[f"{p}.weight"], params[f"{p}.bias"])
            return ops.permute_dims(ops.reshape(y, (b, t, h, d)), (0, 2, 1, 3))

        p = self.dropout if ctx.training else 0.0
        o = ops.scaled_dot_product_attention(heads("query"), heads("key"), heads("value"),
                                             None, False, p, ctx.rng)
        return ops.reshape(ops.permute_dims(o, (0, 2, 1, 3)), (b, t, e))

    def costs(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
              ) -> tuple[Cost, ...]:
        b, t, e = inputs[0].shape
        h = self.num_heads
        return attention_costs(b, t, t, h, e // h, tuple(
            (b * t, e, e, 0, f"{p}.weight") for p in ("query", "key", "value")))

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        b, t, e = inputs[0].shape
        h = self.num_heads
        return attention_saved(b, t, t, h, h, e // h, inputs[0].dtype or "float32",
                               projected_output=False)


class TokenTypeEmbedding(Layer):
    """Adds row 0 of a learned ``weight (type_vocab_size, E)`` to ``(B, T, E)``:
    BERT's token-type embedding when every token is of type 0 (one segment)."""

    hparam_names = ("type_vocab_size",)

    def __init__(self, type_vocab_size: int = 2, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.type_vocab_size = type_vocab_size

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        _sequence(x, "an input")
        return x

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return {"weight": ParamSpec((self.type_vocab_size, x.shape[2]),
                                    init=_init.normal(std=0.02))}

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x + params["weight"][0]


class FirstToken(Layer):
    """``(B, T, E) -> (B, E)``: the first position (BERT's ``[CLS]``)."""

    hparam_names = ()

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        _sequence(x, "an input")
        if x.shape[1] == 0:
            raise ShapeError("at least one position", f"input shape {format_shape(x.shape)}")
        return x.with_shape((x.shape[0], x.shape[2]))

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return x[:, 0]


def _add_norm(dim: int, eps: float, dropout: float) -> Model:
    """BERT's ``BertSelfOutput`` / ``BertOutput``: ``LayerNorm(dense(h) + residual)``
    on inputs ``(h, residual)``."""
    h = Input(("B", "T", None), name="h")
    r = Input(("B", "T", dim), name="residual")
    y = Dropout(dropout, name="dropout")(Linear(dim, name="dense")(h))
    return Model([h, r], LayerNorm(eps=eps, name="LayerNorm")(Add(name="add")(y, r)),
                 name="output")


def bert_layer(cfg: Mapping[str, Any]) -> Model:
    """One ``BertLayer``: self-attention with its add & norm, then the GELU MLP
    (``intermediate``) with its add & norm. ``(B, T, E) -> (B, T, E)``."""
    e, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
    drop = cfg["hidden_dropout_prob"]
    x = Input(("B", "T", e), name="x")
    ctx = BertSelfAttention(cfg["num_attention_heads"], cfg["attention_probs_dropout_prob"],
                            name="self")(x)
    attention = Model(x, _add_norm(e, eps, drop)(ctx, x), name="attention")
    a = Input(("B", "T", e), name="x")
    a_out = attention(a)
    h = Sequential({"dense": Linear(cfg["intermediate_size"]), "intermediate_act_fn": GELU()},
                   name="intermediate")(a_out)
    return Model(a, _add_norm(e, eps, drop)(h, a_out), name="layer")


def bert(config: Mapping[str, Any] | None = None) -> Model:
    """BERT's encoder (``BertModel``: embeddings, encoder, pooler) on token ids
    ``(B, T)`` -> ``(last hidden states (B, T, E), pooled (B, E))``, every token
    of type 0. ``config``: a mapping with ``BertConfig``'s key names
    (``BertConfig(...).to_dict()`` works; unknown keys are ignored), default
    bert-base (`BERT_BASE`: 109,482,240 parameters)."""
    cfg = {**BERT_BASE, **{k: v for k, v in (config or {}).items() if k in BERT_BASE}}
    e = cfg["hidden_size"]
    if e % cfg["num_attention_heads"]:
        raise ShapeError("`hidden_size` divisible by `num_attention_heads`",
                         f"{e} and {cfg['num_attention_heads']}", kind="bert")
    ids = Input(("B", "T"), dtype="int64", name="input_ids")
    embeddings = Sequential(
        {
            "word_embeddings": Embedding(cfg["vocab_size"], e),
            "position_embeddings": PositionEmbedding(cfg["max_position_embeddings"]),
            "token_type_embeddings": TokenTypeEmbedding(cfg["type_vocab_size"]),
            "LayerNorm": LayerNorm(eps=cfg["layer_norm_eps"]),
            "dropout": Dropout(cfg["hidden_dropout_prob"]),
        },
        name="embeddings",
    )
    layers = Sequential({str(i): bert_layer(cfg) for i in range(cfg["num_hidden_layers"])},
                        name="layer")
    hidden = Sequential({"layer": layers}, name="encoder")(embeddings(ids))
    pooler = Sequential({"dense": Linear(e), "activation": Tanh()}, name="pooler")
    return Model(ids, [hidden, pooler(FirstToken(name="first")(hidden))], name="bert")


def bert_base() -> Model:
    """bert-base's encoder: `bert` with ``BertConfig``'s defaults."""
    return bert()


__all__ = ["BERT_BASE", "BertSelfAttention", "FirstToken", "TokenTypeEmbedding", "bert",
           "bert_base", "bert_layer"]
