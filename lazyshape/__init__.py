"""lazyshape: framework-agnostic deferred initialization and symbolic shape inference.

Define a model once with no input sizes, infer every shape from a concrete
batch or a symbolic spec such as ``("B", 3, "H", "W")``, and build it on NumPy,
PyTorch or JAX::

    import lazyshape as ls

    net = ls.Sequential(ls.Linear(256), ls.ReLU(), ls.Linear(10))
    ls.infer(net, ("B", 20)).output        # TensorSpec((B, 10), float32)
    m = ls.build(net, "torch")             # a real torch.nn.Module
"""

from . import dims as dims
from . import init as init
from . import ops as ops
from ._backends import asarray as asarray
from ._backends import backends as backends
from ._build import build as build
from ._checkpoint import load as load
from ._checkpoint import save as save
from ._checkpoint import to_numpy as to_numpy
from ._dims import Dim as Dim
from ._dims import Expr as Expr
from ._dims import Sym as Sym
from ._errors import ShapeError as ShapeError
from ._graph import Input as Input
from ._graph import Model as Model
from ._graph import Module as Module
from ._graph import Sequential as Sequential
from ._layer import Context as Context
from ._layer import Layer as Layer
from ._layer import SymbolicTensor as SymbolicTensor
from ._propagate import Inference as Inference
from ._propagate import LayerRecord as LayerRecord
from ._propagate import infer as infer
from ._runtime import Placeholder as Placeholder
from ._specs import ParamSpec as ParamSpec
from ._specs import TensorSpec as TensorSpec
from ._summary import summary as summary
from .layers.activation import GELU as GELU
from .layers.activation import Dropout as Dropout
from .layers.activation import Identity as Identity
from .layers.activation import LeakyReLU as LeakyReLU
from .layers.activation import ReLU as ReLU
from .layers.activation import Sigmoid as Sigmoid
from .layers.activation import SiLU as SiLU
from .layers.activation import Softmax as Softmax
from .layers.activation import Tanh as Tanh
from .layers.linear import Linear as Linear
from .layers.merge import Add as Add
from .layers.merge import Concat as Concat
from .layers.merge import Multiply as Multiply
from .layers.reshape import Flatten as Flatten
from .layers.reshape import Reshape as Reshape
from .layers.reshape import Unflatten as Unflatten

__version__ = "0.1.0"
