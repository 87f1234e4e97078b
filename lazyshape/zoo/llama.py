"""Llama (Touvron et al., 2023) as Hugging Face transformers' ``LlamaForCausalLM``:
token ids ``(B, T)`` -> next-token logits ``(B, T, vocab_size)``, with its
parameter names, so its checkpoints load into the torch build; the sizes come
from a mapping with ``LlamaConfig``'s key names. Built from the public layers:
`Embedding`, `RMSNorm`, `Attention` (grouped-query heads, causal, RoPE),
`SwiGLU`, `Linear`; a tied language-model head is a `TiedEmbedding` called
twice (one weight, both uses)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .. import ops
from .._cost import Cost
from .._errors import ShapeError
from .._graph import Input, Model, Sequential
from .._specs import FLOATING, ParamSpec, TensorSpec, normalize_dtype
from ..layers.attention import DEFAULT_ROPE_THETA, Attention, SwiGLU
from ..layers.embedding import ID_DTYPES, Embedding, embedding_output, embedding_params
from ..layers.linear import Linear, linear_costs, linear_output
from ..layers.merge import Add
from ..layers.norm import RMSNorm

#: ``LlamaConfig``'s defaults (a Llama-2-7B shape, 6,738,415,616 parameters):
#: the keys `llama` reads. ``num_key_value_heads`` and ``head_dim`` None mean
#: ``num_attention_heads`` and ``hidden_size // num_attention_heads``; RoPE's
#: base is ``rope_parameters["rope_theta"]`` (or a top-level ``rope_theta``).
LLAMA_DEFAULTS: dict[str, Any] = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "head_dim": None,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "pad_token_id": None,
    "tie_word_embeddings": False,
    "rope_parameters": None,
    "rope_theta": None,
    "rope_scaling": None,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
}

#: published model shapes, by name, as `llama` configs (``LlamaConfig`` keys):
#: ``"7b"`` is Llama 2 7B (``LlamaConfig()``'s defaults), ``"13b"`` Llama 2 13B,
#: ``"8b"`` and ``"70b"`` Llama 3's (grouped-query attention, a 128,256-token
#: vocabulary, RoPE base 500,000)
LLAMA_PRESETS: dict[str, dict[str, Any]] = {
    "7b": {},
    "13b": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
            "num_attention_heads": 40},
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
           "rope_theta": 500000.0},
    "70b": {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
            "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
            "rope_theta": 500000.0},
}

_KIND = "llama"


def _fail(expected: str, got: str) -> ShapeError:
    return ShapeError(expected, got, kind=_KIND)


def _positive(cfg: Mapping[str, Any], key: str) -> int:
    value = cfg[key]
    if type(value) is not int or value <= 0:
        raise _fail(f"`{key}` to be a positive int", f"`{key}` (={value!r})")
    return value


def _flag(cfg: Mapping[str, Any], key: str) -> bool:
    value = cfg[key]
    if not isinstance(value, bool):
        raise _fail(f"`{key}` to be a bool", f"`{key}` (={value!r})")
    return value


def _rope_type(params: object, key: str) -> Mapping[str, Any] | None:
    """``params`` (a ``rope_parameters`` / legacy ``rope_scaling`` mapping, or
    None) checked to be Llama's plain RoPE, ``rope_type`` "default"."""
    if params is None:
        return None
    if not isinstance(params, Mapping) or any(isinstance(v, Mapping) for v in params.values()):
        raise _fail(f"`{key}` one mapping of rope_type and rope_theta (Llama's one RoPE for "
                    "every layer), or None", f"`{key}` (={params!r})")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise _fail(
            f"`{key}` with rope_type 'default' (Llama's plain RoPE: the scaled variants "
            "are not expressed)",
            f"`{key}['rope_type']` (={rope_type!r})",
        )
    return params


def _rope_theta(cfg: Mapping[str, Any]) -> float:
    """RoPE's base: ``rope_parameters["rope_theta"]`` (transformers 5), or a
    top-level ``rope_theta`` (older configs), default 10000; the two must agree
    when both are given."""
    params = _rope_type(cfg["rope_parameters"], "rope_parameters")
    _rope_type(cfg["rope_scaling"], "rope_scaling")
    nested = None if params is None else params.get("rope_theta")
    top = cfg["rope_theta"]
    if nested is not None and top is not None and nested != top:
        raise _fail(
            "one RoPE base: `rope_parameters['rope_theta']` and `rope_theta` equal",
            f"`rope_parameters['rope_theta']` (={nested!r}), `rope_theta` (={top!r})",
        )
    theta = nested if nested is not None else top if top is not None else DEFAULT_ROPE_THETA
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not (
        math.isfinite(theta) and theta > 0
    ):
        raise _fail("a RoPE base (`rope_theta`) that is a positive finite number",
                    f"`rope_theta` (={theta!r})")
    return float(theta)


