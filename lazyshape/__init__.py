"""lazyshape: framework-agnostic deferred initialization and symbolic shape inference.

Define a model once with no input sizes, infer every shape from a concrete
batch or a symbolic spec such as ``("B", 3, "H", "W")``, and build it on NumPy,
PyTorch or JAX::

    import lazyshape as ls

    net = ls.Sequential(ls.Linear(256), ls.ReLU(), ls.Linear(10))
    ls.infer(net, ("B", 20)).output        # TensorSpec((B, 10), float32)
    m = ls.build(net, "torch")             # a real torch.nn.Module
"""

from . import backend as backend
from . import dims as dims
from . import init as init
from . import ops as ops
from ._backends import asarray as asarray
from ._backends import backends as backends
from ._backends import to_numpy as to_numpy
from ._build import build as build
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import load as load
from ._checkpoint import save as save
from ._cost import Cost as Cost
from ._cost import Saved as Saved
from ._cost import matmul_cost as matmul_cost
from ._dims import Dim as Dim
from ._dims import Expr as Expr
from ._dims import Sym as Sym
from ._errors import ShapeError as ShapeError
from ._export import export as export
from ._graph import Input as Input
from ._graph import Model as Model
from ._graph import Module as Module
from ._graph import Sequential as Sequential
from ._layer import Context as Context
from ._layer import Layer as Layer
from ._layer import SymbolicTensor as SymbolicTensor
from ._memory import MemoryLimitError as MemoryLimitError
from ._partition import Partition as Partition
from ._partition import ShardSpec as ShardSpec
from ._plot import plot as plot
from ._propagate import Inference as Inference
from ._propagate import LayerRecord as LayerRecord
from ._propagate import MemoryEstimate as MemoryEstimate
from ._propagate import infer as infer
from ._shard import init_ as init_
from ._shard import shard as shard
from ._sharded_checkpoint import load_sharded as load_sharded
from ._sharded_checkpoint import save_sharded as save_sharded
from ._specs import ParamSpec as ParamSpec
from ._specs import Placeholder as Placeholder
from ._specs import TensorSpec as TensorSpec
from ._summary import summary as summary
from .layers.activation import ELU as ELU
from .layers.activation import GELU as GELU
from .layers.activation import Dropout as Dropout
from .layers.activation import DropPath as DropPath
from .layers.activation import Hardsigmoid as Hardsigmoid
from .layers.activation import Hardswish as Hardswish
from .layers.activation import Identity as Identity
from .layers.activation import LeakyReLU as LeakyReLU
from .layers.activation import Mish as Mish
from .layers.activation import ReLU as ReLU
from .layers.activation import ReLU6 as ReLU6
from .layers.activation import Sigmoid as Sigmoid
from .layers.activation import SiLU as SiLU
from .layers.activation import Softmax as Softmax
from .layers.activation import Softplus as Softplus
from .layers.activation import Tanh as Tanh
from .layers.attention import Attention as Attention
from .layers.attention import MultiheadAttention as MultiheadAttention
from .layers.attention import RotaryEmbedding as RotaryEmbedding
from .layers.attention import SwiGLU as SwiGLU
from .layers.conv import Conv1d as Conv1d
from .layers.conv import Conv2d as Conv2d
from .layers.conv import Conv3d as Conv3d
from .layers.conv import ConvTranspose1d as ConvTranspose1d
from .layers.conv import ConvTranspose2d as ConvTranspose2d
from .layers.conv import ConvTranspose3d as ConvTranspose3d
from .layers.embedding import Embedding as Embedding
from .layers.embedding import LearnedTensor as LearnedTensor
from .layers.linear import LayerScale as LayerScale
from .layers.linear import Linear as Linear
from .layers.merge import Add as Add
from .layers.merge import Concat as Concat
from .layers.merge import Multiply as Multiply
from .layers.norm import BatchNorm1d as BatchNorm1d
from .layers.norm import BatchNorm2d as BatchNorm2d
from .layers.norm import BatchNorm3d as BatchNorm3d
from .layers.norm import GroupNorm as GroupNorm
from .layers.norm import InstanceNorm1d as InstanceNorm1d
from .layers.norm import InstanceNorm2d as InstanceNorm2d
from .layers.norm import InstanceNorm3d as InstanceNorm3d
from .layers.norm import LayerNorm as LayerNorm
from .layers.norm import RMSNorm as RMSNorm
from .layers.pool import AdaptiveAvgPool1d as AdaptiveAvgPool1d
from .layers.pool import AdaptiveAvgPool2d as AdaptiveAvgPool2d
from .layers.pool import AdaptiveAvgPool3d as AdaptiveAvgPool3d
from .layers.pool import AvgPool1d as AvgPool1d
from .layers.pool import AvgPool2d as AvgPool2d
from .layers.pool import AvgPool3d as AvgPool3d
from .layers.pool import MaxPool1d as MaxPool1d
from .layers.pool import MaxPool2d as MaxPool2d
from .layers.pool import MaxPool3d as MaxPool3d
from .layers.recurrent import GRU as GRU
from .layers.recurrent import LSTM as LSTM
from .layers.resample import PixelShuffle as PixelShuffle
from .layers.resample import PixelUnshuffle as PixelUnshuffle
from .layers.resample import Upsample as Upsample
from .layers.reshape import Flatten as Flatten
from .layers.reshape import Permute as Permute
from .layers.reshape import Reshape as Reshape
from .layers.reshape import Transpose as Transpose
from .layers.reshape import Unflatten as Unflatten

__version__ = "0.1.0"
