"""ONNX shape inference as an oracle: one small ONNX model per layer kind.

``onnx_infer(layer, specs)`` writes the layer as ONNX nodes (``Gemm`` /
``MatMul``, ``Conv``, ``MaxPool``, ``Concat``, ...), its inputs as graph inputs
whose dims are ``dim_value``\\ s (ints) or ``dim_param``\\ s (symbols and
expressions, by their text), its parameters as graph inputs too (so they may
be symbolic), and runs ``onnx.shape_inference.infer_shapes(strict_mode=True,
data_prop=True)``. The result per output is ``(dims, dtype)`` where a dim is an
``int``, a ``str`` (a ``dim_param`` ONNX carried through) or ``None`` (ONNX
could not infer it).

`BUILDERS` maps a layer kind to its ONNX writer; `UNSUPPORTED` lists the kinds
ONNX cannot infer, with the reason (also in docs/testing.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lazyshape._dims import format_dim
from lazyshape._layer import Layer
from lazyshape._specs import TensorSpec

from ._registry import NotApplicable, Oracle

__all__ = ["OPSET", "BUILDERS", "UNSUPPORTED", "onnx_infer", "onnx_oracle", "Graph"]

#: the opset the one-node models declare (Gelu needs 20, GroupNormalization's
#: per-channel scale 21)
OPSET = 21

Dims = tuple[int | str | None, ...]


def _elem_type(dtype: str) -> int:
    from onnx import TensorProto

    return {
        "float16": TensorProto.FLOAT16,
        "bfloat16": TensorProto.BFLOAT16,
        "float32": TensorProto.FLOAT,
        "float64": TensorProto.DOUBLE,
        "int8": TensorProto.INT8,
        "int16": TensorProto.INT16,
        "int32": TensorProto.INT32,
        "int64": TensorProto.INT64,
        "uint8": TensorProto.UINT8,
        "bool": TensorProto.BOOL,
        "complex64": TensorProto.COMPLEX64,
        "complex128": TensorProto.COMPLEX128,
    }[dtype]


def _dtype_name(elem: int) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem))) if elem else "?"


def _onnx_dim(d: Any) -> int | str:
    return d if type(d) is int else format_dim(d)


class Graph:
    """A small ONNX graph under construction."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.initializers: list[Any] = []
        #: the opset the model declares: `OPSET`, or a newer one a builder's op needs
        self.opset = OPSET
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def input(self, shape: Sequence[Any], dtype: str = "float32", stem: str = "p") -> str:
        """A graph input (data or parameter) of ``shape`` (ints or symbolic dims)."""
        from onnx import helper

        name = self.name(stem)
        self.inputs.append(
            helper.make_tensor_value_info(name, _elem_type(dtype), [_onnx_dim(d) for d in shape])
        )
        return name

    def const(self, values: Any, dtype: str = "int64") -> str:
        """A constant initializer (shapes, axes)."""
        from onnx import numpy_helper

        name = self.name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> list[str]:
        from onnx import helper

        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, **attrs))
        return outs


#: ``builder(layer, graph, input names, specs) -> output names``
Builder = Callable[[Any, Graph, list[str], tuple[TensorSpec, ...]], list[str]]
BUILDERS: dict[str, Builder] = {}

#: kinds ONNX shape inference cannot check, with the reason
UNSUPPORTED: dict[str, str] = {}