def llama_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The sizes `llama` builds from ``config`` (``LlamaConfig``'s key names;
    unknown keys ignored), defaults filled in and checked: ``num_key_value_heads``
    and ``head_dim`` resolved, ``rope_theta`` the RoPE base. A config the model
    cannot express (another ``hidden_act``, a scaled RoPE, attention dropout)
    is a `ShapeError` naming the key."""
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"zoo.llama takes a mapping of LlamaConfig's keys, got {config!r}")
    cfg = {**LLAMA_DEFAULTS, **{k: v for k, v in (config or {}).items() if k in LLAMA_DEFAULTS}}
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads"):
        _positive(cfg, key)
    for key in ("tie_word_embeddings", "attention_bias", "mlp_bias"):
        _flag(cfg, key)
    heads = cfg["num_attention_heads"]
    if cfg["num_key_value_heads"] is None:
        cfg["num_key_value_heads"] = heads
    kv = _positive(cfg, "num_key_value_heads")
    if heads % kv:
        raise _fail(
            "`num_key_value_heads` dividing `num_attention_heads` (each key/value head "
            "serves a group of query heads)",
            f"`num_attention_heads` (={heads}), `num_key_value_heads` (={kv})",
        )
    if cfg["head_dim"] is None:
        if cfg["hidden_size"] % heads:
            raise _fail(
                "`hidden_size` divisible by `num_attention_heads` (or `head_dim` given)",
                f"`hidden_size` (={cfg['hidden_size']}), `num_attention_heads` (={heads})",
            )
        cfg["head_dim"] = cfg["hidden_size"] // heads
    if _positive(cfg, "head_dim") % 2:
        raise _fail("an even `head_dim` (RoPE rotates the two halves of each head)",
                    f"`head_dim` (={cfg['head_dim']})")
    if cfg["hidden_act"] != "silu":
        raise _fail("`hidden_act` 'silu' (Llama's SwiGLU MLP)",
                    f"`hidden_act` (={cfg['hidden_act']!r})")
    dropout = cfg["attention_dropout"]
    if dropout not in (None, 0, 0.0):
        raise _fail("`attention_dropout` 0 (the attention here has no dropout)",
                    f"`attention_dropout` (={dropout!r})")
    eps = cfg["rms_norm_eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (
        math.isfinite(eps) and eps > 0
    ):
        raise _fail("`rms_norm_eps` to be a positive finite number", f"`rms_norm_eps` (={eps!r})")
    pad = cfg["pad_token_id"]
    if pad is not None and (type(pad) is not int or not 0 <= pad < cfg["vocab_size"]):
        raise _fail(f"`pad_token_id` in [0, {cfg['vocab_size'] - 1}] (a row of the token "
                    "embedding) or None", f"`pad_token_id` (={pad!r})")
    cfg["rope_theta"] = _rope_theta(cfg)
    return cfg


class TiedEmbedding(Embedding):
    """An `Embedding` that is also the model's output projection (a language
    model's head tied to its token embedding): one ``weight (num_embeddings,
    embedding_dim)``, two uses.

    Called on integer ids ``(*)`` (int32 or int64) it looks them up, ``(*) ->
    (*, embedding_dim)``, as `Embedding`; called on floating vectors ``(*,
    embedding_dim)`` it scores them against every row, ``x @ weight.T`` ->
    ``(*, num_embeddings)`` (the logits). Call the same layer at both places
    (a shared layer): the parameter lives at the first call, the later call
    shares it, and on every backend the two uses update the one weight."""

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        if x.dtype in FLOATING:
            return linear_output(x, self.num_embeddings, self.embedding_dim)
        if x.dtype not in ID_DTYPES:
            raise ShapeError(
                "integer ids (int32 or int64) to embed, or floating vectors (*, E) to score "
                "against the embedding", f"dtype {x.dtype}")
        return embedding_output(x, self.embedding_dim)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return embedding_params(self.num_embeddings, self.embedding_dim)

    def costs(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
              ) -> tuple[Cost, ...]:
        x = inputs[0]
        return (linear_costs(x, self.num_embeddings),) if x.dtype in FLOATING else ()

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        if normalize_dtype(x.dtype) in FLOATING:
            return ops.linear(x, params["weight"])
        return ops.embedding(x, params["weight"], self.padding_idx)


def llama_decoder_layer(config: Mapping[str, Any] | None = None) -> Model:
    """One ``LlamaDecoderLayer``, ``(B, T, E) -> (B, T, E)``: pre-norm causal
    self-attention (grouped-query heads, RoPE) and a SwiGLU MLP, each added to
    its input. ``config`` as for `llama`."""
    return _decoder_layer(llama_config(config))


def _decoder_layer(cfg: Mapping[str, Any]) -> Model:
    e, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
    x = Input(("B", "T", e), name="x")
    h = RMSNorm(eps=eps, name="input_layernorm")(x)
    a = Attention(cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"],
                  bias=cfg["attention_bias"], is_causal=True, rope=cfg["rope_theta"],
                  name="self_attn")(h)
    h = Add(name="add_1")(x, a)
    m = SwiGLU(cfg["intermediate_size"], bias=cfg["mlp_bias"], name="mlp")(
        RMSNorm(eps=eps, name="post_attention_layernorm")(h))
    return Model(x, Add(name="add_2")(h, m), name="layer")


def llama(config: Mapping[str, Any] | None = None) -> Sequential:
    """Llama as ``LlamaForCausalLM``: token ids ``(B, T)`` -> logits ``(B, T,
    vocab_size)``, causal (position ``t`` sees tokens ``0 .. t``), positions
    ``0 .. T-1`` rotated by RoPE.

    ``config``: a mapping with ``LlamaConfig``'s key names
    (``LlamaConfig(...).to_dict()`` works; unknown keys are ignored), default
    `LLAMA_DEFAULTS`. It reads ``vocab_size``, ``hidden_size``,
    ``intermediate_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``num_key_value_heads``, ``head_dim``, ``rms_norm_eps``, ``pad_token_id``,
    the RoPE base (``rope_parameters["rope_theta"]`` or ``rope_theta``),
    ``attention_bias``, ``mlp_bias`` and ``tie_word_embeddings``;
    ``max_position_embeddings`` is not needed (RoPE is computed for any
    length) and ``dtype`` is the build's choice. A config it cannot express
    (``rope_type`` other than "default", ``hidden_act`` other than "silu",
    ``attention_dropout`` > 0) is a `ShapeError` naming the key.

    Parameter names are ``LlamaForCausalLM``'s: ``model.embed_tokens.weight``,
    ``model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`` (and ``.bias`` with
    ``attention_bias``), ``model.layers.{i}.mlp.{gate,up,down}_proj.weight``,
    ``model.layers.{i}.input_layernorm.weight``,
    ``model.layers.{i}.post_attention_layernorm.weight``, ``model.norm.weight``,
    ``lm_head.weight``. The same set as transformers', listed in the order of
    the computation: in each layer ``input_layernorm``, ``self_attn``,
    ``post_attention_layernorm``, ``mlp`` (transformers lists ``self_attn``,
    ``mlp``, then the two norms; a state dict loads by name, in any order).

    With ``tie_word_embeddings`` the head is the token embedding itself (a
    `TiedEmbedding` called twice): there is no ``lm_head.weight``, as in
    transformers' checkpoint files of a tied model. (A live tied
    ``LlamaForCausalLM``'s ``state_dict()`` lists the shared tensor under both
    names: drop ``lm_head.weight`` before a strict load.)
    """
    cfg = llama_config(config)
    vocab, e = cfg["vocab_size"], cfg["hidden_size"]
    tied = cfg["tie_word_embeddings"]
    embed = (TiedEmbedding if tied else Embedding)(vocab, e, cfg["pad_token_id"])
    layers = Sequential(
        {str(i): _decoder_layer(cfg) for i in range(cfg["num_hidden_layers"])},
        name="layers",
    )
    model = Sequential(
        {"embed_tokens": embed, "layers": layers, "norm": RMSNorm(eps=cfg["rms_norm_eps"])},
        name="model",
    )
    head = embed if tied else Linear(vocab, bias=False)
    return Sequential({"model": model, "lm_head": head}, name="llama")


__all__ = ["LLAMA_DEFAULTS", "TiedEmbedding", "llama", "llama_config", "llama_decoder_layer"]
