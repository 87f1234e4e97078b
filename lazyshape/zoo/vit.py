"""Vision Transformer (Dosovitskiy et al., 2021) with torchvision's module names,
so a state dict of torchvision's ``vit_b_16`` loads into the torch build."""

from __future__ import annotations

from .. import init as _init
from .._graph import Input, Model, Sequential
from ..layers.activation import GELU, Dropout
from ..layers.attention import MultiheadAttention
from ..layers.conv import Conv2d
from ..layers.embedding import LearnedTensor
from ..layers.linear import Linear
from ..layers.merge import Add, Concat
from ..layers.norm import LayerNorm
from ..layers.reshape import Flatten, Transpose
from .bert import FirstToken


def encoder_block(hidden_dim: int, num_heads: int, mlp_dim: int, dropout: float = 0.0
                  ) -> Model:
    """torchvision's ``EncoderBlock``: pre-norm self-attention (``ln_1``,
    ``self_attention``) and a GELU MLP (``ln_2``, ``mlp.0`` / ``mlp.3``), each
    added back. ``(B, T, hidden_dim) -> (B, T, hidden_dim)``."""
    x = Input(("B", "T", hidden_dim), name="x")
    a = MultiheadAttention(num_heads, batch_first=True, name="self_attention")(
        LayerNorm(eps=1e-6, name="ln_1")(x))
    h = Add(name="add_1")(Dropout(dropout, name="dropout")(a), x)
    mlp = Sequential({"0": Linear(mlp_dim), "1": GELU(), "2": Dropout(dropout),
                      "3": Linear(hidden_dim), "4": Dropout(dropout)}, name="mlp")
    return Model(x, Add(name="add_2")(h, mlp(LayerNorm(eps=1e-6, name="ln_2")(h))),
                 name="encoder_block")


def vit(
    patch_size: int = 16,
    num_layers: int = 12,
    num_heads: int = 12,
    hidden_dim: int = 768,
    mlp_dim: int = 3072,
    num_classes: int = 1000,
    dropout: float = 0.0,
) -> Model:
    """torchvision's ``VisionTransformer`` on ``(B, 3, H, W)`` images -> ``(B,
    num_classes)`` logits: ``patch_size`` patches (``conv_proj``), a class token,
    a learned position embedding of one row per patch and the class token,
    ``num_layers`` encoder blocks, the class token's head. The position
    embedding's length follows the image size (197 at 224x224 with 16x16
    patches); a checkpoint fixes it."""
    x = Input(("B", 3, None, None), name="x")
    patches = Conv2d(hidden_dim, patch_size, stride=patch_size, name="conv_proj")(x)
    tokens = Transpose(1, 2, name="to_tokens")(Flatten(2, name="flatten")(patches))
    cls = LearnedTensor((1, 1, "D"), batch=True, name="class_token")(tokens)
    h = Concat(dim=1, name="concat")(cls, tokens)

    e_in = Input(("B", None, hidden_dim), name="x")
    pos = LearnedTensor((1, "T", "D"), init=_init.normal(std=0.02), name="pos_embedding")(e_in)
    e = Dropout(dropout, name="dropout")(Add(name="add")(e_in, pos))
    layers = Sequential(
        {f"encoder_layer_{i}": encoder_block(hidden_dim, num_heads, mlp_dim, dropout)
         for i in range(num_layers)},
        name="layers",
    )
    e = LayerNorm(eps=1e-6, name="ln")(layers(e))
    encoder = Model(e_in, e, name="encoder")

    heads = Sequential({"head": Linear(num_classes)}, name="heads")
    return Model(x, heads(FirstToken(name="class_output")(encoder(h))), name="vit")


def vit_b_16(num_classes: int = 1000) -> Model:
    """ViT-B/16 (torchvision's ``vit_b_16``): 86,567,656 parameters on 224x224."""
    return vit(16, 12, 12, 768, 3072, num_classes)