def onnx_infer(layer: Layer, specs: Sequence[TensorSpec]) -> tuple[tuple[Dims | None, str], ...]:
    """ONNX's inferred ``(dims, dtype)`` per output of ``layer`` on ``specs``
    (dims None: ONNX inferred no shape). Raises `NotApplicable` for a kind or
    configuration ONNX cannot express, and ``onnx``'s ``InferenceError`` when
    ONNX rejects the inputs."""
    import onnx
    from onnx import helper

    kind = type(layer).__name__
    builder = BUILDERS.get(kind)
    if builder is None:
        raise NotApplicable(UNSUPPORTED.get(kind, f"no ONNX writer for {kind}"))
    g = Graph()
    names = [g.input(s.shape, s.dtype, "x") for s in specs]
    outs = builder(layer, g, names, tuple(specs))
    outputs = [helper.make_value_info(o, onnx.TypeProto()) for o in outs]
    graph = helper.make_graph(g.nodes, "lazyshape_oracle", g.inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)])
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    result: list[tuple[Dims | None, str]] = []
    for out in inferred.graph.output:
        tt = out.type.tensor_type
        if not tt.HasField("shape"):
            result.append((None, _dtype_name(tt.elem_type)))
            continue
        dims: list[int | str | None] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and not d.dim_param.startswith("unk__"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        result.append((tuple(dims), _dtype_name(tt.elem_type)))
    return tuple(result)


def _concrete(layer: Layer, specs: tuple[TensorSpec, ...]) -> Any:
    out = onnx_infer(layer, specs)
    if any(dims is None or any(type(d) is not int for d in dims) for dims, _ in out):
        raise NotApplicable("ONNX inferred no complete shape")
    return tuple((dims, dtype) for dims, dtype in out)


def onnx_oracle() -> Oracle:
    """The ONNX `Oracle`: shapes only, and only its successes count (ONNX infers
    what it can and rarely rejects)."""
    return Oracle("onnx", _concrete, dtypes=False, rejects=False)


# -- linear, activations, reshapes, merges ---------------------------------------


def _linear(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
    (x,), (s,) = xs, specs
    if s.ndim == 0:
        raise NotApplicable("a 0-d input has no feature dim")
    k = layer.in_features if layer.in_features is not None else s.shape[-1]
    if s.ndim == 2:  # Gemm: y = x @ W^T + b, W in PyTorch's (out, in) layout
        w = g.input((layer.out_features, k))
        ins = [x, w] + ([g.input((layer.out_features,))] if layer.bias else [])
        return g.node("Gemm", ins, transB=1)
    wt = g.input((k, layer.out_features))  # MatMul for any other rank: x @ W^T
    (y,) = g.node("MatMul", [x, wt])
    if layer.bias:
        (y,) = g.node("Add", [y, g.input((layer.out_features,))])
    return [y]


def _unary(op: str, **attrs_of: Callable[[Any], Any]) -> Builder:
    def build(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
        return g.node(op, xs, **{k: f(layer) for k, f in attrs_of.items()})

    return build


def _silu(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
    (s,) = g.node("Sigmoid", xs)
    return g.node("Mul", [xs[0], s])


def _reshape_to(g: Graph, x: str, target: Sequence[int]) -> list[str]:
    return g.node("Reshape", [x, g.const(list(target))])


def _flatten(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
    (s,) = specs
    n = s.ndim
    if n == 0:
        raise NotApplicable("ONNX Flatten and Reshape of a 0-d input")
    if 0 in s.shape:  # (its Flatten infers (0, 1) for (1, 1, 0); a -1 is ambiguous)
        raise NotApplicable("ONNX Flatten and Reshape of an empty input")
    start, end = layer.start_dim % n, layer.end_dim % n
    if start == 1 and end == n - 1:
        return g.node("Flatten", xs, axis=1)
    # Reshape: 0 copies the input dim at the same index (those before start_dim),
    # -1 is the flattened block; the dims after end_dim must be known
    tail = s.shape[end + 1 :]
    if any(type(d) is not int for d in tail):
        raise NotApplicable("dims after end_dim are symbolic")
    return _reshape_to(g, xs[0], [0] * start + [-1] + [int(d) for d in tail])


def _unflatten(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
    (s,) = specs
    n = s.ndim
    if n == 0:
        raise NotApplicable("a 0-d input")
    d = layer.dim % n
    tail = s.shape[d + 1 :]
    if any(type(t) is not int for t in tail) or (-1 in layer.sizes and 0 in tail):
        raise NotApplicable("dims after `dim` are symbolic")
    return _reshape_to(g, xs[0], [0] * d + list(layer.sizes) + [int(t) for t in tail])


def _reshape(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
    if -1 in layer.shape and 0 in specs[0].shape:
        raise NotApplicable("ONNX Reshape can't infer a -1 for an empty input")
    return _reshape_to(g, xs[0], [0, *layer.shape])


def _chain(op: str) -> Builder:
    def build(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
        y = xs[0]
        for x in xs[1:]:
            (y,) = g.node(op, [y, x])
        return [y]

    return build


def _concat(layer: Any, g: Graph, xs: list[str], specs: tuple[TensorSpec, ...]) -> list[str]:
    return g.node("Concat", xs, axis=layer.dim)


BUILDERS.update(
    {
        "Linear": _linear,
        "Identity": _unary("Identity"),
        "Dropout": _unary("Dropout"),
        "ReLU": _unary("Relu"),
        "Tanh": _unary("Tanh"),
        "Sigmoid": _unary("Sigmoid"),
        "SiLU": _silu,
        "GELU": _unary("Gelu", approximate=lambda layer: layer.approximate),
        "LeakyReLU": _unary("LeakyRelu", alpha=lambda layer: layer.negative_slope),
        "Softmax": _unary("Softmax", axis=lambda layer: layer.dim),
        "Flatten": _flatten,
        "Unflatten": _unflatten,
        "Reshape": _reshape,
        "Add": _chain("Add"),
        "Multiply": _chain("Mul"),
        "Concat": _concat,
    }
)
