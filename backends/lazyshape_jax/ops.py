"""The NN operations for JAX arrays: the backend op protocol, the same names and
signatures in every backend's ``ops`` module (``ls.ops`` dispatches here).
Each layer family's ops live in the module of the family's name."""

from .activation import dropout as dropout
from .activation import gelu as gelu
from .activation import leaky_relu as leaky_relu
from .activation import relu as relu
from .activation import sigmoid as sigmoid
from .activation import silu as silu
from .activation import softmax as softmax
from .attention import scaled_dot_product_attention as scaled_dot_product_attention
from .conv import conv as conv
from .conv import conv_transpose as conv_transpose
from .conv import pad as pad
from .embedding import embedding as embedding
from .linear import linear as linear
from .pool import adaptive_avg_pool as adaptive_avg_pool
from .pool import avg_pool as avg_pool
from .pool import max_pool as max_pool
from .recurrent import gru as gru
from .recurrent import lstm as lstm

__all__ = [
    "dropout",
    "gelu",
    "leaky_relu",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "scaled_dot_product_attention",
    "conv",
    "conv_transpose",
    "pad",
    "embedding",
    "linear",
    "adaptive_avg_pool",
    "avg_pool",
    "max_pool",
    "gru",
    "lstm",
]
